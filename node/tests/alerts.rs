//! Detection end to end on a real node: a rule fires on real host activity,
//! the alert is signed, stored, streamed, exported and verified offline.

mod common;

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use amoskys_mesh::Alert;
use amoskys_node::Node;
use common::{eventually, get, get_json};

async fn alerts(addr: std::net::SocketAddr) -> Vec<Alert> {
    let (_, body) = get_json(addr, "/api/v1/alerts?limit=1000").await;
    serde_json::from_value(body["alerts"].clone()).expect("alerts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_spawned_by_a_service_is_alerted_signed_and_streamed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(common::quiet_config(dir.path(), &[]))
        .await
        .expect("node starts");
    let addr = node.api_addr();
    let id = node.identity().peer_id().to_string();

    // Subscribe to the live stream first.
    let auth = common::admin_authorization(addr, "GET", "/api/v1/alerts/stream", b"").await;
    let mut stream = reqwest::Client::new()
        .get(format!("http://{addr}/api/v1/alerts/stream"))
        .header("authorization", auth)
        .send()
        .await
        .expect("stream");

    // A "web server" (bash under the name nginx) that spawns a shell.
    let bin = tempfile::tempdir().expect("tempdir");
    let nginx = bin.path().join("nginx");
    std::fs::copy("/bin/bash", &nginx).expect("copy bash");
    let mut service = Command::new(&nginx)
        .args(["-c", "/bin/sh -c 'sleep 3'; true"])
        .spawn()
        .expect("spawn service");

    let alert = eventually(Duration::from_secs(10), || async {
        alerts(addr)
            .await
            .into_iter()
            .find(|a| a.body.rule == "service_spawned_shell")
    })
    .await
    .expect("alert raised");
    assert_eq!(alert.body.technique, "T1059.004");
    assert_eq!(alert.body.severity, "high");
    assert_eq!(alert.origin, id);
    alert.verify().expect("signature verifies");
    assert!(
        alert
            .body
            .evidence
            .iter()
            .any(|(k, v)| k == "parent" && v == "nginx"),
        "{:?}",
        alert.body.evidence
    );

    // The stream delivered the same alert.
    let mut seen = String::new();
    let streamed = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(chunk)) = stream.chunk().await {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains(&alert.id) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(streamed, Ok(true), "stream carried the alert: {seen}");
    let _ = service.kill();
    let _ = service.wait();

    // Export, verify offline, and catch a tampered copy.
    let (status, jsonl) = get(addr, "/api/v1/alerts/export?format=jsonl").await;
    assert_eq!(status, 200);
    let mut file = tempfile::NamedTempFile::new().expect("file");
    file.write_all(jsonl.as_bytes()).expect("write");
    // The trust set: this node's own key (by its peer id).
    let keys = tempfile::NamedTempFile::new().expect("file");
    std::fs::write(keys.path(), &id).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_amoskys"))
        .args(["alerts", "verify", "--keys"])
        .arg(keys.path())
        .arg(file.path())
        .output()
        .expect("verify runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(" verified, 0 failed"));
    let tampered = jsonl.replacen("\"severity\":\"high\"", "\"severity\":\"low\"", 1);
    std::fs::write(file.path(), tampered).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_amoskys"))
        .args(["alerts", "verify", "--keys"])
        .arg(keys.path())
        .arg(file.path())
        .output()
        .expect("verify runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("signature does not verify"));

    let (status, ocsf) = get(addr, "/api/v1/alerts/export?format=ocsf").await;
    assert_eq!(status, 200);
    let first: serde_json::Value =
        serde_json::from_str(ocsf.lines().next().expect("a line")).expect("json");
    assert_eq!(first["class_uid"], 2004);
    assert_eq!(
        first["finding_info"]["attacks"][0]["technique"]["uid"]
            .as_str()
            .map(|s| s.starts_with('T')),
        Some(true)
    );
    let (status, _) = get(addr, "/api/v1/alerts/export?format=csv").await;
    assert_eq!(status, 400);

    // Alerts survive a restart.
    node.shutdown().await;
    let node = Node::start(common::quiet_config(dir.path(), &[]))
        .await
        .expect("restarts");
    assert!(
        alerts(node.api_addr())
            .await
            .iter()
            .any(|a| a.id == alert.id)
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashed_addresses_keep_raw_addresses_out_of_alerts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(common::quiet_config(
        dir.path(),
        &[
            "privacy.addresses=hash",
            "privacy.salt=a-mesh-wide-salt-value",
        ],
    ))
    .await
    .expect("node starts");
    let addr = node.api_addr();
    // Another process: the node's own process never alerts on its sockets.
    let listener = ChildListener::spawn();
    let port = listener.port;
    let alert = eventually(Duration::from_secs(10), || async {
        alerts(addr).await.into_iter().find(|a| {
            a.body.rule == "new_listening_port" && a.body.subject == format!("listener:{port}")
        })
    })
    .await
    .expect("new listener alerted");
    let json = String::from_utf8_lossy(&alert.encode()).into_owned();
    assert!(!json.contains("127.0.0.1"), "{json}");
    assert!(json.contains("\"h:"), "{json}");
    drop(listener);
    node.shutdown().await;
}

/// A listener on 127.0.0.1 in another process (this test binary, running
/// `listener_child`), closed when dropped.
struct ChildListener {
    child: std::process::Child,
    port: u16,
}

impl ChildListener {
    fn spawn() -> Self {
        use std::io::BufRead;
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "listener_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("AMOSKYS_TEST_LISTENER", "1")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn listener");
        let stdout = child.stdout.take().expect("stdout");
        let port = std::io::BufReader::new(stdout)
            .lines()
            .take(20)
            .map_while(Result::ok)
            .find_map(|l| l.split("listening-port=").nth(1)?.trim().parse().ok())
            .expect("the child reports its port");
        ChildListener { child, port }
    }
}

impl Drop for ChildListener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The other side of [`ChildListener`]: listens until its stdin closes.
#[test]
#[ignore = "run by ChildListener in a child process"]
fn listener_child() {
    if std::env::var_os("AMOSKYS_TEST_LISTENER").is_none() {
        return;
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    println!("listening-port={port}");
    std::io::stdout().flush().expect("flush");
    let mut rest = Vec::new();
    let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut rest);
    drop(listener);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_and_preexisting_listeners_are_not_new() {
    // Listening before the node starts: the baseline.
    let before = ChildListener::spawn();
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(common::quiet_config(dir.path(), &[]))
        .await
        .expect("node starts");
    let addr = node.api_addr();
    let mesh = common::mesh_port(&node).await;
    // Many procfs passes (20 ms each) see the node's API and mesh sockets.
    tokio::time::sleep(Duration::from_secs(1)).await;

    // A listener opened after the start is new, and alerts.
    let after = ChildListener::spawn();
    let subject = format!("listener:{}", after.port);
    let raised = eventually(Duration::from_secs(10), || async {
        alerts(addr)
            .await
            .into_iter()
            .find(|a| a.body.rule == "new_listening_port" && a.body.subject == subject)
    })
    .await;
    assert!(raised.is_some(), "a listener opened after start alerts");

    // By now every earlier pass was detected: none alerted on the baseline
    // or on the node's own sockets (this process's, of any node in it).
    let own_pid = std::process::id().to_string();
    let quiet = [before.port, addr.port(), mesh];
    let wrong: Vec<String> = alerts(addr)
        .await
        .into_iter()
        .filter(|a| a.body.rule == "new_listening_port")
        .filter(|a| {
            quiet
                .iter()
                .any(|p| a.body.subject == format!("listener:{p}"))
                || a.body
                    .evidence
                    .iter()
                    .any(|(k, v)| k == "pid" && *v == own_pid)
        })
        .map(|a| format!("{} {:?}", a.body.subject, a.body.evidence))
        .collect();
    assert!(wrong.is_empty(), "alerts on known listeners: {wrong:?}");
    drop((before, after));
    node.shutdown().await;
}
