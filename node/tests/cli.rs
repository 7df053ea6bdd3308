//! The `amoskys` client commands as a user runs them, against real nodes:
//! what `status` shows, the server's reason on every refusal, the exit code
//! of an unreachable node, URL-encoded queries, the default federated rule,
//! `alerts tail` ids and its end, completions and the manual page.

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use amoskys_node::Node;
use common::eventually;

/// Runs `amoskys ARGS --api ADDR`; exit code and stdout + stderr.
fn amoskys(api: Option<SocketAddr>, args: &[&str]) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_amoskys"));
    cmd.args(args);
    if let Some(a) = api {
        cmd.args(["--api", &a.to_string()]);
    }
    let out = cmd.output().expect("amoskys runs");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

async fn run(api: Option<SocketAddr>, args: &[&str]) -> (i32, String) {
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        amoskys(api, &refs)
    })
    .await
    .expect("joins")
}

const FAST: [&str; 5] = [
    "cluster.heartbeat_ms=100",
    "cluster.election_min_ms=400",
    "cluster.election_max_ms=800",
    "sensors.procfs.enabled=false",
    "learning.enabled=false",
];

#[test]
fn an_unreachable_node_has_its_own_exit_code_and_says_why() {
    // A port nothing listens on: bind, learn the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    for args in [
        vec!["status"],
        vec!["cluster", "status"],
        vec!["alerts", "export"],
    ] {
        let (code, out) = amoskys(Some(addr), &args);
        assert_eq!(code, 3, "{args:?}: {out}");
        assert!(
            out.to_lowercase().contains("connection refused") && out.contains(&addr.to_string()),
            "{args:?} names the cause and the address: {out}"
        );
    }
}

#[test]
fn completions_and_the_manual_page_are_generated() {
    for shell in ["bash", "zsh", "fish"] {
        let (code, out) = amoskys(None, &["completions", shell]);
        assert_eq!(code, 0, "{shell}: {out}");
        assert!(out.contains("amoskys") && out.contains("status"), "{shell}");
    }
    let (code, out) = amoskys(None, &["man"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(".TH") && out.contains("amoskys"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_peers_role_leader_term_and_versions() {
    let (dirs, admitted) = common::keyed_dirs(2);
    let mut sets = vec![admitted.as_str()];
    sets.extend(FAST);
    let a = Node::start(common::quiet_config(dirs[0].path(), &sets))
        .await
        .expect("a starts");
    let boot = format!(
        "mesh.bootstrap=[\"127.0.0.1:{}\"]",
        common::mesh_port(&a).await
    );
    sets.push(&boot);
    let b = Node::start(common::quiet_config(dirs[1].path(), &sets))
        .await
        .expect("b starts");
    let both = eventually(Duration::from_secs(30), || async {
        let (_, v) = common::get_json(b.api_addr(), "/api/v1/cluster").await;
        (v["cluster"]["voters"].as_array().map_or(0, Vec::len) == 2
            && v["cluster"]["leader"].is_string())
        .then_some(())
    })
    .await;
    assert!(both.is_some(), "two voters with a leader");
    let policy = "[rules]\nscan_min_ports = 30\n";
    let (code, _) = common::send(
        a.api_addr(),
        reqwest::Method::PUT,
        "/api/v1/policy",
        Some(policy.into()),
    )
    .await;
    assert_eq!(code, 200);

    let a_id = a.identity().peer_id().to_string();
    let b_id = b.identity().peer_id().to_string();
    let (code, out) = run(Some(b.api_addr()), &["status"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&b_id), "its own id: {out}");
    assert!(!out.contains("peers     none"), "{out}");
    assert!(
        out.contains("PEER ID") && out.contains(&a_id),
        "a is a peer: {out}"
    );
    assert!(
        out.contains("cluster   follower") || out.contains("cluster   leader"),
        "{out}"
    );
    assert!(out.contains("term ") && out.contains("leader "), "{out}");
    assert!(out.contains("policy    version 1"), "{out}");
    assert!(out.contains("model     "), "{out}");

    let (code, out) = run(Some(b.api_addr()), &["status", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON");
    assert_eq!(v["policy_version"], 1);
    assert!(v["cluster"]["term"].as_u64().is_some(), "{v}");
    assert!(v["peers"].as_array().is_some_and(|p| !p.is_empty()), "{v}");

    // Tables with headers.
    let (code, out) = run(Some(a.api_addr()), &["members", "list"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("ROLE"), "{out}");
    assert!(out.contains(&a_id) && out.contains(&b_id), "{out}");
    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn learn_round_takes_the_default_rule_and_refusals_carry_the_reason() {
    let dir = tempfile::tempdir().expect("dir");
    let n = Node::start(common::quiet_config(dir.path(), &FAST[..4]))
        .await
        .expect("starts");
    let api = n.api_addr();
    let ready = eventually(Duration::from_secs(15), || async {
        let (_, v) = common::get_json(api, "/api/v1/cluster").await;
        v["cluster"]["leader"].is_string().then_some(())
    })
    .await;
    assert!(ready.is_some(), "a one-node cluster");
    // A short round on the process model; each case adds its flags.
    let round = [
        "learn",
        "round",
        "--kind",
        "process",
        "--deadline-secs",
        "2",
    ];
    let (code, out) = run(Some(api), &round).await;
    assert_eq!(code, 0, "the default rule is accepted: {out}");
    assert!(out.contains("round ") && out.contains("started"), "{out}");
    for rule in ["median", "trimmed-mean", "krum", "multi-krum"] {
        let (code, out) = run(Some(api), &[&round[..], &["--rule", rule]].concat()).await;
        assert_eq!(code, 0, "{rule}: {out}");
    }
    // The server's own reason reaches the user, with its status.
    let (code, out) = run(Some(api), &["learn", "round", "--kind", "nonsense"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("400") && out.contains("kind"), "{out}");

    // --wait follows the round to its end (here: abandoned, no data).
    let started = Instant::now();
    let (code, out) = run(Some(api), &[&round[..], &["--wait"]].concat()).await;
    assert!(
        out.contains("abandoned") || out.contains("done"),
        "the outcome is printed: {out}"
    );
    assert!(code == 0 || out.contains("abandoned"), "{out}");
    assert!(started.elapsed() < Duration::from_secs(60), "{out}");
    let (code, out) = run(Some(api), &["learn", "rounds"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("ROUND"), "{out}");

    // A time with `+` travels URL-encoded.
    let (code, out) = run(
        Some(api),
        &["alerts", "export", "--since", "2026-12-06T08:00:00+00:00"],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    n.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_tail_prints_ids_oldest_first_and_says_when_the_node_stops() {
    let dir = tempfile::tempdir().expect("dir");
    let n = Node::start(common::quiet_config(dir.path(), &FAST))
        .await
        .expect("starts");
    let alerts: Vec<amoskys_mesh::Alert> = (0..3u64)
        .map(|i| common::test_alert(i, &format!("rule_{i}")))
        .collect();
    n.store().put_alerts(&alerts).expect("stored");

    let mut child = Command::new(env!("CARGO_BIN_EXE_amoskys"))
        .args(["alerts", "tail", "--api", &n.api_addr().to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tail runs");
    // Give it time to print the stored alerts and subscribe.
    tokio::time::sleep(Duration::from_secs(2)).await;
    n.shutdown().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().expect("waits") {
            break s;
        }
        assert!(Instant::now() < deadline, "tail ends when the node stops");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let out = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        status.code(),
        Some(3),
        "non-zero when the node stops: {stderr}"
    );
    assert!(stderr.contains("stream ended"), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    for (line, alert) in lines.iter().zip(&alerts) {
        assert!(
            line.starts_with(&alert.id),
            "oldest first, id first: {stdout}"
        );
    }
}
