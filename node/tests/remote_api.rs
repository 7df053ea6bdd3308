//! The API from another host: a node in one network namespace listens on
//! its veth address with TLS; curl in a second namespace is that other
//! host. An admin's signed request is served there, but raw events and
//! metrics are refused with 403 whatever the role, and an unsigned request
//! gets 401. Needs root for the namespaces (CI runs as root); elsewhere it
//! says why it was skipped.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use amoskys_node::auth::{ADMIN_KEY_FILE, load_signing_key};
use amoskys_node::identity::{Identity, KEY_FILE};

/// The node process, stopped before its namespaces are removed.
struct Hosts {
    node: Option<Child>,
    net: common::VethPair,
}

impl Drop for Hosts {
    fn drop(&mut self) {
        if let Some(c) = &mut self.node {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn from_another_host_events_and_metrics_are_refused_even_to_an_admin() {
    if !common::is_root() {
        eprintln!("SKIPPED remote API test: needs root for network namespaces (CI runs as root)");
        return;
    }
    if Command::new("curl").arg("--version").output().is_err() {
        eprintln!("SKIPPED remote API test: curl is not installed (.ci/deps test installs it)");
        return;
    }
    let addrs = ["10.254.79.1", "10.254.79.2"];
    let mut hosts = Hosts {
        node: None,
        net: common::VethPair::new("r", addrs),
    };
    let dir = tempfile::tempdir().expect("dir");
    let identity = Identity::generate();
    identity
        .write(&dir.path().join(KEY_FILE), false)
        .expect("node key");
    let api = format!("{}:7300", addrs[0]);
    let mut child = Command::new("ip")
        .args(["netns", "exec", &hosts.net.names[0]])
        .arg(env!("CARGO_BIN_EXE_amoskys"))
        .args(["run", "--log-format", "json", "--api-listen", &api])
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--set", "api.tls.enabled=true"])
        .args(["--set", &format!("mesh.listen=[\"{}:7301\"]", addrs[0])])
        .args(["--set", "sensors.flows.enabled=false"])
        .args(["--set", "sensors.ebpf.enabled=false"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("node starts");
    let stderr = child.stderr.take().expect("stderr");
    hosts.node = Some(child);
    let mut lines = BufReader::new(stderr).lines();
    let log: Vec<String> = lines
        .by_ref()
        .map_while(Result::ok)
        .take(300)
        .take_while(|l| !l.contains("\"node started\""))
        .collect();
    assert!(
        dir.path().join("api-cert.pem").exists(),
        "the node did not start:\n{}",
        log.join("\n")
    );
    std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));

    let node_id = identity.peer_id().to_string();
    let admin = load_signing_key(&dir.path().join(ADMIN_KEY_FILE)).expect("admin key");
    let cert = dir.path().join("api-cert.pem");
    // curl from the other host; returns the HTTP status.
    let curl = |path: &str, signed: bool| -> String {
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            &hosts.net.names[1],
            "curl",
            "-s",
            "-m",
            "5",
        ])
        .args(["-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(&cert);
        if signed {
            let auth = common::authorization(&admin, &node_id, "GET", path, b"");
            cmd.args(["-H", &format!("authorization: {auth}")]);
        }
        let out = cmd
            .arg(format!("https://{api}{path}"))
            .output()
            .expect("curl runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // The node serves once its leader is known; the admin's reads work.
    let mut code = String::new();
    for _ in 0..100 {
        code = curl("/api/v1/alerts?limit=5", true);
        if code == "200" {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(code, "200", "an admin's signed read from another host");
    assert_eq!(curl("/api/v1/alerts?limit=5", false), "401");
    assert_eq!(curl("/api/v1/events?limit=5", true), "403", "raw events");
    assert_eq!(curl("/api/v1/events?limit=5", false), "403");
    assert_eq!(curl("/metrics", false), "403", "metrics");
    assert_eq!(curl("/healthz", false), "200");
}
