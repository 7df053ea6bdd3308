//! The audit trail on three real members (libp2p on loopback, RocksDB
//! each): a member that was down while the log it missed was purged comes
//! back through a snapshot and ends with the same trail as the others.

mod common;

use std::time::Duration;

use amoskys_consensus::audit::{AuditEntry, AuditRecord, ChainCheck};
use amoskys_consensus::{Command, Role};
use common::{Lab, keypair, policy, quick, until};

fn snapshots_often(s: &mut amoskys_consensus::ClusterSettings) {
    quick(s);
    s.snapshot_every = 20;
    s.keep_logs = 0;
}

/// A policy change with its record, signed by member `i`'s key.
fn audited(lab: &Lab, i: usize, v: u64) -> Command {
    let node = lab.m(i).id;
    let mut record = AuditRecord {
        time_ns: 1_000 + v,
        operator: "alice".into(),
        operator_key: String::new(),
        role: Some(Role::Admin),
        node,
        action: "policy.set".into(),
        target: "policy".into(),
        summary: format!("version {} -> {v}", v - 1),
        result: String::new(),
        sig: String::new(),
    };
    let sig = keypair(i)
        .sign(&record.signed_bytes())
        .expect("ed25519 signs");
    record.sig = hex::encode(sig);
    Command::Audited {
        record,
        command: Some(Box::new(policy(&format!("v = {v}"), node))),
    }
}

fn trail(lab: &Lab, i: usize) -> Vec<AuditEntry> {
    lab.m(i).cluster.audit().after(0, 1_000).expect("read")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_back_from_a_snapshot_holds_the_same_trail() {
    let mut lab = Lab::start(3, 0, snapshots_often).await;
    lab.init(3).await;
    let leader = lab.leader().await;
    let away = (leader + 1) % 3;
    lab.down(away).await;
    for v in 1..=60u64 {
        lab.m(leader)
            .cluster
            .propose(audited(&lab, leader, v))
            .await
            .expect("two of three commit");
    }
    until("a purge on the leader", Duration::from_secs(10), || {
        let p = lab.m(leader).cluster.raft().metrics().borrow().purged;
        async move { p.is_some_and(|p| p.index > 20) }
    })
    .await;

    lab.up(away, snapshots_often).await;
    lab.applied_everywhere(60).await;
    let m = lab.m(away).cluster.raft().metrics().borrow().clone();
    assert!(m.snapshot.is_some(), "the member installed a snapshot");
    let reference = trail(&lab, leader);
    assert_eq!(reference.len(), 60);
    let mut check = ChainCheck::default();
    reference
        .iter()
        .for_each(|e| check.push(e).expect("a good chain"));
    for i in 0..3 {
        assert_eq!(trail(&lab, i), reference, "member {i} holds the same trail");
    }
    lab.stop().await;
}
