//! Three nodes on loopback: an alert raised by one node's detectors is
//! gossiped, stored and served by the other two, once; `/api/v1/peers`
//! lists the peers; a node that was down gets what it missed by
//! reconciliation and keeps what it held.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use amoskys_mesh::Alert;
use amoskys_node::Node;
use common::{eventually, get_json};

/// Both tests spawn processes that every node on this host sees; one at a
/// time keeps their alerts apart.
static HOST: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The TCP port a node's mesh listens on (once it is listening).
async fn alerts(addr: std::net::SocketAddr) -> Vec<Alert> {
    let (_, body) = get_json(addr, "/api/v1/alerts?limit=1000").await;
    serde_json::from_value(body["alerts"].clone()).expect("alerts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_raised_on_one_node_is_stored_by_every_peer() {
    let _host = HOST.lock().await;
    let (dirs, admitted) = common::keyed_dirs(3);
    // Only the first node watches processes; the others learn by gossip.
    let a = Node::start(common::quiet_config(dirs[0].path(), &[&admitted]))
        .await
        .expect("a starts");
    let port = common::mesh_port(&a).await;
    let bootstrap = format!("mesh.bootstrap=[\"127.0.0.1:{port}\"]");
    let peer_config = |dir: &Path| {
        common::quiet_config(
            dir,
            &[&admitted, &bootstrap, "sensors.procfs.enabled=false"],
        )
    };
    let b = Node::start(peer_config(dirs[1].path()))
        .await
        .expect("b starts");
    let c = Node::start(peer_config(dirs[2].path()))
        .await
        .expect("c starts");

    eventually(Duration::from_secs(20), || async {
        let (_, body) = get_json(a.api_addr(), "/api/v1/peers").await;
        (body["peers"].as_array().map_or(0, Vec::len) == 2).then_some(())
    })
    .await
    .expect("a sees both peers");
    let (_, body) = get_json(b.api_addr(), "/api/v1/peers").await;
    assert_eq!(body["mesh"], true);
    let a_id = a.identity().peer_id().to_string();
    let peer = body["peers"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["id"] == a_id.as_str()))
        .expect("b lists a");
    assert!(peer["connected_for_secs"].is_u64());
    assert!(
        peer["address"]
            .as_str()
            .is_some_and(|x| x.contains("127.0.0.1"))
    );
    // Subscriptions follow connections; one gossip heartbeat later the mesh
    // carries alerts.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // A "web server" spawning a shell, seen by node a only.
    let bin = tempfile::tempdir().expect("tempdir");
    let nginx = bin.path().join("nginx");
    std::fs::copy("/bin/bash", &nginx).expect("copy bash");
    let mut service = Command::new(&nginx)
        .args(["-c", "/bin/sh -c 'sleep 1'; true"])
        .spawn()
        .expect("spawn service");
    let raised = eventually(Duration::from_secs(10), || async {
        alerts(a.api_addr())
            .await
            .into_iter()
            .find(|x| x.body.rule == "service_spawned_shell")
    })
    .await
    .expect("a raises the alert");
    let _ = service.wait();

    for n in [&b, &c] {
        let got = eventually(Duration::from_secs(10), || async {
            let all = alerts(n.api_addr()).await;
            all.iter().any(|x| x.id == raised.id).then_some(all)
        })
        .await
        .expect("the alert reaches every peer");
        let copies = got.iter().filter(|x| x.id == raised.id).count();
        assert_eq!(copies, 1, "stored once");
        let copy = got.iter().find(|x| x.id == raised.id).expect("copy");
        assert_eq!(copy, &raised, "byte for byte the same alert");
        copy.verify().expect("still verifies");
        let (_, body) = get_json(n.api_addr(), "/api/v1/alerts?limit=1000").await;
        let status = body["status"]
            .as_array()
            .and_then(|s| s.iter().find(|x| x["id"] == raised.id.as_str()))
            .cloned()
            .expect("status of the alert");
        assert_eq!(status["origin"], "peer");
        assert_eq!(status["signature"], "valid");
    }

    let (_, metrics) = common::get(b.api_addr(), "/metrics").await;
    let metric = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.parse::<u64>().ok())
    };
    assert!(metric("amoskys_mesh_peers") >= Some(1), "{metrics}");
    assert!(
        metric("amoskys_mesh_alerts_received_total") >= Some(1),
        "{metrics}"
    );
    assert!(
        metrics.contains("amoskys_mesh_messages_rejected_total{reason=\"signature\"} 0"),
        "{metrics}"
    );

    // c goes down; an alert raised meanwhile reaches it by reconciliation
    // when it is back, and what it held before survived the restart.
    c.shutdown().await;
    let mut again = Command::new(&nginx)
        .args(["-c", "/bin/sh -c 'sleep 1'; true"])
        .spawn()
        .expect("spawn service");
    let missed = eventually(Duration::from_secs(10), || async {
        alerts(a.api_addr())
            .await
            .into_iter()
            .find(|x| x.body.rule == "service_spawned_shell" && x.id != raised.id)
    })
    .await
    .expect("a raises a second alert");
    let _ = again.wait();
    let c = Node::start(peer_config(dirs[2].path()))
        .await
        .expect("c restarts");
    assert!(alerts(c.api_addr()).await.iter().any(|x| x.id == raised.id));
    let held = eventually(Duration::from_secs(20), || async {
        let all = alerts(c.api_addr()).await;
        all.iter().any(|x| x.id == missed.id).then_some(all)
    })
    .await
    .expect("the missed alert arrives by reconciliation");
    let mut ids: Vec<&str> = held.iter().map(|x| x.id.as_str()).collect();
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n, "no alert stored twice");
    for n in [a, b, c] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_seeing_one_attack_make_one_campaign_alert() {
    let _host = HOST.lock().await;
    let (dirs, admitted) = common::keyed_dirs(3);
    // All three watch the same host, like three sites seeing one attacker.
    let a = Node::start(common::quiet_config(dirs[0].path(), &[&admitted]))
        .await
        .expect("a starts");
    let port = common::mesh_port(&a).await;
    let bootstrap = format!("mesh.bootstrap=[\"127.0.0.1:{port}\"]");
    let mut nodes = vec![a];
    for d in &dirs[1..] {
        let c = common::quiet_config(d.path(), &[&admitted, &bootstrap]);
        nodes.push(Node::start(c).await.expect("node starts"));
    }
    eventually(Duration::from_secs(20), || async {
        let (_, body) = get_json(nodes[0].api_addr(), "/api/v1/peers").await;
        (body["peers"].as_array().map_or(0, Vec::len) == 2).then_some(())
    })
    .await
    .expect("connected");
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let bin = tempfile::tempdir().expect("tempdir");
    let nginx = bin.path().join("nginx");
    std::fs::copy("/bin/bash", &nginx).expect("copy bash");
    let mut service = Command::new(&nginx)
        .args(["-c", "/bin/sh -c 'sleep 1'; true"])
        .spawn()
        .expect("spawn service");
    let campaigns = |all: Vec<Alert>| -> Vec<Alert> {
        all.into_iter()
            .filter(|x| x.body.rule == "campaign" && x.body.technique == "T1059.004")
            .collect()
    };
    let mut seen = Vec::new();
    for n in &nodes {
        let found = eventually(Duration::from_secs(20), || async {
            let c = campaigns(alerts(n.api_addr()).await);
            (!c.is_empty()).then_some(c)
        })
        .await
        .expect("every node holds the campaign");
        seen.push(found);
    }
    let _ = service.wait();
    // Give a possible second announcement time to show up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let first = seen[0][0].clone();
    for n in &nodes {
        let c = campaigns(alerts(n.api_addr()).await);
        let brief: Vec<_> = c
            .iter()
            .map(|x| {
                (
                    &x.origin[40..],
                    x.body.time_ns,
                    &x.body.subject,
                    &x.body.evidence,
                )
            })
            .collect();
        assert_eq!(c.len(), 1, "announced once: {brief:#?}");
        assert_eq!(c[0], first);
    }
    first.verify().expect("signed");
    let refs = first
        .body
        .evidence
        .iter()
        .filter(|(k, _)| k.starts_with("report."))
        .count();
    assert_eq!(refs, 3, "{:?}", first.body.evidence);
    for n in nodes {
        n.shutdown().await;
    }
}
