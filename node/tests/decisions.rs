//! Response decisions between two real nodes: decisions made on both sides
//! of a partition (a removal too) reach both once it heals.

mod common;

use std::time::Duration;

use amoskys_node::Node;
use amoskys_node::response::{Action, Decision, Subject};
use amoskys_node::workspace::Workspace;
use common::{eventually, keyed_dirs, mesh_port, quiet_config};

async fn start(dir: &std::path::Path, extra: &[&str]) -> Node {
    let mut sets = vec![
        "sensors.procfs.enabled=false",
        "workspace.sync_every_ms=200",
    ];
    sets.extend_from_slice(extra);
    Node::start(quiet_config(dir, &sets))
        .await
        .expect("node starts")
}

fn decision(subject: &str, origin: &str) -> Decision {
    let now = amoskys_sensors::now_ns() / 1_000_000;
    Decision {
        subject: subject.parse().expect("a subject"),
        action: Action::BlockSource,
        reason: format!("decided on {origin}"),
        alerts: vec![],
        origin: format!("operator:test@{origin}"),
        created_ms: now,
        expires_ms: now + 600_000,
    }
}

fn subjects(w: &Workspace) -> Vec<String> {
    w.decisions_list()
        .into_iter()
        .map(|v| v.decision.subject.to_string())
        .collect()
}

async fn set_blocked(a: &Node, b: &Node, on: bool) {
    let (pa, pb) = (
        a.mesh().expect("mesh").peer_id(),
        b.mesh().expect("mesh").peer_id(),
    );
    a.mesh()
        .expect("mesh")
        .block(vec![pb], on)
        .await
        .expect("block");
    b.mesh()
        .expect("mesh")
        .block(vec![pa], on)
        .await
        .expect("block");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_on_both_sides_of_a_partition_reach_both() {
    let (dirs, admitted) = keyed_dirs(2);
    let a = start(dirs[0].path(), &[&admitted]).await;
    let boot = format!("mesh.bootstrap=[\"127.0.0.1:{}\"]", mesh_port(&a).await);
    let b = start(dirs[1].path(), &[&admitted, &boot]).await;
    let (wa, wb) = (a.workspace().clone(), b.workspace().clone());
    wa.decision_put(&decision("198.51.100.7", "a"), None)
        .expect("decided");
    assert!(
        eventually(Duration::from_secs(30), || async {
            (subjects(&wb) == ["198.51.100.7"]).then_some(())
        })
        .await
        .is_some(),
        "b holds a's first decision"
    );

    set_blocked(&a, &b, true).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    wa.decision_put(&decision("203.0.113.0/24", "a"), None)
        .expect("decided");
    wb.decision_put(&decision("192.0.2.99", "b"), None)
        .expect("decided");
    let removed: Subject = "198.51.100.7".parse().expect("a subject");
    wb.decision_remove(&removed, None).expect("removed");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_ne!(subjects(&wa), subjects(&wb), "the partition held");

    set_blocked(&a, &b, false).await;
    let want = ["192.0.2.99", "203.0.113.0/24"];
    assert!(
        eventually(Duration::from_secs(40), || async {
            (subjects(&wa) == want && subjects(&wb) == want).then_some(())
        })
        .await
        .is_some(),
        "converged: a {:?} / b {:?}",
        subjects(&wa),
        subjects(&wb)
    );
    let from_b = wa
        .decisions_list()
        .into_iter()
        .find(|v| v.decision.subject.to_string() == "192.0.2.99")
        .expect("b's decision on a");
    assert_eq!(from_b.decision.reason, "decided on b");
    b.shutdown().await;
    a.shutdown().await;
}
