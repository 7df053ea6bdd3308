//! A node that cannot run `nft` (here: an empty PATH) keeps running: its
//! bouncer is unhealthy with the reason in `GET /api/v1/node`,
//! `amoskys status` and `/metrics`, and decisions are still recorded. Enforcement itself
//! is tested on three nodes in network namespaces (testnet/tests/response.rs).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The node's process, killed (and reaped) if the test ends early.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The node's Prometheus text (a public route).
fn metrics(api: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(api).expect("connects");
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .expect("sent");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn amoskys(path: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_amoskys"))
        .args(args)
        .env("PATH", path)
        .output()
        .expect("amoskys runs")
}

#[test]
fn without_nft_the_bouncer_is_unhealthy_with_the_reason_and_the_node_runs() {
    let dir = tempfile::tempdir().expect("dir");
    let empty = dir.path().join("bin");
    std::fs::create_dir(&empty).expect("an empty PATH");
    let data = dir.path().join("node");
    let mut node = Running(
        Command::new(env!("CARGO_BIN_EXE_amoskys"))
            .args(["run", "--log-format", "json", "--api-listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(&data)
            .args([
                "--set",
                "mesh.listen=[\"127.0.0.1:0\"]",
                "--set",
                "sensors.procfs.enabled=false",
                "--set",
                "sensors.flows.enabled=false",
                "--set",
                "sensors.ebpf.enabled=false",
            ])
            .env("PATH", &empty)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("node starts"),
    );
    let stderr = node.0.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let mut api = None;
    for line in lines.by_ref().map_while(Result::ok).take(300) {
        let log: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if log["message"] == "node started" {
            api = log["api"].as_str().map(str::to_owned);
            break;
        }
    }
    std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
    let api = api.expect("the node started without nft");

    let end = Instant::now() + Duration::from_secs(20);
    let mut status = serde_json::Value::Null;
    while Instant::now() < end {
        let out = amoskys(&empty, &["status", "--json", "--api", &api]);
        status = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if status["response"]["healthy"] == false {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let r = &status["response"];
    assert_eq!(r["healthy"], false, "{status}");
    assert!(
        r["reason"]
            .as_str()
            .is_some_and(|w| w.contains("apt-get install nftables")),
        "{r}"
    );
    let text = amoskys(&empty, &["status", "--api", &api]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("response  observe mode, bouncer UNHEALTHY: cannot run nft"),
        "{text}"
    );
    let scrape = metrics(&api);
    assert!(
        scrape.contains("amoskys_response_bouncer_healthy 0"),
        "{scrape}"
    );
    // Decisions are still recorded and listed.
    let add = amoskys(
        &empty,
        &[
            "decisions",
            "add",
            "203.0.113.9",
            "--duration",
            "1m",
            "--api",
            &api,
        ],
    );
    assert!(
        add.status.success(),
        "{}",
        String::from_utf8_lossy(&add.stderr)
    );
    let list = amoskys(&empty, &["decisions", "list", "--json", "--api", &api]);
    let v: serde_json::Value = serde_json::from_slice(&list.stdout).expect("JSON");
    assert_eq!(v["decisions"][0]["subject"], "203.0.113.9", "{v}");
    assert_eq!(v["bouncer"]["healthy"], false, "{v}");

    let _ = Command::new("kill")
        .args(["-TERM", &node.0.id().to_string()])
        .status();
    let end = Instant::now() + Duration::from_secs(20);
    while Instant::now() < end {
        if let Ok(Some(s)) = node.0.try_wait() {
            assert!(s.success(), "the node stops cleanly: {s}");
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the node did not stop within 20 s");
}
