//! Sync messages: the Automerge sync protocol wrapped in a signed, bounded,
//! versioned envelope, with epochs handled on top.
//!
//! Each side keeps one [`PeerSync`] per peer and document. [`Document::sync_out`]
//! produces the next envelope for a peer (or `None` when there is nothing to
//! say); [`Document::sync_in`] verifies an envelope completely before it
//! changes anything, so a rejected envelope leaves document and peer state as
//! they were. The transport is the caller's.
//!
//! Epochs: peers on the same epoch run the Automerge protocol. A peer known
//! to be on a lower epoch gets our snapshot; a peer on a higher epoch gets a
//! hello that tells it our epoch, so it sends its snapshot.

use std::collections::HashMap;

use automerge::sync::{Capability, ChunkList, Message, State, SyncDoc};
use automerge::{ActorId, Change, ChangeHash};
use ed25519_dalek::SigningKey;

use super::doc::{COMPACTOR, DocKind, Document, change_signature_ok, check_ops};
use super::envelope::{
    Body, SYNC_OVERHEAD, check_message, decode, encode_hello, encode_snapshot, encode_sync,
};
use super::epoch::EpochId;

/// Largest envelope produced or accepted.
pub const MAX_SYNC_BYTES: usize = 4 * 1024 * 1024;

/// Bytes one change adds besides its own: signature pair and length prefixes.
const PER_CHANGE: usize = 32 + 64 + 10;

/// Why an envelope was rejected; the document is untouched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("sync envelope of {size} bytes is over the limit of {max}")]
    Oversized { size: usize, max: usize },
    #[error("sync envelope is malformed: {0}")]
    Malformed(String),
    #[error("sync envelope is for the {got} document, not {expected}")]
    WrongKind { expected: DocKind, got: DocKind },
    #[error("change {hash} arrived without its signature")]
    Unsigned { hash: String },
    #[error("change {hash} has a signature that does not verify")]
    BadSignature { hash: String },
    #[error("change {hash} is by {actor}, which is not an admitted key")]
    NotAdmitted { hash: String, actor: String },
    #[error("change {hash} is by the compactor actor, which only snapshots may use")]
    ForeignActor { hash: String },
    #[error("snapshot rejected: {0}")]
    BadSnapshot(String),
}

impl Rejected {
    /// Stable label for counting, e.g. as a metric label.
    pub fn label(&self) -> &'static str {
        match self {
            Rejected::Oversized { .. } => "oversized",
            Rejected::Malformed(_) => "malformed",
            Rejected::WrongKind { .. } => "wrong_kind",
            Rejected::Unsigned { .. } => "unsigned",
            Rejected::BadSignature { .. } => "bad_signature",
            Rejected::NotAdmitted { .. } => "not_admitted",
            Rejected::ForeignActor { .. } => "foreign_actor",
            Rejected::BadSnapshot(_) => "bad_snapshot",
        }
    }
}

/// Where the peer's epoch stands relative to ours, as of its last envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerEpoch {
    Same,
    /// The peer is behind: our next envelope carries our snapshot.
    Behind,
    /// The peer is ahead: our next envelope asks for its snapshot.
    Ahead,
}

/// What an accepted envelope did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncOutcome {
    /// Changes new to this document.
    pub applied: usize,
    /// The epoch adopted from the peer's snapshot, if any.
    pub adopted: Option<EpochId>,
    /// Keys re-put onto the adopted epoch.
    pub rebased: usize,
    /// Whether the document's state changed (announce "on change").
    pub changed: bool,
    pub peer: PeerEpoch,
}

/// Sync state for one peer and one document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerSync {
    state: State,
    /// Our epoch when `state` was last used; a different epoch resets it.
    state_epoch: EpochId,
    their_epoch: Option<EpochId>,
    /// A snapshot or hello was sent; wait for the peer before repeating it.
    awaiting: bool,
}

impl PeerSync {
    pub fn new() -> PeerSync {
        PeerSync::default()
    }

    /// The peer's epoch as of its last accepted envelope.
    pub fn their_epoch(&self) -> Option<EpochId> {
        self.their_epoch
    }

    fn align(&mut self, ours: EpochId) {
        if self.state_epoch != ours {
            self.state = State::new();
            self.state_epoch = ours;
            self.awaiting = false;
        }
    }

    fn heard(&mut self, theirs: EpochId) {
        if self.their_epoch.is_some_and(|e| e != theirs) {
            self.state = State::new();
        }
        self.their_epoch = Some(theirs);
        self.awaiting = false;
    }
}

impl Document {
    /// The next envelope for `peer`, at most [`MAX_SYNC_BYTES`], or `None`
    /// when there is nothing to send until the peer speaks again.
    pub fn sync_out(&mut self, peer: &mut PeerSync) -> Option<Vec<u8>> {
        self.sync_out_limited(peer, MAX_SYNC_BYTES)
    }

    /// [`Document::sync_out`] with a smaller bound (tests exercise the
    /// truncation with it).
    pub(super) fn sync_out_limited(
        &mut self,
        peer: &mut PeerSync,
        limit: usize,
    ) -> Option<Vec<u8>> {
        peer.align(self.epoch);
        if let Some(theirs) = peer.their_epoch
            && theirs != self.epoch
        {
            if peer.awaiting {
                return None;
            }
            peer.awaiting = true;
            return Some(match (&self.snapshot, theirs < self.epoch) {
                (Some(snapshot), true) => encode_snapshot(self.kind, snapshot),
                _ => encode_hello(self.kind, self.epoch),
            });
        }
        // One chunk per change, never a whole saved document: the receiver
        // must see and verify each change. Without the V2 capability the
        // Automerge generator sends individual changes.
        if let Some(caps) = peer.state.their_capabilities.as_mut() {
            caps.retain(|c| *c != Capability::MessageV2);
        }
        let mut message = self.doc.generate_sync_message(&mut peer.state)?;
        let chunks: Vec<Vec<u8>> = message.changes.iter().map(<[u8]>::to_vec).collect();
        message.changes = ChunkList::empty();
        let mut budget = limit.saturating_sub(SYNC_OVERHEAD + message.clone().encode().len());
        let (mut kept, mut signatures) = (Vec::new(), Vec::new());
        for chunk in chunks {
            let Ok(change) = Change::try_from(chunk.as_slice()) else {
                continue;
            };
            let hash = change.hash();
            let cost = chunk.len() + PER_CHANGE;
            match self.signatures.get(&hash) {
                Some(sig) if cost <= budget => {
                    budget -= cost;
                    signatures.push((hash, *sig));
                    kept.push(chunk);
                }
                // Over the bound: not sent now, so not marked as sent; the
                // peer asks again once it has applied what was sent.
                _ => {
                    peer.state.sent_hashes.remove(&hash);
                }
            }
        }
        message.changes = ChunkList::from(kept);
        Some(encode_sync(
            self.kind,
            self.epoch,
            &message.encode(),
            &signatures,
        ))
    }

    /// Verifies and applies an envelope from `peer`. Only keys `admitted`
    /// accepts may author changes or sign snapshots; rebase changes after
    /// adopting a snapshot are signed by `signer`.
    pub fn sync_in(
        &mut self,
        peer: &mut PeerSync,
        bytes: &[u8],
        admitted: &dyn Fn(&[u8; 32]) -> bool,
        signer: &SigningKey,
    ) -> Result<SyncOutcome, Rejected> {
        if bytes.len() > MAX_SYNC_BYTES {
            return Err(Rejected::Oversized {
                size: bytes.len(),
                max: MAX_SYNC_BYTES,
            });
        }
        let (kind, theirs, body) = decode(bytes).map_err(Rejected::Malformed)?;
        if kind != self.kind {
            return Err(Rejected::WrongKind {
                expected: self.kind,
                got: kind,
            });
        }
        // Work on a copy of the peer state too: a rejection leaves both as
        // they were.
        let mut next_peer = peer.clone();
        next_peer.align(self.epoch);
        let mut outcome = SyncOutcome {
            applied: 0,
            adopted: None,
            rebased: 0,
            changed: false,
            peer: PeerEpoch::Same,
        };
        match body {
            Body::Hello => {}
            Body::Snapshot(snapshot) => {
                snapshot
                    .check(self.kind, admitted)
                    .map_err(Rejected::BadSnapshot)?;
                if theirs > self.epoch {
                    let base = snapshot.open(self.kind).map_err(Rejected::BadSnapshot)?;
                    let rebased = self.adopt(snapshot, base, signer).map_err(|e| {
                        Rejected::BadSnapshot(format!("cannot rebase onto it: {e}"))
                    })?;
                    outcome = SyncOutcome {
                        adopted: Some(theirs),
                        rebased,
                        changed: true,
                        ..outcome
                    };
                    next_peer.align(self.epoch);
                }
            }
            Body::Sync {
                message,
                signatures,
            } => {
                let message = Message::decode(message)
                    .map_err(|e| Rejected::Malformed(format!("automerge message: {e}")))?;
                check_message(&message).map_err(Rejected::Malformed)?;
                // A message of another epoch belongs to another history: it
                // only tells us the peer's epoch.
                if theirs == self.epoch {
                    next_peer.heard(theirs);
                    let before = self.doc.get_heads();
                    outcome.applied =
                        self.receive(&mut next_peer.state, message, &signatures, admitted)?;
                    outcome.changed = self.doc.get_heads() != before;
                }
            }
        }
        next_peer.heard(theirs);
        *peer = next_peer;
        outcome.peer = match theirs.cmp(&self.epoch) {
            std::cmp::Ordering::Less => PeerEpoch::Behind,
            std::cmp::Ordering::Equal => PeerEpoch::Same,
            std::cmp::Ordering::Greater => PeerEpoch::Ahead,
        };
        Ok(outcome)
    }

    /// Verifies every change of `message`, then applies it to a copy of
    /// the document that replaces it only on success. Returns the number of
    /// changes new to this document.
    fn receive(
        &mut self,
        state: &mut State,
        mut message: Message,
        signatures: &HashMap<ChangeHash, [u8; 64]>,
        admitted: &dyn Fn(&[u8; 32]) -> bool,
    ) -> Result<usize, Rejected> {
        let mut verified = Vec::with_capacity(message.changes.len());
        for chunk in message.changes.iter() {
            let change =
                Change::try_from(chunk).map_err(|e| Rejected::Malformed(format!("change: {e}")))?;
            let hash = change.hash();
            let actor = change.actor_id();
            if *actor == ActorId::from(COMPACTOR) {
                return Err(Rejected::ForeignActor {
                    hash: hash.to_string(),
                });
            }
            let key: Option<[u8; 32]> = actor.to_bytes().try_into().ok();
            let Some(key) = key.filter(|k| admitted(k)) else {
                return Err(Rejected::NotAdmitted {
                    hash: hash.to_string(),
                    actor: actor.to_hex_string(),
                });
            };
            let signature = signatures.get(&hash).ok_or(Rejected::Unsigned {
                hash: hash.to_string(),
            })?;
            if !change_signature_ok(&key, &hash, signature) {
                return Err(Rejected::BadSignature {
                    hash: hash.to_string(),
                });
            }
            check_ops(&change, false).map_err(Rejected::Malformed)?;
            verified.push((change, *signature));
        }
        if signatures.len() != verified.len() {
            return Err(Rejected::Malformed(
                "signatures for changes the message does not carry".into(),
            ));
        }
        // Every change we hold, except the base, has a signature entry.
        let fresh = verified
            .iter()
            .filter(|(c, _)| !self.signatures.contains_key(&c.hash()))
            .count();
        if verified.is_empty() {
            // No changes: only the sync state moves, the document cannot fail.
            self.doc
                .receive_sync_message(state, message)
                .map_err(|e| Rejected::Malformed(e.to_string()))?;
            return Ok(0);
        }
        // Apply exactly the bytes that were verified, to a copy.
        message.changes = ChunkList::from(
            verified
                .iter()
                .map(|(c, _)| c.raw_bytes().to_vec())
                .collect::<Vec<_>>(),
        );
        let mut next = self.doc.clone();
        next.receive_sync_message(state, message)
            .map_err(|e| Rejected::Malformed(format!("changes do not apply: {e}")))?;
        for (change, signature) in &verified {
            self.signatures.insert(change.hash(), *signature);
        }
        self.doc = next;
        Ok(fresh)
    }
}
