use ed25519_dalek::{Signer, SigningKey};

use super::*;

fn node_key(seed: u8) -> (SigningKey, NodeId) {
    let sk = SigningKey::from_bytes(&[seed; 32]);
    let id = NodeId(sk.verifying_key().to_bytes());
    (sk, id)
}

fn record(sk: &SigningKey, node: NodeId, action: &str, result: &str) -> AuditRecord {
    let mut r = AuditRecord {
        time_ns: 1_000,
        operator: "alice".into(),
        operator_key: "ab".repeat(32),
        role: Some(Role::Admin),
        node,
        action: action.into(),
        target: "/api/v1/policy".into(),
        summary: "version 1 -> 2".into(),
        result: result.into(),
        sig: String::new(),
    };
    r.sig = hex::encode(sk.sign(&r.signed_bytes()).to_bytes());
    r
}

fn audited(record: AuditRecord, command: Option<Command>) -> Command {
    Command::Audited {
        record,
        command: command.map(Box::new),
    }
}

fn policy(doc: &str) -> Command {
    Command::SetPolicy {
        document: doc.into(),
        author: NodeId::from(1),
        time_ns: 1,
    }
}

/// Applies `n` records from two nodes, alternately; returns the entries.
fn trail(state: &mut ClusterState, n: u64) -> Vec<AuditEntry> {
    let (a, ida) = node_key(1);
    let (b, idb) = node_key(2);
    (0..n)
        .map(|i| {
            let (sk, id) = if i % 2 == 0 { (&a, ida) } else { (&b, idb) };
            let cmd = audited(record(sk, id, "case.ack", "ok"), None);
            let (out, entry) = state.apply_entry(&cmd, 10 + i);
            assert_eq!(out, Outcome::Recorded { seq: i + 1 });
            entry.expect("an entry")
        })
        .collect()
}

#[test]
fn entries_chain_and_carry_the_commands_outcome() {
    let (sk, id) = node_key(1);
    let mut s = ClusterState::default();
    let cmd = audited(record(&sk, id, "policy.set", ""), Some(policy("a = 1")));
    let (out, first) = s.apply_entry(&cmd, 7);
    assert_eq!(out, Outcome::Policy { version: 1 });
    let first = first.expect("an entry");
    assert_eq!((first.seq, first.log_index), (1, 7));
    assert_eq!(first.prev, GENESIS);
    assert_eq!(first.outcome, "ok: policy version 1");
    assert_eq!(s.policy().map(|p| p.version), Some(1));

    let big = "x".repeat(crate::state::MAX_POLICY_BYTES + 1);
    let cmd = audited(record(&sk, id, "policy.set", ""), Some(policy(&big)));
    let (out, second) = s.apply_entry(&cmd, 8);
    assert!(matches!(out, Outcome::Rejected(_)));
    let second = second.expect("a refused command is recorded too");
    assert_eq!(second.prev, first.hash);
    assert!(second.outcome.starts_with("rejected: policy of"));
    assert_eq!(s.audit.count, 2);
    assert_eq!(s.audit.head, second.hash);

    let mut check = ChainCheck::default();
    for e in [&first, &second] {
        check.push(e).expect("a good chain");
    }
}

#[test]
fn a_forged_record_is_refused_and_changes_nothing() {
    let (sk, id) = node_key(1);
    let (_, other) = node_key(3);
    let mut s = ClusterState::default();
    trail(&mut s, 2);
    let before = s.clone();

    // Signed by node 1, claimed by node 3.
    let mut forged = record(&sk, id, "policy.set", "");
    forged.node = other;
    let (out, entry) = s.apply_entry(&audited(forged, Some(policy("a = 2"))), 20);
    assert!(
        matches!(&out, Outcome::Rejected(r) if r.contains("does not verify")),
        "{out:?}"
    );
    assert!(entry.is_none());
    assert_eq!(s, before, "neither the command nor an entry was applied");

    // Edited after signing.
    let mut edited = record(&sk, id, "policy.set", "");
    edited.summary = "nothing to see".into();
    let (out, _) = s.apply_entry(&audited(edited, None), 21);
    assert!(matches!(out, Outcome::Rejected(_)));

    // Over a bound.
    let mut long = record(&sk, id, "policy.set", "");
    long.summary = "x".repeat(MAX_SUMMARY + 1);
    let (out, _) = s.apply_entry(&audited(long, None), 22);
    assert!(
        matches!(&out, Outcome::Rejected(r) if r.contains("summary")),
        "{out:?}"
    );

    // Nested.
    let inner = audited(record(&sk, id, "x", ""), None);
    let (out, _) = s.apply_entry(&audited(record(&sk, id, "y", ""), Some(inner)), 23);
    assert!(matches!(out, Outcome::Rejected(_)));
    assert_eq!(s, before);
}

#[test]
fn the_check_names_an_edited_deleted_or_reordered_entry() {
    let mut s = ClusterState::default();
    let entries = trail(&mut s, 6);
    let run = |list: &[AuditEntry]| -> Result<(), ChainError> {
        let mut c = ChainCheck::default();
        list.iter().try_for_each(|e| c.push(e))
    };
    run(&entries).expect("intact");

    let mut edited = entries.clone();
    edited[2].record.target = "/api/v1/members".into();
    assert_eq!(run(&edited), Err(ChainError::Edited { seq: 3 }));

    // The record edited and the entry re-hashed: its signature fails.
    edited[2].hash = edited[2].compute_hash();
    assert!(matches!(
        run(&edited),
        Err(ChainError::Signature { seq: 3, .. })
    ));

    // The outcome (not signed) edited and re-hashed: the next entry's prev
    // no longer matches.
    let mut rehashed = entries.clone();
    rehashed[2].outcome = "ok: nothing happened".into();
    rehashed[2].hash = rehashed[2].compute_hash();
    assert_eq!(run(&rehashed), Err(ChainError::Broken { seq: 4 }));

    let mut deleted = entries.clone();
    deleted.remove(3);
    assert_eq!(
        run(&deleted),
        Err(ChainError::Missing {
            expected: 4,
            found: 5
        })
    );

    let mut swapped = entries.clone();
    swapped.swap(1, 2);
    assert_eq!(
        run(&swapped),
        Err(ChainError::Missing {
            expected: 2,
            found: 3
        })
    );

    // A record re-signed by nobody: its hash recomputed, the signature bad.
    let mut resigned = entries.clone();
    resigned[0].record.sig = "00".repeat(64);
    resigned[0].hash = resigned[0].compute_hash();
    assert!(matches!(
        run(&resigned[..1]),
        Err(ChainError::Signature { seq: 1, .. })
    ));
}

#[test]
fn the_signed_head_finds_entries_cut_off_the_end() {
    let mut s = ClusterState::default();
    let entries = trail(&mut s, 4);
    let (sk, id) = node_key(9);
    let mut head = ExportHead::of(&entries, id, 5);
    head.sig = hex::encode(sk.sign(&head.signed_bytes()).to_bytes());

    let mut c = ChainCheck::default();
    entries.iter().for_each(|e| c.push(e).expect("intact"));
    c.finish(&head).expect("the head matches");

    let mut short = ChainCheck::default();
    entries[..3]
        .iter()
        .for_each(|e| short.push(e).expect("intact"));
    let err = short.finish(&head).expect_err("one entry cut off");
    assert!(err.to_string().contains("entry 4: missing"), "{err}");

    let mut forged = head.clone();
    forged.count = 3;
    forged.last_seq = 3;
    forged.head_hash = entries[2].hash.clone();
    let err = short
        .finish(&forged)
        .expect_err("head re-written without its key");
    assert!(err.to_string().contains("does not verify"), "{err}");
}

#[test]
fn export_lines_round_trip() {
    let mut s = ClusterState::default();
    let entries = trail(&mut s, 1);
    let line = serde_json::to_string(&entries[0]).expect("json");
    match serde_json::from_str::<ExportLine>(&line).expect("parses") {
        ExportLine::Entry(e) => assert_eq!(e, entries[0]),
        ExportLine::Head { .. } => panic!("an entry read as the head"),
    }
    let head = ExportHead::of(&entries, NodeId::from(1), 1);
    let line = serde_json::to_string(&ExportLine::Head { head: head.clone() }).expect("json");
    match serde_json::from_str::<ExportLine>(&line).expect("parses") {
        ExportLine::Head { head: h } => assert_eq!(h, head),
        ExportLine::Entry(_) => panic!("the head read as an entry"),
    }
}
