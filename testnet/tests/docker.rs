//! The docker testnet end to end, where a docker engine runs (skipped with
//! the reason otherwise): images built with no registry, three nodes form
//! a cluster, a real nmap scan from the attacker container reaches every
//! node as a signed alert, a node disconnected from the network misses the
//! next one and gets it after it is reconnected. Torn down on failure too.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use amoskys_mesh::Alert;

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docker/testnet.sh")
}

fn amoskys() -> PathBuf {
    amoskys_testnet::built_amoskys()
}

fn tn(args: &[&str]) -> std::process::Output {
    Command::new("bash")
        .arg(script())
        .args(args)
        .env("AMOSKYS_BIN", amoskys())
        .env("AMOSKYS_DOCKER_STATE", state())
        .output()
        .expect("testnet.sh runs")
}

fn state() -> PathBuf {
    std::env::temp_dir().join(format!("amoskys-docker-{}", std::process::id()))
}

fn unavailable() -> Option<String> {
    let info = Command::new("docker").arg("info").output();
    if !info.is_ok_and(|o| o.status.success()) {
        return Some("no docker engine answers `docker info`".into());
    }
    if Command::new("docker-compose")
        .arg("version")
        .output()
        .is_err()
    {
        return Some("docker-compose missing (apt-get install docker-compose)".into());
    }
    if !std::path::Path::new("/usr/bin/nmap").exists()
        || !std::path::Path::new("/usr/sbin/snmpd").exists()
    {
        return Some("nmap or snmpd missing on the host (their binaries make the images)".into());
    }
    None
}

struct Down;

impl Drop for Down {
    fn drop(&mut self) {
        tn(&["down"]);
    }
}

fn scans(node: usize) -> usize {
    let out = tn(&[
        "exec",
        &node.to_string(),
        "/usr/local/bin/amoskys",
        "alerts",
        "export",
        "--api",
        "127.0.0.1:7300",
    ]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Alert>(l).ok())
        .filter(|a| a.body.rule.starts_with("port_scan"))
        .count()
}

fn until(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let end = Instant::now() + within;
    while !ok() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn scan(addr: &str) {
    let mut args = vec!["attack".to_owned()];
    args.extend(amoskys_testnet::scan_command(addr));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = tn(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn docker_nodes_share_alerts_and_catch_up_after_a_disconnect() {
    if let Some(why) = unavailable() {
        eprintln!("SKIPPED docker testnet: {why}");
        return;
    }
    assert!(amoskys().exists(), "{} not built", amoskys().display());
    let _down = Down;
    let out = tn(&["build"]);
    assert!(
        out.status.success(),
        "build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = tn(&["up", "3"]);
    assert!(
        out.status.success(),
        "up: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    until("a cluster of three", Duration::from_secs(60), || {
        (0..3).all(|i| {
            let out = tn(&[
                "exec",
                &i.to_string(),
                "/usr/local/bin/amoskys",
                "cluster",
                "status",
                "--json",
                "--api",
                "127.0.0.1:7300",
            ]);
            serde_json::from_slice::<serde_json::Value>(&out.stdout)
                .is_ok_and(|v| v["cluster"]["voters"].as_array().map_or(0, Vec::len) == 3)
        })
    });
    scan("172.30.77.11");
    until("the alert on every node", Duration::from_secs(60), || {
        (0..3).all(|i| scans(i) == 1)
    });
    tn(&["partition", "2"]);
    scan("172.30.77.10");
    until(
        "the alert on the connected nodes",
        Duration::from_secs(60),
        || scans(0) == 2 && scans(1) == 2,
    );
    assert_eq!(scans(2), 1, "a disconnected node got the alert");
    tn(&["heal"]);
    until(
        "the reconnected node catches up",
        Duration::from_secs(90),
        || scans(2) == 2,
    );
}
