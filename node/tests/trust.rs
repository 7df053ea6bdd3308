//! Offline trust end to end on a real two-node cluster: a voter exports the
//! membership, signed; alerts from either member verify against it; an
//! alert signed by a key never admitted, a tampered export, an export by
//! another signer than the pinned one, or no trust set at all do not pass;
//! `--keys` trusts exactly what it lists. The exported JSON lines carry the
//! time also as RFC 3339 text.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use amoskys_mesh::{Alert, AlertBody};
use amoskys_node::Node;
use common::{eventually, get, get_json};
use ed25519_dalek::SigningKey;

fn amoskys(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_amoskys"))
        .args(args)
        .output()
        .expect("amoskys runs")
}

fn text(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn verify(file: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["alerts", "verify", file.to_str().expect("utf-8 path")];
    args.extend(extra);
    amoskys(&args)
}

async fn member_count(n: &Node) -> usize {
    let (_, v) = get_json(n.api_addr(), "/api/v1/members").await;
    v["members"].as_array().map_or(0, Vec::len)
}

/// The node's own `service_spawned_shell` alert, once raised.
async fn own_alert(n: &Node) -> Option<Alert> {
    let me = n.identity().peer_id().to_string();
    let (_, body) = get_json(n.api_addr(), "/api/v1/alerts?limit=1000").await;
    let alerts: Vec<Alert> = serde_json::from_value(body["alerts"].clone()).ok()?;
    alerts
        .into_iter()
        .find(|a| a.body.rule == "service_spawned_shell" && a.origin == me)
}

/// An alert signed by a key that no cluster ever admitted.
fn stranger_alert(key: &SigningKey) -> String {
    let body = AlertBody {
        seq: 0,
        time_ns: 1_795_000_000_123_456_789,
        severity: "high".into(),
        category: "execution".into(),
        technique: "T1059.004".into(),
        rule: "service_spawned_shell".into(),
        score: 0.9,
        subject: "process:nginx".into(),
        evidence: vec![],
    };
    String::from_utf8(Alert::sign(body, key).encode()).expect("utf-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_verify_against_a_signed_membership_export() {
    let (dirs, admitted) = common::keyed_dirs(2);
    let mut a_cfg = vec![
        admitted.as_str(),
        "learning.enabled=false",
        "node.name=alpha",
        "cluster.heartbeat_ms=100",
        "cluster.election_min_ms=400",
        "cluster.election_max_ms=800",
    ];
    let a = Node::start(common::quiet_config(dirs[0].path(), &a_cfg))
        .await
        .expect("a starts");
    let a_id = a.identity().peer_id().to_string();
    let a_api = a.api_addr().to_string();
    assert!(
        eventually(Duration::from_secs(10), || async {
            (member_count(&a).await == 1).then_some(())
        })
        .await
        .is_some(),
        "a alone is a cluster of one"
    );
    let bootstrap = format!(
        "mesh.bootstrap=[\"127.0.0.1:{}\"]",
        common::mesh_port(&a).await
    );
    a_cfg[2] = "node.name=beta";
    a_cfg.push(&bootstrap);
    let b = Node::start(common::quiet_config(dirs[1].path(), &a_cfg))
        .await
        .expect("b starts");
    let b_id = b.identity().peer_id().to_string();
    let b_key = b.identity().public_key_hex();
    assert!(
        eventually(Duration::from_secs(30), || async {
            (member_count(&a).await == 2).then_some(())
        })
        .await
        .is_some(),
        "b is admitted"
    );

    // The export, from the API and from the command line.
    let (status, from_api) = get_json(a.api_addr(), "/api/v1/members/export").await;
    assert_eq!(status, 200, "{from_api}");
    let out = amoskys(&["members", "export", "--api", &a_api]);
    assert!(out.status.success(), "{}", text(&out));
    let export: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON export");
    assert_eq!(export["version"], 1);
    assert_eq!(export["exported_by"], a_id.as_str());
    assert!(
        export["exported_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    assert!(export["membership_log"]["term"].as_u64() >= Some(1));
    assert!(export["membership_log"]["index"].as_u64() >= Some(1));
    let members = export["members"].as_array().expect("members");
    assert_eq!(members.len(), 2, "{export}");
    let entry = |id: &str| members.iter().find(|m| m["id"] == id).cloned();
    let a_entry = entry(&a_id).expect("a listed");
    assert_eq!(a_entry["role"], "voter");
    assert_eq!(a_entry["name"], "alpha");
    assert_eq!(a_entry["key"], a.identity().public_key_hex().as_str());
    assert_eq!(entry(&b_id).expect("b listed")["key"], b_key.as_str());
    assert_eq!(export["signature"].as_str().map(str::len), Some(128));
    let dir = tempfile::tempdir().expect("tempdir");
    let members_json = dir.path().join("members.json");
    std::fs::write(&members_json, &out.stdout).expect("write");

    // Both members raise an alert: a "web server" spawns a shell.
    let bin = tempfile::tempdir().expect("tempdir");
    let nginx = bin.path().join("nginx");
    std::fs::copy("/bin/bash", &nginx).expect("copy bash");
    let mut service = Command::new(&nginx)
        .args(["-c", "/bin/sh -c 'sleep 3'; true"])
        .spawn()
        .expect("spawn service");
    for n in [&a, &b] {
        assert!(
            eventually(Duration::from_secs(15), || own_alert(n))
                .await
                .is_some(),
            "{} raised its alert",
            n.api_addr()
        );
    }
    let _ = service.kill();
    let _ = service.wait();

    // Exported JSON lines carry `time`, the RFC 3339 form of time_ns.
    let mut jsonl = String::new();
    for n in [&a, &b] {
        let (status, lines) = get(n.api_addr(), "/api/v1/alerts/export?format=jsonl").await;
        assert_eq!(status, 200);
        for line in lines.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("json line");
            let ns = v["time_ns"].as_u64().expect("time_ns");
            assert_eq!(
                v["time"],
                amoskys_mesh::alert::rfc3339(ns).as_str(),
                "{line}"
            );
        }
        jsonl.push_str(&lines);
    }
    let alerts = dir.path().join("alerts.jsonl");
    std::fs::write(&alerts, &jsonl).expect("write");

    // Alerts from members verify against the export.
    let out = verify(
        &alerts,
        &["--members", members_json.to_str().expect("path")],
    );
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(" verified, 0 failed"), "{stdout}");
    assert!(stdout.contains(&a_id) && stdout.contains(&b_id), "{stdout}");
    let out = verify(
        &alerts,
        &[
            "--members",
            members_json.to_str().expect("path"),
            "--signer",
            &a_id,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));

    // One signed by a key never admitted fails, and is named.
    let stranger = SigningKey::from_bytes(&[0x5a; 32]);
    let stranger_id = amoskys_mesh::alert::peer_id_of(&stranger.verifying_key());
    let mixed = dir.path().join("mixed.jsonl");
    std::fs::write(&mixed, format!("{jsonl}{}\n", stranger_alert(&stranger))).expect("write");
    let out = verify(&mixed, &["--members", members_json.to_str().expect("path")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let failed: Vec<&str> = stdout.lines().filter(|l| l.contains("FAILED")).collect();
    assert_eq!(failed.len(), 1, "{stdout}");
    assert!(
        failed[0].contains(&stranger_id) && failed[0].contains("not in the trust set"),
        "{stdout}"
    );

    // Without a trust set there is no claim of trust; --any-key says what it
    // checked.
    let out = verify(&mixed, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("a trust set is needed"));
    let out = verify(&mixed, &["--any-key"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("signature only, origin not checked"));

    // A tampered export is refused: one hex digit of b's key changed.
    let exported = std::fs::read_to_string(&members_json).expect("read");
    let last = b_key.chars().last().expect("a digit");
    let flipped = format!("{}{}", &b_key[..63], if last == '0' { '1' } else { '0' });
    let tampered = dir.path().join("tampered.json");
    std::fs::write(&tampered, exported.replace(&b_key, &flipped)).expect("write");
    let out = verify(&alerts, &["--members", tampered.to_str().expect("path")]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refused"),
        "{}",
        text(&out)
    );
    // An export by another node than the pinned signer is refused.
    let out = verify(
        &alerts,
        &[
            "--members",
            members_json.to_str().expect("path"),
            "--signer",
            &b_id,
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    // --keys: a's peer id alone leaves b's alerts out; with b's key all pass.
    let keys = dir.path().join("keys.txt");
    std::fs::write(&keys, format!("# trusted\n{a_id}\n")).expect("write");
    let out = verify(&alerts, &["--keys", keys.to_str().expect("path")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains("FAILED"))
            .all(|l| l.contains(&b_id)),
        "{}",
        text(&out)
    );
    std::fs::write(&keys, format!("# trusted\n{a_id}\n{b_key}  # beta\n")).expect("write");
    let out = verify(&alerts, &["--keys", keys.to_str().expect("path")]);
    assert!(out.status.success(), "{}", text(&out));

    b.shutdown().await;
    a.shutdown().await;
}
