//! Sync: partitions heal with every edit kept, rings converge, envelopes
//! stay bounded.

use std::time::{Duration, Instant};

use serde_json::json;

use super::cases::{CaseNotes, Status};
use super::doc::{DocKind, Document, Entry};
use super::intel::ThreatIntel;
use super::sync::{MAX_SYNC_BYTES, PeerSync};
use super::{Node, Side, admit_all, converge, key, sync_nodes};

#[test]
fn partitioned_edits_all_survive_the_merge() {
    let (ka, kb) = (key(1), key(2));
    let (mut ia, mut ib) = (ThreatIntel::new(), ThreatIntel::new());
    let (mut ca, mut cb) = (CaseNotes::new(), CaseNotes::new());
    // Shared history before the partition.
    ia.add("10.0.0.1", "scanner", None, 1_000, &ka).unwrap();
    ia.add("evil.example", "c2", None, 1_000, &ka).unwrap();
    let (mut pa, mut pb) = (PeerSync::new(), PeerSync::new());
    converge(
        Side {
            doc: ia.document_mut(),
            key: &ka,
            peer: &mut pa,
        },
        Side {
            doc: ib.document_mut(),
            key: &kb,
            peer: &mut pb,
        },
    );
    assert_eq!(ib.list(2_000).len(), 2);

    // Partitioned: both sides edit, some of it the same keys.
    ia.add("192.168.0.0/16", "lateral movement", None, 2_000, &ka)
        .unwrap();
    ib.add("bad.example.", "phishing", None, 2_100, &kb)
        .unwrap();
    ia.remove("10.0.0.1", 2_200, &ka).unwrap();
    ib.remove("10.0.0.1", 2_300, &kb).unwrap();
    ib.add("evil.example", "c2, confirmed", None, 2_400, &kb)
        .unwrap();
    ca.ack("alert-1", Some("alice"), 2_000, &ka).unwrap();
    cb.set_status("alert-1", Status::FalsePositive, 2_500, &kb)
        .unwrap();
    ca.note("alert-1", "seen from 10.0.0.9", 2_100, &ka)
        .unwrap();
    cb.note("alert-1", "benign backup job", 2_100, &kb).unwrap();
    ca.note("alert-1", "second note from a", 2_150, &ka)
        .unwrap();

    let (mut qa, mut qb) = (PeerSync::new(), PeerSync::new());
    converge(
        Side {
            doc: ia.document_mut(),
            key: &ka,
            peer: &mut pa,
        },
        Side {
            doc: ib.document_mut(),
            key: &kb,
            peer: &mut pb,
        },
    );
    converge(
        Side {
            doc: ca.document_mut(),
            key: &ka,
            peer: &mut qa,
        },
        Side {
            doc: cb.document_mut(),
            key: &kb,
            peer: &mut qb,
        },
    );

    assert_eq!(ia.document().entries(), ib.document().entries());
    assert_eq!(ca.document().entries(), cb.document().entries());
    let live: Vec<_> = ia.list(3_000).into_iter().map(|i| i.value).collect();
    assert_eq!(live, ["192.168.0.0/16", "bad.example", "evil.example"]);
    assert_eq!(ia.get("evil.example").unwrap().reason, "c2, confirmed");
    assert!(ia.get("10.0.0.1").is_none());
    let case = ca.show("alert-1");
    assert_eq!(case, cb.show("alert-1"));
    assert_eq!(case.status, Status::FalsePositive);
    assert_eq!(case.assignee.as_deref(), Some("alice"));
    let notes: Vec<_> = case.notes.iter().map(|n| n.text.as_str()).collect();
    assert_eq!(notes.len(), 3, "{notes:?}");
    assert!(notes.contains(&"benign backup job") && notes.contains(&"seen from 10.0.0.9"));
}

#[test]
fn five_nodes_converge_over_a_ring() {
    let mut nodes: Vec<Node> = (0..5)
        .map(|i| Node::new(Document::new(DocKind::Intel), i + 1))
        .collect();
    for (i, node) in nodes.iter_mut().enumerate() {
        for j in 0..20u64 {
            let k = &node.key;
            let e = Entry::new(json!({"node": i, "j": j}), 1_000 + j, k);
            node.doc.put(&format!("n{i}/{j}"), e, k).unwrap();
            // Every node also writes one shared key.
            node.doc
                .put("shared", Entry::new(json!(i), 2_000 + i as u64, k), k)
                .unwrap();
        }
    }
    // Two passes around the ring carry every edit to every node.
    for _ in 0..2 {
        for i in 0..5 {
            sync_nodes(&mut nodes, i, (i + 1) % 5);
        }
    }
    let first = nodes[0].doc.entries();
    assert_eq!(first.len(), 101);
    assert_eq!(first["shared"].body, json!(4));
    for node in &nodes[1..] {
        assert_eq!(node.doc.entries(), first);
        assert_eq!(node.doc.heads(), nodes[0].doc.heads());
    }
}

/// Two nodes that each made `n` edits while partitioned, synced: returns
/// them, the bytes on the wire and the time the sync took.
fn partitioned_pair(n: u64) -> (Document, Document, usize, Duration) {
    let (ka, kb) = (key(1), key(2));
    let (mut a, mut b) = (Document::new(DocKind::Intel), Document::new(DocKind::Intel));
    for i in 0..n {
        let (x, y) = (i / 256, i % 256);
        let e = Entry::new(json!({"i": i}), i, &ka);
        a.put(&format!("ip:10.0.{x}.{y}"), e, &ka).unwrap();
        let e = Entry::new(json!({"i": i}), i, &kb);
        b.put(&format!("ip:10.1.{x}.{y}"), e, &kb).unwrap();
    }
    let (mut pa, mut pb) = (PeerSync::new(), PeerSync::new());
    let start = Instant::now();
    let bytes = converge(
        Side {
            doc: &mut a,
            key: &ka,
            peer: &mut pa,
        },
        Side {
            doc: &mut b,
            key: &kb,
            peer: &mut pb,
        },
    );
    (a, b, bytes, start.elapsed())
}

#[test]
fn bytes_to_converge_after_1000_edits_each() {
    let (a, b, bytes, took) = partitioned_pair(1_000);
    assert_eq!(a.entries(), b.entries());
    assert_eq!(a.entries().len(), 2_000);
    println!(
        "converge 2x1000 partitioned edits: {bytes} bytes on the wire ({} per edit) in {took:?}",
        bytes / 2_000
    );
}

#[test]
fn envelopes_are_bounded_and_truncated_sync_still_converges() {
    let (ka, kb) = (key(1), key(2));
    let (mut a, mut b) = (Document::new(DocKind::Intel), Document::new(DocKind::Intel));
    for i in 0..300u64 {
        a.put(
            &format!("k{i}"),
            Entry::new(json!("x".repeat(100)), i, &ka),
            &ka,
        )
        .unwrap();
    }
    let (mut pa, mut pb) = (PeerSync::new(), PeerSync::new());
    let limit = 8 * 1024;
    let mut rounds = 0;
    loop {
        rounds += 1;
        assert!(rounds < 200, "no convergence");
        let ab = a.sync_out_limited(&mut pa, limit);
        let ba = b.sync_out_limited(&mut pb, limit);
        if ab.is_none() && ba.is_none() {
            break;
        }
        for m in ab.iter().chain(&ba) {
            assert!(
                m.len() <= limit,
                "envelope of {} bytes over {limit}",
                m.len()
            );
        }
        if let Some(m) = ab {
            b.sync_in(&mut pb, &m, &admit_all, &kb).unwrap();
        }
        if let Some(m) = ba {
            a.sync_in(&mut pa, &m, &admit_all, &ka).unwrap();
        }
    }
    assert_eq!(a.entries(), b.entries());
    assert_eq!(b.entries().len(), 300);
    assert!(
        rounds > 5,
        "300 changes of ~200 bytes cannot fit in a few 8 KiB envelopes"
    );
    assert!(MAX_SYNC_BYTES >= limit);
}

#[test]
fn outcome_reports_changes_and_quiet_peers_send_nothing() {
    let (ka, kb) = (key(1), key(2));
    let (mut a, mut b) = (Document::new(DocKind::Cases), Document::new(DocKind::Cases));
    let (mut pa, mut pb) = (PeerSync::new(), PeerSync::new());
    converge(
        Side {
            doc: &mut a,
            key: &ka,
            peer: &mut pa,
        },
        Side {
            doc: &mut b,
            key: &kb,
            peer: &mut pb,
        },
    );
    assert!(a.sync_out(&mut pa).is_none(), "in sync: nothing to say");
    a.put("x", Entry::new(json!(1), 1, &ka), &ka).unwrap();
    let mut changed = 0;
    for _ in 0..10 {
        let Some(m) = a.sync_out(&mut pa) else { break };
        let outcome = b.sync_in(&mut pb, &m, &admit_all, &kb).unwrap();
        changed += usize::from(outcome.changed);
        if let Some(r) = b.sync_out(&mut pb) {
            a.sync_in(&mut pa, &r, &admit_all, &ka).unwrap();
        }
    }
    assert_eq!(changed, 1);
    assert_eq!(b.get("x").unwrap().body, json!(1));
}
