//! Tests of the workspace documents: shared helpers for in-memory nodes
//! that exchange envelopes directly, with no transport.

mod cases_tests;
mod doc_tests;
mod epoch_tests;
mod fuzz_tests;
mod intel_tests;
mod operator_tests;
mod reject_tests;
mod sync_tests;

use ed25519_dalek::SigningKey;

// The modules under test, so test files name them as `super::doc` both here
// and once this crate is a module of the node.
use super::{cases, doc, envelope, epoch, intel, matcher, operator, sync};

use doc::Document;
use sync::PeerSync;

/// A deterministic key per node number.
pub(super) fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

pub(super) fn admit_all(_: &[u8; 32]) -> bool {
    true
}

/// One side of a sync session.
pub(super) struct Side<'a> {
    pub doc: &'a mut Document,
    pub key: &'a SigningKey,
    /// This side's state about the other side.
    pub peer: &'a mut PeerSync,
}

/// Exchanges envelopes both ways until neither side has one; returns the
/// bytes sent. Panics if it takes more than 100 rounds or any envelope is
/// rejected.
pub(super) fn converge(a: Side<'_>, b: Side<'_>) -> usize {
    let mut bytes = 0;
    for _ in 0..100 {
        let ab = a.doc.sync_out(a.peer);
        let ba = b.doc.sync_out(b.peer);
        if ab.is_none() && ba.is_none() {
            return bytes;
        }
        if let Some(m) = ab {
            bytes += m.len();
            b.doc
                .sync_in(b.peer, &m, &admit_all, b.key)
                .expect("a's envelope is accepted");
        }
        if let Some(m) = ba {
            bytes += m.len();
            a.doc
                .sync_in(a.peer, &m, &admit_all, a.key)
                .expect("b's envelope is accepted");
        }
    }
    panic!("no convergence in 100 rounds");
}

/// A node of a simulated mesh: one document, its key, a state per peer.
pub(super) struct Node {
    pub doc: Document,
    pub key: SigningKey,
    pub peers: std::collections::BTreeMap<usize, PeerSync>,
}

impl Node {
    pub(super) fn new(doc: Document, n: u8) -> Node {
        Node {
            doc,
            key: key(n),
            peers: Default::default(),
        }
    }
}

/// Syncs nodes `i` and `j` to quiescence; returns the bytes sent.
pub(super) fn sync_nodes(nodes: &mut [Node], i: usize, j: usize) -> usize {
    assert_ne!(i, j);
    let (lo, hi) = (i.min(j), i.max(j));
    let (left, right) = nodes.split_at_mut(hi);
    let (a, b) = (&mut left[lo], &mut right[0]);
    let pa = a.peers.entry(hi).or_default();
    let pb = b.peers.entry(lo).or_default();
    converge(
        Side {
            doc: &mut a.doc,
            key: &a.key,
            peer: pa,
        },
        Side {
            doc: &mut b.doc,
            key: &b.key,
            peer: pb,
        },
    )
}

/// A small deterministic PRNG (xorshift64*), so fuzz tests replay exactly.
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}
