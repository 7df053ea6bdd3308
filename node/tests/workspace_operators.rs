//! Workspace edits carry their operator: an analyst's note and indicator,
//! written on one node with requests signed by the test's own signer, reach
//! a second node of the cluster with the analyst's name and a signature
//! that verifies there; `amoskys case show` names the analyst; a body too
//! large to keep as proof is refused.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use amoskys_node::Node;
use common::{eventually, get_json, keyed_dirs, mesh_port, quiet_config};
use ed25519_dalek::{Signer, SigningKey};
use reqwest::Method;
use sha2::{Digest, Sha256};

/// The `Authorization` header, written from docs/SECURITY.md "Signed
/// requests" (not the node's own signer).
fn header(key: &SigningKey, node: &str, method: &str, path: &str, body: &[u8]) -> String {
    let ts_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis();
    let nonce: [u8; 16] = rand::random();
    let text = format!(
        "AMOSKYS-API-1\n{node}\n{method}\n{path}\n{}\n{ts_ms}\n{}",
        hex::encode(Sha256::digest(body)),
        hex::encode(nonce)
    );
    format!(
        "Amoskys-Ed25519 key={},ts={ts_ms},nonce={},sig={}",
        hex::encode(key.verifying_key().to_bytes()),
        hex::encode(nonce),
        hex::encode(key.sign(text.as_bytes()).to_bytes())
    )
}

/// One request signed by `key`; returns status and JSON answer.
async fn call(
    addr: SocketAddr,
    key: &SigningKey,
    method: Method,
    path: &str,
    body: &str,
) -> (u16, serde_json::Value) {
    let (node, _) = common::health(addr).await;
    let auth = header(key, &node, method.as_str(), path, body.as_bytes());
    let mut req = reqwest::Client::new()
        .request(method, format!("http://{addr}{path}"))
        .header("authorization", auth)
        .timeout(Duration::from_secs(20));
    if !body.is_empty() {
        req = req
            .header("content-type", "application/json")
            .body(body.to_owned());
    }
    let resp = req.send().await.expect("API answers");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or_default())
}

async fn start(dir: &std::path::Path, extra: &[&str]) -> Node {
    let mut sets = vec![
        "sensors.procfs.enabled=false",
        "learning.enabled=false",
        "workspace.sync_every_ms=200",
        "cluster.heartbeat_ms=100",
        "cluster.election_min_ms=400",
        "cluster.election_max_ms=800",
    ];
    sets.extend_from_slice(extra);
    Node::start(quiet_config(dir, &sets))
        .await
        .expect("node starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_analysts_note_reaches_another_node_with_her_verified_signature() {
    let (dirs, admitted) = keyed_dirs(2);
    let a = start(dirs[0].path(), &[&admitted]).await;
    let api_a = a.api_addr();
    common::first_admin(api_a).await;

    // The admin makes `ana` an analyst; her key never leaves the test.
    let ana = SigningKey::from_bytes(&rand::random());
    let ana_key = hex::encode(ana.verifying_key().to_bytes());
    let body = serde_json::json!({ "name": "ana", "key": ana_key, "role": "analyst" });
    let (code, v) = common::send(
        api_a,
        Method::POST,
        "/api/v1/operators",
        Some(body.to_string()),
    )
    .await;
    assert_eq!(code, 201, "{v}");
    let alert = common::test_alert(0, "port_scan");
    a.store()
        .put_alerts(std::slice::from_ref(&alert))
        .expect("stored");

    // B joins the cluster through the mesh.
    let boot = format!("mesh.bootstrap=[\"127.0.0.1:{}\"]", mesh_port(&a).await);
    let b = start(dirs[1].path(), &[&admitted, &boot]).await;
    let api_b = b.api_addr();
    let joined = eventually(Duration::from_secs(60), || async {
        let (_, v) = get_json(api_b, "/api/v1/operators").await;
        v["operators"]
            .as_array()?
            .iter()
            .any(|o| o["name"] == "ana")
            .then_some(())
    })
    .await;
    assert!(joined.is_some(), "b is in the cluster and knows ana");

    // Ana writes a note and an indicator on A.
    let notes = format!("/api/v1/cases/{}/notes", alert.id);
    let text = "beacon every 60 s to 203.0.113.9; host isolated";
    let note_body = serde_json::json!({ "text": text }).to_string();
    let (code, v) = call(api_a, &ana, Method::POST, &notes, &note_body).await;
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["note"]["operator"]["name"], "ana", "{v}");
    assert_eq!(v["note"]["operator_verified"], true, "{v}");
    let intel = r#"{"indicator":"203.0.113.9","reason":"c2","expires_secs":3600}"#;
    let (code, v) = call(api_a, &ana, Method::POST, "/api/v1/intel", intel).await;
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["ioc"]["operator_verified"], true, "{v}");

    // B shows both with ana's name, role, key, and a proof that verifies.
    let case_path = format!("/api/v1/cases/{}", alert.id);
    let note = eventually(Duration::from_secs(60), || async {
        let (_, v) = get_json(api_b, &case_path).await;
        v["case"]["notes"].as_array()?.first().cloned()
    })
    .await
    .expect("the note reaches b");
    assert_eq!(note["text"], text);
    assert_eq!(note["operator"]["name"], "ana", "{note}");
    assert_eq!(note["operator"]["role"], "analyst", "{note}");
    assert_eq!(note["operator"]["key"], ana_key.as_str(), "{note}");
    assert_eq!(note["operator_verified"], true, "{note}");
    let ioc = eventually(Duration::from_secs(60), || async {
        let (_, v) = get_json(api_b, "/api/v1/intel").await;
        v["iocs"].as_array()?.first().cloned()
    })
    .await
    .expect("the indicator reaches b");
    assert_eq!(ioc["operator"]["name"], "ana", "{ioc}");
    assert_eq!(ioc["operator_verified"], true, "{ioc}");

    // `amoskys case show` on B names who wrote the note.
    let id = alert.id.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_amoskys"))
            .args(["case", "show", &id, "--api", &api_b.to_string()])
            .output()
            .expect("amoskys runs")
    })
    .await
    .expect("joined");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains("by ana (analyst, verified)") && shown.contains(text),
        "{shown}"
    );

    // The audit entry of the note is replicated too, naming ana.
    let audited = eventually(Duration::from_secs(30), || async {
        let (_, v) = get_json(api_b, "/api/v1/audit?limit=1000").await;
        v["entries"]
            .as_array()?
            .iter()
            .any(|e| e["record"]["action"] == "case.note" && e["record"]["operator"] == "ana")
            .then_some(())
    })
    .await;
    assert!(audited.is_some(), "b holds the audit entry of ana's note");

    // A body too large to keep as proof is refused, naming the limit.
    let padded = format!("{{\"text\":\"short\"{}}}", " ".repeat(9_000));
    let (code, v) = call(api_a, &ana, Method::POST, &notes, &padded).await;
    assert_eq!(code, 400, "{v}");
    assert!(v.to_string().contains("8192"), "{v}");

    b.shutdown().await;
    a.shutdown().await;
}
