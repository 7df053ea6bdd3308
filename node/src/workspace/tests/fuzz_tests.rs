//! Hostile bytes never panic: random input, every truncation and random bit
//! flips of genuine envelopes and saved documents. Each accepted input is
//! followed by a `sync_out`, where a poisoned sync state would surface.

use serde_json::json;

use super::doc::{DocKind, Document, Entry};
use super::sync::PeerSync;
use super::{Rng, admit_all, key};

/// Genuine envelopes of every type, and the receiver they were meant for.
fn corpus() -> (Document, PeerSync, Vec<Vec<u8>>) {
    let (ka, kb) = (key(1), key(2));
    let (mut a, mut b) = (Document::new(DocKind::Intel), Document::new(DocKind::Intel));
    for i in 0..20u64 {
        a.put(&format!("k{i}"), Entry::new(json!({"i": i}), i, &ka), &ka)
            .unwrap();
        b.put(&format!("b{i}"), Entry::new(json!({"i": i}), i, &kb), &kb)
            .unwrap();
    }
    let (mut pa, mut pb) = (PeerSync::new(), PeerSync::new());
    let mut envelopes = Vec::new();
    for _ in 0..4 {
        if let Some(m) = a.sync_out(&mut pa) {
            b.sync_in(&mut pb, &m, &admit_all, &kb).unwrap();
            envelopes.push(m);
        }
        if let Some(m) = b.sync_out(&mut pb) {
            a.sync_in(&mut pa, &m, &admit_all, &ka).unwrap();
        }
    }
    // A snapshot and a hello.
    let mut c = a.clone();
    c.compact(1_000, 10, |_, _| false, &ka).unwrap();
    let (mut pc, mut pd) = (PeerSync::new(), PeerSync::new());
    let mut d = Document::new(DocKind::Intel);
    let hello = d.sync_out(&mut pd).unwrap();
    c.sync_in(&mut pc, &hello, &admit_all, &ka).unwrap();
    envelopes.push(c.sync_out(&mut pc).unwrap());
    d.sync_in(
        &mut pd,
        &c.sync_out(&mut PeerSync::new()).unwrap(),
        &admit_all,
        &kb,
    )
    .unwrap();
    envelopes.push(d.sync_out(&mut pd).unwrap());
    (Document::new(DocKind::Intel), PeerSync::new(), envelopes)
}

/// Feeds one input to a copy of the receiver; must not panic.
fn feed(receiver: &Document, peer: &PeerSync, bytes: &[u8]) -> bool {
    let (mut doc, mut peer) = (receiver.clone(), peer.clone());
    let accepted = doc.sync_in(&mut peer, bytes, &admit_all, &key(3)).is_ok();
    if accepted {
        let _ = doc.sync_out(&mut peer);
        let _ = doc.entries();
    }
    accepted
}

#[test]
fn random_truncated_and_flipped_envelopes_never_panic() {
    let (receiver, peer, envelopes) = corpus();
    assert!(envelopes.len() >= 4);
    let mut rng = Rng::new(0x5eed);
    let mut accepted = 0;
    for _ in 0..2_000 {
        let len = rng.below(600);
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        feed(&receiver, &peer, &bytes);
    }
    for envelope in &envelopes {
        // Every prefix.
        for cut in 0..envelope.len() {
            feed(&receiver, &peer, &envelope[..cut]);
        }
        // Random flips of 1 to 4 bits.
        for _ in 0..1_500 {
            let mut v = envelope.clone();
            for _ in 0..=rng.below(4) {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            accepted += usize::from(feed(&receiver, &peer, &v));
        }
        // A valid header followed by garbage.
        for _ in 0..300 {
            let mut v = envelope[..48.min(envelope.len())].to_vec();
            v.extend((0..rng.below(300)).map(|_| rng.next() as u8));
            feed(&receiver, &peer, &v);
        }
    }
    // Flips in unsigned parts (heads, bloom filter) can be accepted.
    println!("bit-flipped envelopes accepted: {accepted}");
}

#[test]
fn truncated_and_flipped_files_never_panic() {
    let k = key(1);
    let mut doc = Document::new(DocKind::Cases);
    for i in 0..30u64 {
        doc.put(&format!("k{i}"), Entry::new(json!({"i": i}), i, &k), &k)
            .unwrap();
    }
    let mut compacted = doc.clone();
    compacted.compact(100, 10, |_, _| false, &k).unwrap();
    let mut rng = Rng::new(7);
    for saved in [doc.save(), compacted.save()] {
        for cut in 0..saved.len() {
            assert!(Document::load(&saved[..cut]).is_err());
        }
        for _ in 0..1_000 {
            let mut v = saved.clone();
            let i = rng.below(v.len());
            v[i] ^= 1 << rng.below(8);
            if let Ok(d) = Document::load(&v) {
                let _ = d.entries();
            }
        }
    }
}
