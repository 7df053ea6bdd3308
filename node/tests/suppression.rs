//! Suppression of repeated alerts on real nodes: a node restarted in the
//! middle of a scan does not raise it again (the repeat memory is in its
//! store), and a false-positive verdict given on one node suppresses the
//! same rule on the same subject on another for the policy's time, shown on
//! the case.

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use amoskys_mesh::Alert;
use amoskys_node::Node;
use common::{eventually, get_json, keyed_dirs, mesh_port, quiet_config};
use tokio::sync::broadcast;

fn about(a: &Alert, src: Ipv4Addr) -> bool {
    a.body.subject.rsplit(':').next() == Some(src.to_string().as_str())
}

/// The next alert `n` raises about `src`, within `limit`.
async fn next_about(
    rx: &mut broadcast::Receiver<Alert>,
    me: &str,
    src: Ipv4Addr,
    limit: Duration,
) -> Option<Alert> {
    tokio::time::timeout(limit, async {
        loop {
            match rx.recv().await {
                Ok(a) if a.origin == me && about(&a, src) => return a,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
            }
        }
    })
    .await
    .ok()
}

/// Scans from `quiet` and then from `loud`: the writer takes them in that
/// order, so once `loud` alerts, `quiet`'s scan went through detection.
/// Returns whether `quiet` raised anything.
async fn quiet_then_loud(n: &Node, quiet: Ipv4Addr, loud: Ipv4Addr) -> bool {
    let me = n.identity().peer_id().to_string();
    let mut rx = n.subscribe_alerts();
    n.inject(common::scan(quiet));
    n.inject(common::scan(loud));
    let mut quiet_raised = false;
    let got_loud = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match rx.recv().await {
                Ok(a) if a.origin == me && about(&a, quiet) => quiet_raised = true,
                Ok(a) if a.origin == me && about(&a, loud) => return,
                _ => {}
            }
        }
    })
    .await;
    assert!(got_loud.is_ok(), "the scan from {loud} alerts");
    quiet_raised
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_does_not_raise_the_same_scan_again() {
    let dir = tempfile::tempdir().expect("dir");
    let sets = ["sensors.procfs.enabled=false", "learning.enabled=false"];
    // A stopped node's last tasks may hold the database a moment longer.
    let start = || async {
        eventually(Duration::from_secs(10), || async {
            Node::start(quiet_config(dir.path(), &sets)).await.ok()
        })
        .await
        .expect("node starts")
    };
    let src = Ipv4Addr::new(192, 0, 2, 44);
    let n = start().await;
    let me = n.identity().peer_id().to_string();
    let mut rx = n.subscribe_alerts();
    n.inject(common::scan(src));
    next_about(&mut rx, &me, src, Duration::from_secs(10))
        .await
        .expect("the scan raises an alert");
    n.shutdown().await;

    // The same scan goes on after the restart, within suppress_secs (300).
    let n = start().await;
    let held = held_about(n.api_addr(), src).await;
    assert!(held >= 1, "the first alert is kept");
    let raised = quiet_then_loud(&n, src, Ipv4Addr::new(192, 0, 2, 45)).await;
    assert!(
        !raised,
        "the restarted node raised the scan from {src} again"
    );
    assert_eq!(held_about(n.api_addr(), src).await, held, "nothing new");
    n.shutdown().await;
}

/// How many alerts a node holds about `src`.
async fn held_about(api: std::net::SocketAddr, src: Ipv4Addr) -> usize {
    let (_, v) = get_json(api, "/api/v1/alerts?limit=10000").await;
    let tail = format!(":{src}");
    v["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .filter(|a| a["subject"].as_str().is_some_and(|s| s.ends_with(&tail)))
        .count()
}

/// Verdicts suppress for this long in the test's policy.
const VERDICT_SECS: u64 = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_false_positive_verdict_on_one_node_suppresses_repeats_on_another() {
    let (dirs, admitted) = keyed_dirs(2);
    let mut nodes: Vec<Node> = Vec::new();
    let mut boot = String::new();
    for (i, d) in dirs.iter().enumerate() {
        // One-second rule windows and no repeat suppression: only the
        // verdict can keep a repeated scan quiet.
        let policy = d.path().join("rules.toml");
        std::fs::write(
            &policy,
            format!("window_secs = 1\nfalse_positive_suppress_secs = {VERDICT_SECS}\n"),
        )
        .expect("policy written");
        let policy = format!("detection.policy={}", policy.display());
        let mut sets = vec![
            "sensors.procfs.enabled=false",
            "learning.enabled=false",
            "workspace.sync_every_ms=200",
            "detection.suppress_secs=0",
            admitted.as_str(),
            policy.as_str(),
        ];
        if i > 0 {
            sets.push(boot.as_str());
        }
        let n = Node::start(quiet_config(d.path(), &sets))
            .await
            .expect("node starts");
        if i == 0 {
            boot = format!("mesh.bootstrap=[\"127.0.0.1:{}\"]", mesh_port(&n).await);
        }
        nodes.push(n);
    }
    let (a, b) = (&nodes[0], &nodes[1]);
    let me = a.identity().peer_id().to_string();
    let src = Ipv4Addr::new(198, 51, 100, 23);

    let mut rx = a.subscribe_alerts();
    a.inject(common::scan(src));
    let alert = next_about(&mut rx, &me, src, Duration::from_secs(10))
        .await
        .expect("the scan raises an alert on a");
    drop(rx);

    // b holds a's alert once gossiped; its analyst marks it a false positive.
    let path = format!("/api/v1/cases/{}/status", alert.id);
    let marked = eventually(Duration::from_secs(30), || async {
        let (status, v) = common::send(
            b.api_addr(),
            reqwest::Method::POST,
            &path,
            Some(r#"{"status":"false_positive"}"#.into()),
        )
        .await;
        (status == 200).then_some(v)
    })
    .await
    .expect("b marks a's alert false positive");
    let shown = &marked["case"]["suppression"];
    assert_eq!(shown["rule"], alert.body.rule.as_str(), "{marked}");
    assert_eq!(shown["subject"], alert.body.subject.as_str(), "{marked}");
    let verdict_ms = marked["case"]["status_set"]["at_ms"]
        .as_u64()
        .expect("verdict time");
    assert_eq!(
        shown["until_ms"].as_u64(),
        Some(verdict_ms + VERDICT_SECS * 1000)
    );

    // The verdict reaches a through the workspace.
    let case_path = format!("/api/v1/cases/{}", alert.id);
    eventually(Duration::from_secs(30), || async {
        let (_, v) = get_json(a.api_addr(), &case_path).await;
        v["case"]["suppression"].is_object().then_some(())
    })
    .await
    .expect("a has the verdict");

    // `amoskys case show` tells until when.
    let (api, id) = (a.api_addr().to_string(), alert.id.clone());
    let shown = tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_amoskys"))
            .args(["case", "show", &id, "--api", &api])
            .output()
            .expect("amoskys runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
    .await
    .expect("cli");
    assert!(
        shown
            .contains("repeats  of port_scan_vertical on source_ip:198.51.100.23 suppressed until"),
        "{shown}"
    );

    // The same scan again on a, in a later rule window, raises nothing;
    // another source still does.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let raised = quiet_then_loud(a, src, Ipv4Addr::new(198, 51, 100, 24)).await;
    assert!(!raised, "a raised the judged scan from {src} again");
    let (_, v) = get_json(a.api_addr(), &case_path).await;
    assert!(
        v["case"]["suppression"]["suppressed"]
            .as_u64()
            .is_some_and(|n| n >= 1),
        "a counts what the verdict suppressed: {v}"
    );

    // Past the verdict's time the same scan alerts again.
    let end = verdict_ms + VERDICT_SECS * 1000 + 500;
    let now = amoskys_sensors::now_ns() / 1_000_000;
    tokio::time::sleep(Duration::from_millis(end.saturating_sub(now))).await;
    let mut rx = a.subscribe_alerts();
    a.inject(common::scan(src));
    assert!(
        next_about(&mut rx, &me, src, Duration::from_secs(10))
            .await
            .is_some(),
        "after {VERDICT_SECS} s the scan from {src} alerts again"
    );

    for n in nodes {
        n.shutdown().await;
    }
}
