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
use amoskys_node::identity::{Identity, KEY_FILE};
use common::{eventually, get_json};

fn key_of(dir: &Path) -> String {
    let id = Identity::generate();
    id.write(&dir.join(KEY_FILE), false).expect("key written");
    id.public_key_hex()
}

async fn alerts(addr: std::net::SocketAddr) -> Vec<Alert> {
    let (_, body) = get_json(addr, "/api/v1/alerts?limit=1000").await;
    serde_json::from_value(body["alerts"].clone()).expect("alerts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_raised_on_one_node_is_stored_by_every_peer() {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().expect("dir")).collect();
    let keys: Vec<String> = dirs.iter().map(|d| key_of(d.path())).collect();
    let admitted = format!(
        "mesh.admitted=[{}]",
        keys.iter()
            .map(|k| format!("\"{k}\""))
            .collect::<Vec<_>>()
            .join(",")
    );
    // Only the first node watches processes; the others learn by gossip.
    let a = Node::start(common::quiet_config(dirs[0].path(), &[&admitted]))
        .await
        .expect("a starts");
    let a_mesh = a.mesh().expect("mesh").listen_addrs().await.expect("addrs");
    let port = a_mesh
        .iter()
        .find_map(|m| {
            m.iter().find_map(|p| match p {
                libp2p::multiaddr::Protocol::Tcp(port) => Some(port),
                _ => None,
            })
        })
        .expect("tcp port");
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
    let peer = &body["peers"][0];
    assert_eq!(peer["id"], a.identity().peer_id().to_string());
    assert!(peer["connected_for_secs"].is_u64());
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
    }

    let (_, metrics) = common::get(b.api_addr(), "/metrics").await;
    assert!(metrics.contains("amoskys_mesh_peers 1"), "{metrics}");
    let received = metrics
        .lines()
        .find_map(|l| l.strip_prefix("amoskys_mesh_alerts_received_total "))
        .and_then(|v| v.parse::<u64>().ok());
    assert!(received >= Some(1), "{metrics}");
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
