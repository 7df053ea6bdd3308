//! Node key rotation: a member hands its identity over to a new key.
//!
//! A node key is the node's peer id, its Raft id and its alert signer, so a
//! rotation makes a new member that succeeds the old one. Both keys sign one
//! statement (the old key names its successor, the new key shows it is
//! held) with the last alert sequence number the old key signed. Applied,
//! the old key is *retired*: it stops being a member, alerts it signed up
//! to that number still verify everywhere, later ones are refused. The new
//! key takes over the member record, and the leader's steward swaps it in
//! for the old one in the voter set once it has caught up.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::NodeId;
use crate::audit::AuditRecord;
use crate::state::{ClusterState, Command, MemberRecord, Outcome};

/// Retired keys kept; beyond it the oldest hand-overs are forgotten (their
/// alerts then verify only against a membership export that lists them).
pub const MAX_RETIRED: usize = 10_000;

/// A hand-over from one node key to the next, signed by both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRotation {
    pub old: NodeId,
    pub new: NodeId,
    /// The highest alert sequence number the old key signed; `None` when
    /// it signed none.
    pub last_seq: Option<u64>,
    /// When the node made the statement (its clock).
    pub time_ns: u64,
    /// Signatures of [`NodeRotation::statement`] by the old and the new key,
    /// hex.
    pub old_sig: String,
    pub new_sig: String,
}

/// What the successor sends with its join request: the hand-over and its
/// audit record, signed by the old key (a member, so it may record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handover {
    pub rotation: NodeRotation,
    pub record: AuditRecord,
}

impl Handover {
    /// Checks what a member can check before asking the leader: the
    /// statement, that `from` is the successor, and the record's signature
    /// by the old key.
    pub fn check(&self, from: &NodeId) -> Result<(), String> {
        if self.rotation.new != *from {
            return Err(format!(
                "the hand-over names {} as successor, not the asking node {from}",
                self.rotation.new
            ));
        }
        self.rotation.verify()?;
        if self.record.node != self.rotation.old {
            return Err("the hand-over's audit record is not the old key's".into());
        }
        self.record
            .check()
            .map_err(|e| format!("the hand-over's audit record: {e}"))
    }

    /// The command the leader commits.
    pub fn command(&self) -> Command {
        Command::Audited {
            record: self.record.clone(),
            command: Some(Box::new(Command::RotateNode(Box::new(
                self.rotation.clone(),
            )))),
        }
    }
}

/// What the state keeps of a retired key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retired {
    pub successor: NodeId,
    pub last_seq: Option<u64>,
    pub time_ns: u64,
    pub old_sig: String,
    pub new_sig: String,
}

impl Retired {
    /// Whether an alert of sequence number `seq` by this key was signed
    /// before the hand-over.
    pub fn covers(&self, seq: u64) -> bool {
        self.last_seq.is_some_and(|last| seq <= last)
    }
}

/// The bytes both keys sign: `AMOSKYS-NODE-ROTATE-1`, the old and the new
/// key (hex), the last sequence number (`-` for none) and the time,
/// separated by line feeds.
pub fn statement(old: &NodeId, new: &NodeId, last_seq: Option<u64>, time_ns: u64) -> Vec<u8> {
    let last = last_seq.map_or_else(|| "-".to_owned(), |s| s.to_string());
    format!(
        "AMOSKYS-NODE-ROTATE-1\n{}\n{}\n{last}\n{time_ns}",
        old.to_hex(),
        new.to_hex()
    )
    .into_bytes()
}

impl NodeRotation {
    /// The statement signed by `old` and `new`.
    pub fn sign(old: &SigningKey, new: &SigningKey, last_seq: Option<u64>, time_ns: u64) -> Self {
        let (o, n) = (
            NodeId(old.verifying_key().to_bytes()),
            NodeId(new.verifying_key().to_bytes()),
        );
        let msg = statement(&o, &n, last_seq, time_ns);
        NodeRotation {
            old: o,
            new: n,
            last_seq,
            time_ns,
            old_sig: hex::encode(old.sign(&msg).to_bytes()),
            new_sig: hex::encode(new.sign(&msg).to_bytes()),
        }
    }

    /// Both signatures verify, and the keys differ.
    pub fn verify(&self) -> Result<(), String> {
        if self.old == self.new {
            return Err("a key cannot succeed itself".into());
        }
        let msg = statement(&self.old, &self.new, self.last_seq, self.time_ns);
        signed(&self.old, &msg, &self.old_sig)
            .map_err(|e| format!("the old key's signature of the hand-over: {e}"))?;
        signed(&self.new, &msg, &self.new_sig)
            .map_err(|e| format!("the new key's signature of the hand-over: {e}"))
    }
}

fn signed(key: &NodeId, msg: &[u8], sig_hex: &str) -> Result<(), String> {
    let key = VerifyingKey::from_bytes(&key.0).map_err(|_| "not an ed25519 key".to_owned())?;
    let sig: [u8; 64] = hex::decode(sig_hex)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or("expected 128 hex digits")?;
    key.verify_strict(msg, &Signature::from_bytes(&sig))
        .map_err(|_| "does not verify".to_owned())
}

/// Applies a hand-over: checks it against the state, retires the old key
/// and moves its member record to the new one. Whether the old key is a
/// Raft member is the leader's check before it proposes.
pub(crate) fn apply(state: &mut ClusterState, r: &NodeRotation) -> Outcome {
    if let Err(e) = r.verify() {
        return Outcome::Rejected(e);
    }
    if state.removed.contains_key(&r.old) {
        return Outcome::Rejected(format!("{} was removed; it cannot hand over", r.old));
    }
    for (key, what) in [(&r.old, "old"), (&r.new, "new")] {
        if state.retired.contains_key(key) {
            return Outcome::Rejected(format!("the {what} key {key} is retired already"));
        }
    }
    if state.removed.contains_key(&r.new) || state.members.contains_key(&r.new) {
        return Outcome::Rejected(format!("{} is already known to the cluster", r.new));
    }
    let record = state.members.remove(&r.old).unwrap_or(MemberRecord {
        addr: String::new(),
        admitted_by: r.old,
        admitted_ns: r.time_ns,
    });
    state.members.insert(r.new, record);
    state.retired.insert(
        r.old,
        Retired {
            successor: r.new,
            last_seq: r.last_seq,
            time_ns: r.time_ns,
            old_sig: r.old_sig.clone(),
            new_sig: r.new_sig.clone(),
        },
    );
    while state.retired.len() > MAX_RETIRED {
        let oldest = state
            .retired
            .iter()
            .min_by_key(|(_, r)| r.time_ns)
            .map(|(k, _)| *k);
        match oldest {
            Some(k) => state.retired.remove(&k),
            None => break,
        };
    }
    Outcome::Rotated {
        old: r.old,
        new: r.new,
    }
}

/// The chain of keys from `key` to the one in use now (itself when it was
/// never rotated); bounded by the retired set.
pub fn current_key(state: &ClusterState, key: &NodeId) -> NodeId {
    let mut k = *key;
    for _ in 0..=state.retired.len() {
        match state.retired.get(&k) {
            Some(r) => k = r.successor,
            None => break,
        }
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    #[test]
    fn a_signed_hand_over_retires_the_old_key_and_moves_its_record() {
        let mut state = ClusterState::default();
        let r = NodeRotation::sign(&key(1), &key(2), Some(41), 7);
        state.members.insert(
            r.old,
            MemberRecord {
                addr: "127.0.0.1:1".into(),
                admitted_by: r.old,
                admitted_ns: 1,
            },
        );
        assert_eq!(
            apply(&mut state, &r),
            Outcome::Rotated {
                old: r.old,
                new: r.new
            }
        );
        assert!(!state.members.contains_key(&r.old));
        assert_eq!(state.members[&r.new].addr, "127.0.0.1:1");
        let retired = &state.retired[&r.old];
        assert!(retired.covers(41) && !retired.covers(42));
        assert_eq!(current_key(&state, &r.old), r.new);
        // Once only.
        assert!(matches!(apply(&mut state, &r), Outcome::Rejected(_)));
    }

    #[test]
    fn a_hand_over_not_signed_by_both_keys_is_refused() {
        let mut state = ClusterState::default();
        let mut r = NodeRotation::sign(&key(1), &key(2), None, 7);
        r.last_seq = Some(5);
        let Outcome::Rejected(why) = apply(&mut state, &r) else {
            panic!("a changed statement must be refused");
        };
        assert!(why.contains("old key"), "{why}");
        let mut r = NodeRotation::sign(&key(1), &key(2), None, 7);
        r.new_sig = NodeRotation::sign(&key(1), &key(3), None, 7).new_sig;
        let Outcome::Rejected(why) = apply(&mut state, &r) else {
            panic!("a borrowed signature must be refused");
        };
        assert!(why.contains("new key"), "{why}");
        assert!(state.retired.is_empty());
    }

    #[test]
    fn a_key_that_signed_no_alert_covers_none() {
        let r = Retired {
            successor: NodeId::default(),
            last_seq: None,
            time_ns: 0,
            old_sig: String::new(),
            new_sig: String::new(),
        };
        assert!(!r.covers(0));
    }
}
