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
    let mut stream = reqwest::Client::new()
        .get(format!("http://{addr}/api/v1/alerts/stream"))
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
    let out = Command::new(env!("CARGO_BIN_EXE_amoskys"))
        .args(["alerts", "verify"])
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
        .args(["alerts", "verify"])
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
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
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
