//! Compaction and rebase: bounded size, concurrent compactions, nodes that
//! come back from an old epoch.

use std::time::Instant;

use serde_json::json;

use super::cases::{CaseNotes, Status};
use super::doc::{DocKind, Document, Entry};
use super::intel::ThreatIntel;
use super::sync::{PeerEpoch, PeerSync};
use super::{Node, Side, admit_all, converge, key, sync_nodes};

const DAY: u64 = 86_400_000;
/// Adds and removes; the benchmark (`cargo bench -p amoskys-node --bench workspace`) does 100k.
const N: u32 = 10_000;

#[test]
fn compaction_of_10k_adds_and_removes_is_small() {
    let k = key(1);
    let mut intel = ThreatIntel::new();
    let start = Instant::now();
    for i in 0..N {
        let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string();
        intel.add(&ip, "bulk", None, u64::from(i), &k).unwrap();
    }
    let adds = start.elapsed();
    let start = Instant::now();
    for i in 0..N {
        let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string();
        intel.remove(&ip, u64::from(N + i), &k).unwrap();
    }
    let removes = start.elapsed();
    intel
        .add("evil.example", "keep me", None, 3 * u64::from(N), &k)
        .unwrap();
    let start = Instant::now();
    let before = intel.document().len_bytes();
    let save = start.elapsed();
    // What a sync_in that carries changes pays to apply them to a copy.
    let start = Instant::now();
    let copy = intel.document().clone();
    let clone = start.elapsed();
    let start = Instant::now();
    assert_eq!(copy.entries().len(), N as usize + 1);
    println!(
        "{}-change document: clone {clone:?}, entries() {:?}",
        2 * N,
        start.elapsed()
    );
    let start = Instant::now();
    let report = intel
        .compact(3 * u64::from(N) + 30 * DAY, 7 * DAY, &k)
        .unwrap();
    let compact = start.elapsed();
    println!(
        "{N} adds {adds:?}, {N} removes {removes:?}; save {before} bytes in {save:?}; \
         compact in {compact:?} -> {} bytes, dropped {} of {} entries",
        report.bytes_after,
        report.entries_dropped,
        report.entries_dropped + report.entries_kept
    );
    assert_eq!(report.bytes_before, before);
    assert_eq!(report.entries_kept, 1);
    assert_eq!(report.entries_dropped, N as usize);
    assert!(
        report.bytes_after < 2_000,
        "{} bytes after compaction",
        report.bytes_after
    );
    assert_eq!(intel.list(0).len(), 1);
    let reloaded = Document::load(&intel.document().save()).unwrap();
    assert_eq!(reloaded.entries(), intel.document().entries());
}

#[test]
fn compaction_keeps_recent_tombstones_and_drops_retired_entries() {
    let k = key(1);
    let mut intel = ThreatIntel::new();
    intel.add("1.1.1.1", "old, removed", None, 0, &k).unwrap();
    intel.remove("1.1.1.1", 1, &k).unwrap();
    intel
        .add("2.2.2.2", "recent, removed", None, 0, &k)
        .unwrap();
    intel.remove("2.2.2.2", 9 * DAY, &k).unwrap();
    intel
        .add("3.3.3.3", "expired", Some(5 * DAY), 0, &k)
        .unwrap();
    intel.add("4.4.4.4", "live", Some(20 * DAY), 0, &k).unwrap();
    let report = intel.compact(10 * DAY, 7 * DAY, &k).unwrap();
    let keys: Vec<_> = intel.document().entries().into_keys().collect();
    assert_eq!(keys, ["ip:2.2.2.2", "ip:4.4.4.4"]);
    assert_eq!(report.entries_dropped, 2);
    assert_eq!(report.epoch.number, 1);
}

#[test]
fn concurrent_compactions_and_edits_converge_without_loss() {
    let (ka, kb) = (key(1), key(2));
    let (mut a, mut b) = (ThreatIntel::new(), ThreatIntel::new());
    a.add("10.0.0.1", "shared", None, 1_000, &ka).unwrap();
    let (mut pa, mut pb) = (PeerSync::new(), PeerSync::new());
    converge(
        Side {
            doc: a.document_mut(),
            key: &ka,
            peer: &mut pa,
        },
        Side {
            doc: b.document_mut(),
            key: &kb,
            peer: &mut pb,
        },
    );

    // Partitioned: each edits, compacts, edits again.
    a.add("a-before.example", "a", None, 2_000, &ka).unwrap();
    b.add("b-before.example", "b", None, 2_000, &kb).unwrap();
    b.add("10.0.0.1", "shared, updated by b", None, 2_500, &kb)
        .unwrap();
    let ea = a.compact(3_000, DAY, &ka).unwrap().epoch;
    let eb = b.compact(3_000, DAY, &kb).unwrap().epoch;
    assert_eq!(ea.number, eb.number);
    assert_ne!(ea, eb);
    a.add("a-after.example", "a", None, 4_000, &ka).unwrap();
    b.add("b-after.example", "b", None, 4_000, &kb).unwrap();
    a.remove("10.0.0.1", 4_100, &ka).unwrap();

    converge(
        Side {
            doc: a.document_mut(),
            key: &ka,
            peer: &mut pa,
        },
        Side {
            doc: b.document_mut(),
            key: &kb,
            peer: &mut pb,
        },
    );
    assert_eq!(a.document().epoch(), ea.max(eb));
    assert_eq!(b.document().epoch(), ea.max(eb));
    assert_eq!(a.document().entries(), b.document().entries());
    let live: Vec<_> = a.list(5_000).into_iter().map(|i| i.value).collect();
    assert_eq!(
        live,
        [
            "a-after.example",
            "a-before.example",
            "b-after.example",
            "b-before.example"
        ]
    );
    assert!(
        a.document().get("ip:10.0.0.1").unwrap().removed,
        "a's later removal wins"
    );
}

#[test]
fn a_node_on_an_old_epoch_adopts_the_new_one_and_keeps_its_edits() {
    let mut nodes: Vec<Node> = (0..3)
        .map(|i| Node::new(Document::new(DocKind::Cases), i + 1))
        .collect();
    let mut cases: Vec<CaseNotes> = Vec::new();
    for node in &mut nodes {
        cases.push(
            CaseNotes::from_document(std::mem::replace(
                &mut node.doc,
                Document::new(DocKind::Cases),
            ))
            .unwrap(),
        );
    }
    cases[0]
        .ack("alert-1", Some("alice"), 1_000, &nodes[0].key)
        .unwrap();
    cases[0]
        .note("alert-2", "old and closed", 1_000, &nodes[0].key)
        .unwrap();
    cases[0]
        .set_status("alert-2", Status::Resolved, 1_000, &nodes[0].key)
        .unwrap();
    for (node, case) in nodes.iter_mut().zip(&cases) {
        node.doc = case.document().clone();
    }
    for i in 1..3 {
        sync_nodes(&mut nodes, 0, i);
    }
    // Node 2 goes away and edits; node 0 edits and compacts twice.
    let k2 = nodes[2].key.clone();
    let mut away = CaseNotes::from_document(nodes[2].doc.clone()).unwrap();
    away.note("alert-1", "written while away", 2 * DAY + 1, &k2)
        .unwrap();
    away.set_status("alert-1", Status::Resolved, 2 * DAY + 2, &k2)
        .unwrap();
    nodes[2].doc = away.document().clone();
    let k0 = nodes[0].key.clone();
    let mut home = CaseNotes::from_document(nodes[0].doc.clone()).unwrap();
    home.note("alert-1", "written at home", 2 * DAY, &k0)
        .unwrap();
    home.compact(3 * DAY, DAY, &k0).unwrap();
    home.note("alert-3", "after the first compaction", 3 * DAY, &k0)
        .unwrap();
    let epoch = home.compact(3 * DAY + 1, DAY, &k0).unwrap().epoch;
    assert_eq!(epoch.number, 2);
    assert!(
        home.list().iter().all(|c| c.alert != "alert-2"),
        "resolved and old: retired"
    );
    nodes[0].doc = home.document().clone();

    // Node 1 is still on epoch 0 and relays between them.
    sync_nodes(&mut nodes, 2, 1);
    sync_nodes(&mut nodes, 1, 0);
    sync_nodes(&mut nodes, 2, 1);
    for node in &nodes {
        assert_eq!(node.doc.epoch(), epoch);
        assert_eq!(node.doc.entries(), nodes[0].doc.entries());
    }
    let case = CaseNotes::from_document(nodes[1].doc.clone())
        .unwrap()
        .show("alert-1");
    let notes: Vec<_> = case.notes.iter().map(|n| n.text.as_str()).collect();
    assert_eq!(notes, ["written at home", "written while away"]);
    assert_eq!(case.status, Status::Resolved);
    assert_eq!(case.assignee.as_deref(), Some("alice"));
    // Retired cases stay retired: nobody's rebase brought alert-2 back.
    assert_eq!(nodes[1].doc.entries_with_prefix("case/alert-2/").len(), 0);
}

#[test]
fn peers_learn_each_others_epoch() {
    let (ka, kb) = (key(1), key(2));
    let (mut a, mut b) = (Document::new(DocKind::Intel), Document::new(DocKind::Intel));
    a.put("x", Entry::new(json!(1), 1, &ka), &ka).unwrap();
    a.compact(10, 5, |_, _| false, &ka).unwrap();
    let (mut pa, mut pb) = (PeerSync::new(), PeerSync::new());
    let hello = b.sync_out(&mut pb).unwrap();
    let out = a.sync_in(&mut pa, &hello, &admit_all, &ka).unwrap();
    assert_eq!(out.peer, PeerEpoch::Behind);
    let snapshot = a.sync_out(&mut pa).unwrap();
    assert!(
        a.sync_out(&mut pa).is_none(),
        "one snapshot until the peer answers"
    );
    let out = b.sync_in(&mut pb, &snapshot, &admit_all, &kb).unwrap();
    assert_eq!(out.adopted, Some(a.epoch()));
    assert!(out.changed);
    assert_eq!(b.entries(), a.entries());
}

/// The documented limit: a removal older than the tombstone retention is
/// undone by a node that was away longer than that and still holds the
/// entry.
#[test]
fn known_limit_a_long_absent_node_can_undo_an_old_removal() {
    let (ka, kb) = (key(1), key(2));
    let (mut a, mut b) = (ThreatIntel::new(), ThreatIntel::new());
    a.add("6.6.6.6", "x", None, 0, &ka).unwrap();
    let (mut pa, mut pb) = (PeerSync::new(), PeerSync::new());
    converge(
        Side {
            doc: a.document_mut(),
            key: &ka,
            peer: &mut pa,
        },
        Side {
            doc: b.document_mut(),
            key: &kb,
            peer: &mut pb,
        },
    );
    a.remove("6.6.6.6", 1, &ka).unwrap();
    a.compact(10 * DAY, DAY, &ka).unwrap();
    converge(
        Side {
            doc: a.document_mut(),
            key: &ka,
            peer: &mut pa,
        },
        Side {
            doc: b.document_mut(),
            key: &kb,
            peer: &mut pb,
        },
    );
    assert!(
        a.get("6.6.6.6").is_some(),
        "b re-put the entry whose tombstone was dropped"
    );
}
