//! The audit trail in real RocksDB: written with the applied state, carried
//! by a snapshot, and the same on a member that installs it.

use std::sync::Arc;

use amoskys_consensus::audit::{AuditRecord, ChainCheck};
use amoskys_consensus::store::{self, Database};
use amoskys_consensus::{Command, NodeId, Outcome, Role, TypeConfig};
use ed25519_dalek::{Signer, SigningKey};
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};

fn record(sk: &SigningKey, i: u64) -> AuditRecord {
    let mut r = AuditRecord {
        time_ns: 1_000 + i,
        operator: "alice".into(),
        operator_key: hex::encode(sk.verifying_key().to_bytes()),
        role: Some(Role::Analyst),
        node: NodeId(sk.verifying_key().to_bytes()),
        action: "case.note".into(),
        target: format!("case {i}"),
        summary: "a note".into(),
        result: "ok".into(),
        sig: String::new(),
    };
    r.sig = hex::encode(sk.sign(&r.signed_bytes()).to_bytes());
    r
}

fn entry(index: u64, cmd: Command) -> Entry<TypeConfig> {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, NodeId::from(1)), index),
        payload: EntryPayload::Normal(cmd),
    }
}

fn open(dir: &tempfile::TempDir) -> store::Opened {
    let db = amoskys_consensus::lab::open_db(dir.path()).expect("db");
    store::open(db as Arc<dyn Database>).expect("store")
}

#[tokio::test]
async fn a_snapshot_carries_the_trail_to_a_new_member() {
    let sk = SigningKey::from_bytes(&[7; 32]);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut a = open(&dir);
    let entries: Vec<_> = (1..=30)
        .map(|i| {
            entry(
                i,
                Command::Audited {
                    record: record(&sk, i),
                    command: None,
                },
            )
        })
        .collect();
    let outcomes = a.sm.apply(entries).await.expect("applied");
    assert_eq!(outcomes.last(), Some(&Outcome::Recorded { seq: 30 }));
    let trail = a.audit.after(0, 100).expect("read");
    assert_eq!(trail.len(), 30);
    let mut check = ChainCheck::default();
    trail
        .iter()
        .for_each(|e| check.push(e).expect("a good chain"));

    let mut builder = a.sm.get_snapshot_builder().await;
    let snap = builder.build_snapshot().await.expect("snapshot");

    let dir_b = tempfile::tempdir().expect("temp dir");
    let mut b = open(&dir_b);
    b.sm.install_snapshot(&snap.meta, snap.snapshot)
        .await
        .expect("installed");
    assert_eq!(b.audit.after(0, 100).expect("read"), trail);
    assert_eq!(
        b.applied.borrow().state.audit,
        a.applied.borrow().state.audit
    );

    // Both go on with the same next entry and stay identical.
    let next = || {
        vec![entry(
            31,
            Command::Audited {
                record: record(&sk, 31),
                command: None,
            },
        )]
    };
    a.sm.apply(next()).await.expect("applied");
    b.sm.apply(next()).await.expect("applied");
    assert_eq!(
        a.audit.after(0, 100).expect("read"),
        b.audit.after(0, 100).expect("read")
    );
    assert_eq!(b.audit.newest(0, 2).expect("read").len(), 2);
    assert_eq!(b.audit.after(29, 100).expect("read").len(), 2);
}

#[tokio::test]
async fn old_entries_are_dropped_but_never_the_newest_thousand() {
    use amoskys_consensus::audit::{MIN_KEPT, RETENTION_NS};
    let sk = SigningKey::from_bytes(&[8; 32]);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut a = open(&dir);
    let old = MIN_KEPT + 100;
    let mut batch = Vec::new();
    for i in 1..=old + 1 {
        let mut r = record(&sk, i);
        if i == old + 1 {
            // The newest is recorded past the retention of all the others.
            r.time_ns = RETENTION_NS + 1_000_000;
            r.sig = hex::encode(sk.sign(&r.signed_bytes()).to_bytes());
        }
        batch.push(entry(
            i,
            Command::Audited {
                record: r,
                command: None,
            },
        ));
        if batch.len() == 200 || i == old + 1 {
            a.sm.apply(std::mem::take(&mut batch))
                .await
                .expect("applied");
        }
    }
    let kept = a.audit.after(0, 10_000).expect("read");
    assert_eq!(kept.len() as u64, MIN_KEPT, "the newest {MIN_KEPT} stay");
    assert_eq!(kept[0].seq, old + 2 - MIN_KEPT);
    // The chain still verifies from the first entry kept.
    let mut check = ChainCheck::default();
    kept.iter()
        .for_each(|e| check.push(e).expect("a good chain"));
    assert_eq!(a.applied.borrow().state.audit.count, old + 1);
}
