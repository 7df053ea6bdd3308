//! Node key rotation in a three-voter cluster while alerts flow: the voter
//! restarts as its successor, stays a voter, no alert is lost, alerts its
//! old key signed before the hand-over still verify (online and offline)
//! and one it signs after is refused.

mod common;

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use amoskys_mesh::{Alert, AlertBody};
use amoskys_node::Node;
use common::{eventually, get_json, keyed_dirs, send, three_voters, voter_config};
use reqwest::Method;

/// Ids of the alerts a node holds.
async fn held(addr: SocketAddr) -> BTreeSet<String> {
    let (_, v) = get_json(addr, "/api/v1/alerts?limit=10000").await;
    v["alerts"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

async fn ids(addr: SocketAddr, role: &str) -> BTreeSet<String> {
    let (_, v) = get_json(addr, "/api/v1/cluster").await;
    v["cluster"][role]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_voter_hands_its_key_over_while_alerts_flow() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
    let (dirs, admitted) = keyed_dirs(3);
    let [a, b, c] = three_voters(&dirs, &admitted).await;
    let a_id = a.identity().peer_id().to_string();
    let b_id = b.identity().peer_id().to_string();
    let old_id = c.identity().peer_id().to_string();

    // Alerts keep flowing from a during the whole rotation.
    let mut raised: Vec<Alert> = Vec::new();
    let mut old_alerts = Vec::new();
    for i in 0..3 {
        old_alerts.push(common::raise(&c, Ipv4Addr::new(10, 3, 0, i)).await);
        raised.push(common::raise(&a, Ipv4Addr::new(10, 1, 0, i)).await);
    }
    raised.extend(old_alerts.iter().cloned());

    // The rotation, by the command an operator runs on c's host. The node
    // asks to restart; here the test restarts it, on the same API address,
    // as `amoskys run` does in its own process.
    let api = c.api_addr();
    let rotate = Command::new(env!("CARGO_BIN_EXE_amoskys"))
        .args(["key", "rotate", "--api", &api.to_string()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("key rotate runs");
    tokio::time::timeout(Duration::from_secs(20), c.restart_requested())
        .await
        .expect("the node asks to restart");
    raised.push(common::raise(&a, Ipv4Addr::new(10, 1, 1, 0)).await);
    c.shutdown().await;
    raised.push(common::raise(&a, Ipv4Addr::new(10, 1, 1, 1)).await);
    let port = common::mesh_port(&a).await;
    let mut config = voter_config(dirs[2].path(), &admitted, Some(port));
    config.api.listen = api.to_string();
    // The stopped node's last tasks may hold the database for a moment, as
    // `amoskys run` allows for when it restarts.
    let c = eventually(Duration::from_secs(10), || {
        let config = config.clone();
        async move { Node::start(config).await.ok() }
    })
    .await
    .expect("the node restarts");
    let new_id = c.identity().peer_id().to_string();
    assert_ne!(new_id, old_id);
    let out = tokio::task::spawn_blocking(move || rotate.wait_with_output())
        .await
        .expect("joined")
        .expect("key rotate ends");
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        printed.contains(&format!("old key   {old_id}")),
        "{printed}"
    );
    assert!(
        printed.contains(&format!("{new_id} is a voter")),
        "{printed}"
    );

    // The successor takes the old key's seat; the old key leaves.
    let expected: BTreeSet<String> = [a_id.clone(), b_id.clone(), new_id.clone()].into();
    for n in [&a, &b, &c] {
        let seen = eventually(Duration::from_secs(60), || async {
            let voters = ids(n.api_addr(), "voters").await;
            let learners = ids(n.api_addr(), "learners").await;
            (voters == expected && learners.is_empty()).then_some(())
        })
        .await;
        let (_, cluster) = get_json(n.api_addr(), "/api/v1/cluster").await;
        assert!(
            seen.is_some(),
            "voters a, b and the successor on {}: {cluster}",
            n.api_addr()
        );
    }
    for i in 0..3 {
        raised.push(common::raise(&c, Ipv4Addr::new(10, 4, 0, i)).await);
        raised.push(common::raise(&a, Ipv4Addr::new(10, 1, 2, i)).await);
    }
    assert!(
        raised[raised.len() - 2].origin == new_id,
        "the successor signs"
    );

    // No alert lost: every node holds every alert raised.
    let all: BTreeSet<String> = raised.iter().map(|a| a.id.clone()).collect();
    for n in [&a, &b, &c] {
        let complete = eventually(Duration::from_secs(30), || async {
            all.is_subset(&held(n.api_addr()).await).then_some(())
        })
        .await;
        let missing: Vec<String> = all.difference(&held(n.api_addr()).await).cloned().collect();
        assert!(complete.is_some(), "{} misses {missing:?}", n.api_addr());
    }

    // The hand-over is in the membership export and the audit trail.
    let (status, export) = get_json(a.api_addr(), "/api/v1/members/export").await;
    assert_eq!(status, 200, "{export}");
    let retired = &export["retired"][0];
    assert_eq!(retired["id"], old_id.as_str(), "{export}");
    assert_eq!(retired["successor"], new_id.as_str());
    let last_seq = old_alerts.iter().map(|a| a.body.seq).max();
    assert_eq!(retired["last_seq"].as_u64(), last_seq, "{export}");
    let (_, trail) = get_json(b.api_addr(), "/api/v1/audit?limit=1000").await;
    assert!(
        trail.to_string().contains("node.key.rotate"),
        "the hand-over is audited: {trail}"
    );

    // Offline: the old key's alerts verify against the export; an alert it
    // signs after the hand-over does not.
    let dir = tempfile::tempdir().expect("dir");
    let members = dir.path().join("members.json");
    std::fs::write(&members, export.to_string()).expect("write");
    let retired_key = dirs[2]
        .path()
        .join("retired-keys")
        .join(format!("{old_id}.key"));
    let old_key = amoskys_node::auth::load_signing_key(&retired_key).expect("the retired key");
    let late = Alert::sign(
        AlertBody {
            seq: last_seq.expect("old alerts") + 1,
            ..old_alerts[0].body.clone()
        },
        &old_key,
    );
    let verify = |alerts: &[&Alert]| {
        let file = dir.path().join("alerts.jsonl");
        let lines: Vec<String> = alerts
            .iter()
            .map(|a| String::from_utf8(a.encode()).expect("utf-8"))
            .collect();
        std::fs::write(&file, lines.join("\n") + "\n").expect("write");
        Command::new(env!("CARGO_BIN_EXE_amoskys"))
            .args(["alerts", "verify", "--members"])
            .arg(&members)
            .arg(&file)
            .output()
            .expect("verify runs")
    };
    let before: Vec<&Alert> = old_alerts.iter().collect();
    let out = verify(&before);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let out = verify(&[&old_alerts[0], &late]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("handed over to"), "{text}");

    for n in [a, b, c] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_is_not_a_member_or_the_only_voter_cannot_rotate() {
    let dir = tempfile::tempdir().expect("dir");
    let n = Node::start(common::quiet_config(
        dir.path(),
        &["learning.enabled=false"],
    ))
    .await
    .expect("node starts");
    common::wait_voters(n.api_addr(), 1).await;
    let (status, v) = send(n.api_addr(), Method::POST, "/api/v1/node/key/rotate", None).await;
    assert_eq!(status, 409, "{v}");
    assert!(
        v["error"].as_str().is_some_and(|e| e.contains("quorum")),
        "{v}"
    );
    assert!(!amoskys_node::rotation::is_staged(dir.path()));
    n.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_rotation_takes_over_at_the_next_start() {
    let dir = tempfile::tempdir().expect("dir");
    let old = amoskys_node::Identity::generate();
    old.write(&dir.path().join(amoskys_node::identity::KEY_FILE), false)
        .expect("key");
    let out = Command::new(env!("CARGO_BIN_EXE_amoskys"))
        .args(["key", "rotate", "--offline", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("key rotate runs");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{printed}");
    assert!(amoskys_node::rotation::is_staged(dir.path()));
    let n = Node::start(common::quiet_config(
        dir.path(),
        &["learning.enabled=false"],
    ))
    .await
    .expect("node starts");
    let new = n.identity().peer_id().to_string();
    assert_ne!(new, old.peer_id().to_string());
    assert!(printed.contains(&new), "{printed}");
    assert!(
        dir.path()
            .join("retired-keys")
            .join(format!("{}.key", old.peer_id()))
            .exists()
    );
    n.shutdown().await;
}
