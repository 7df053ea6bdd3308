//! The audit trail on a real three-node cluster: actions on different
//! nodes end as the same entries in the same order on every node; an
//! export verifies offline (`amoskys audit verify`), and an edited,
//! removed or swapped entry is found and named.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use common::{eventually, get, get_json, send};
use reqwest::Method;

/// A node's trail: (seq, action, hash) of every entry.
async fn trail(addr: SocketAddr) -> Vec<(u64, String, String)> {
    let (status, v) = get_json(addr, "/api/v1/audit?limit=10000").await;
    assert_eq!(status, 200, "{v}");
    v["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["seq"].as_u64().unwrap_or(0),
                e["record"]["action"].as_str().unwrap_or("").to_owned(),
                e["hash"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// A request signed by `key` (an operator other than the local admin).
async fn send_as(
    key: &ed25519_dalek::SigningKey,
    addr: SocketAddr,
    method: Method,
    path: &str,
    body: &str,
) -> (u16, String) {
    let (node_id, _) = common::health(addr).await;
    let auth = common::authorization(key, &node_id, method.as_str(), path, body.as_bytes());
    let resp = reqwest::Client::new()
        .request(method, format!("http://{addr}{path}"))
        .header("authorization", auth)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .expect("API answers");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

/// Runs `amoskys ARGS… --api ADDR` (signed with the node's local admin
/// key): exit code and stdout.
fn cli(addr: SocketAddr, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_amoskys"))
        .args(args)
        .args(["--api", &addr.to_string()])
        .env_remove("AMOSKYS_OPERATOR_KEY")
        .output()
        .expect("amoskys runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Runs `amoskys audit verify FILE --members MEMBERS`: exit code and stdout.
fn verify(file: &std::path::Path, members: &std::path::Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_amoskys"))
        .args(["audit", "verify"])
        .arg(file)
        .arg("--members")
        .arg(members)
        .output()
        .expect("amoskys runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_holds_the_same_trail_and_an_export_verifies() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("warn")
        .with_test_writer()
        .try_init();
    let (dirs, admitted) = common::keyed_dirs(3);
    let [a, b, c] = common::three_voters(&dirs, &admitted).await;

    // An admin on a adds an analyst; the analyst adds an indicator on b and
    // is refused a policy change on c (403, recorded as denied).
    let ana = ed25519_dalek::SigningKey::from_bytes(&[42; 32]);
    let add = format!(
        r#"{{"name":"ana","key":"{}","role":"analyst"}}"#,
        hex::encode(ana.verifying_key().to_bytes())
    );
    let (status, body) = send(a.api_addr(), Method::POST, "/api/v1/operators", Some(add)).await;
    assert_eq!(status, 201, "{body}");
    let ioc = r#"{"indicator":"198.51.100.9","reason":"ana's"}"#;
    let added = eventually(Duration::from_secs(10), || async {
        let (status, _) = send_as(&ana, b.api_addr(), Method::POST, "/api/v1/intel", ioc).await;
        (status == 201).then_some(())
    })
    .await;
    assert!(
        added.is_some(),
        "the analyst is known on b and may add intel"
    );
    let (status, body) = send_as(&ana, c.api_addr(), Method::PUT, "/api/v1/policy", "x = 1").await;
    assert_eq!(status, 403, "{body}");

    // Actions on each node: a policy on c (with its record, one Raft
    // entry), an indicator added on b and removed on a (records after the
    // edit), an activation refused on a (recorded as refused).
    let doc = "[rules]\nscan_min_ports = 9\n";
    let (status, body) = send(
        c.api_addr(),
        Method::PUT,
        "/api/v1/policy",
        Some(doc.into()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let ioc = r#"{"indicator":"203.0.113.7","reason":"test"}"#;
    let (status, body) = send(
        b.api_addr(),
        Method::POST,
        "/api/v1/intel",
        Some(ioc.into()),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = send(
        a.api_addr(),
        Method::DELETE,
        "/api/v1/intel?indicator=203.0.113.7",
        None,
    )
    .await;
    assert!(status == 200 || status == 404, "{status} {body}");
    let (status, body) = send(
        a.api_addr(),
        Method::POST,
        "/api/v1/models/99/activate",
        None,
    )
    .await;
    assert_eq!(status, 409, "{body}");

    // Every node ends with the same entries in the same order.
    let wanted = [
        "operators.add",
        "policy.set",
        "intel.add",
        "intel.remove",
        "models.activate",
        "denied",
    ];
    let same = eventually(Duration::from_secs(30), || async {
        let ta = trail(a.api_addr()).await;
        let has_all = wanted.iter().all(|w| ta.iter().any(|(_, act, _)| act == w));
        (has_all && ta == trail(b.api_addr()).await && ta == trail(c.api_addr()).await)
            .then_some(ta)
    })
    .await
    .expect("the same trail on every node");
    let seqs: Vec<u64> = same.iter().map(|(s, _, _)| *s).collect();
    assert_eq!(seqs, (1..=same.len() as u64).collect::<Vec<_>>());
    let (_, v) = get_json(a.api_addr(), "/api/v1/audit?limit=10000").await;
    let refused = v["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["record"]["action"] == "models.activate")
        .expect("the refused activation is recorded");
    assert!(
        refused["outcome"]
            .as_str()
            .is_some_and(|o| o.starts_with("rejected: no model version 99")),
        "{refused}"
    );
    let policy = v["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["record"]["action"] == "policy.set")
        .expect("the policy change is recorded");
    assert!(
        policy["record"]["summary"]
            .as_str()
            .is_some_and(|s| s.contains("rules.scan_min_ports: (unset) -> 9")),
        "{policy}"
    );

    let by_ana: Vec<&serde_json::Value> = v["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["record"]["operator"] == "ana")
        .collect();
    assert!(
        by_ana
            .iter()
            .any(|e| e["record"]["action"] == "intel.add" && e["record"]["role"] == "analyst"),
        "{by_ana:?}"
    );
    assert!(
        by_ana
            .iter()
            .any(|e| e["record"]["action"] == "denied"
                && e["record"]["target"] == "PUT /api/v1/policy"),
        "{by_ana:?}"
    );

    // Paging after a sequence number; bad parameters are named.
    let (_, page) = get_json(a.api_addr(), "/api/v1/audit?after=2&limit=2").await;
    let seqs: Vec<u64> = page["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["seq"].as_u64())
        .collect();
    assert_eq!(seqs, [3, 4], "{page}");
    for (query, field) in [
        ("after=x", "after"),
        ("limit=0", "limit"),
        ("since=soon", "since"),
    ] {
        let (status, body) = get(a.api_addr(), &format!("/api/v1/audit?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body.contains(&format!("{field}: ")), "{query}: {body}");
    }

    // The CLI shows the same trail.
    let (code, out) = cli(c.api_addr(), &["audit", "tail", "-n", "3"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("SEQ") && out.lines().count() == 4, "{out}");
    let (code, out) = cli(a.api_addr(), &["audit", "list", "--since", "1h", "--json"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.lines().count(), same.len(), "{out}");

    // Export from b, trust the members a signs for, verify offline.
    let dir = tempfile::tempdir().expect("dir");
    let (status, members) = get(a.api_addr(), "/api/v1/members/export").await;
    assert_eq!(status, 200, "{members}");
    let members_file = dir.path().join("members.json");
    std::fs::write(&members_file, members).expect("written");
    let (status, export) = get(b.api_addr(), "/api/v1/audit/export").await;
    assert_eq!(status, 200, "{export}");
    let lines: Vec<String> = export.lines().map(str::to_owned).collect();
    let entries = lines.len() - 1;
    assert!(entries >= 4, "{export}");
    let write = |name: &str, lines: &[String]| {
        let path = dir.path().join(name);
        std::fs::write(&path, lines.join("\n") + "\n").expect("written");
        path
    };
    let (code, out) = verify(&write("trail.jsonl", &lines), &members_file);
    assert_eq!(code, 0, "{out}");
    // `amoskys audit export` writes the same entries (its head is signed anew).
    let (code, exported) = cli(b.api_addr(), &["audit", "export"]);
    assert_eq!(code, 0, "{exported}");
    let cli_lines: Vec<&str> = exported.lines().collect();
    assert_eq!(cli_lines[..entries], lines[..entries], "same entries");
    let (code, out) = verify(
        &write(
            "cli.jsonl",
            &cli_lines.iter().map(|l| l.to_string()).collect::<Vec<_>>(),
        ),
        &members_file,
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("ok: {entries} entries")), "{out}");

    // One byte flipped in entry 2: named as edited.
    let mut flipped = lines.clone();
    let at = flipped[1].find("\"action\":\"").expect("an action") + 10;
    let mut bytes = flipped[1].clone().into_bytes();
    bytes[at] ^= 0x01;
    flipped[1] = String::from_utf8(bytes).expect("still text");
    let (code, out) = verify(&write("flipped.jsonl", &flipped), &members_file);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("entry 2: edited"), "{out}");

    // Entry 2 removed: named as missing.
    let mut removed = lines.clone();
    removed.remove(1);
    let (code, out) = verify(&write("removed.jsonl", &removed), &members_file);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("entry 2: missing"), "{out}");

    // Entries 2 and 3 swapped: entry 2 is named.
    let mut swapped = lines.clone();
    swapped.swap(1, 2);
    let (code, out) = verify(&write("swapped.jsonl", &swapped), &members_file);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("entry 2: missing: entry 3 comes where 2 should"),
        "{out}"
    );

    // The last entry cut off: the signed head names it.
    let mut cut = lines.clone();
    cut.remove(entries - 1);
    let (code, out) = verify(&write("cut.jsonl", &cut), &members_file);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("entry {entries}: missing")), "{out}");

    for n in [c, b, a] {
        n.shutdown().await;
    }
}
