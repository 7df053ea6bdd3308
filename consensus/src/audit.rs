//! The audit trail: who did what, committed through Raft so that every
//! member holds the same entries in the same order.
//!
//! - An [`AuditRecord`] is written and signed (ed25519) by the node that
//!   served the request: time, operator name, key and role, action, target,
//!   a short summary (before/after for policy and role changes) and, for a
//!   record that stands alone (a refusal, a workspace edit, a local action),
//!   the result the node saw.
//! - It is proposed inside [`Command::Audited`](crate::Command::Audited),
//!   alone or with the command it records, so the action and its entry are
//!   one Raft entry. Apply refuses a record whose signature does not verify
//!   for the node it names (and then applies nothing).
//! - Apply turns it into an [`AuditEntry`]: sequence number, Raft log index,
//!   the hash of the previous entry, the outcome, and its own hash (SHA-256
//!   over a canonical encoding). Each entry chains to the one before it.
//! - An export ends with an [`ExportHead`] signed by the exporting node
//!   (count, first and last entry), so cutting entries off the end is found
//!   too. [`ChainCheck`] verifies a trail offline and names the first bad
//!   entry.
//!
//! The canonical encoding is a domain tag followed by each field as an
//! 8-byte big-endian length and its bytes (numbers as 8 big-endian bytes);
//! JSON is only the transport.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::NodeId;
use crate::operators::{MAX_NAME, Role};
use crate::state::{ClusterState, Command, Outcome};

/// Longest action name (`policy.set`).
pub const MAX_ACTION: usize = 64;
/// Longest target (a path, a member id, an indicator).
pub const MAX_TARGET: usize = 512;
/// Longest summary of a change.
pub const MAX_SUMMARY: usize = 2048;
/// Longest result or outcome text.
pub const MAX_OUTCOME: usize = 512;
/// Entries kept: the oldest beyond this are dropped (the first kept one
/// still names the hash of the one before it, the checkpoint).
pub const MAX_ENTRIES: u64 = 20_000;
/// Entries older than this (by the newest entry's time) are dropped...
pub const RETENTION_NS: u64 = 400 * 86_400 * 1_000_000_000;
/// ...but never the newest this many, whatever their times say.
pub const MIN_KEPT: u64 = 1_000;
/// The `prev` of the first entry ever.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

const RECORD_TAG: &[u8] = b"amoskys/audit-record/1";
const ENTRY_TAG: &[u8] = b"amoskys/audit-entry/1";
const HEAD_TAG: &[u8] = b"amoskys/audit-head/1";

/// What a node recorded about one action, signed by that node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// When the node served the request (its clock).
    pub time_ns: u64,
    /// The operator's name.
    pub operator: String,
    /// The operator's ed25519 key, 64 hex digits (empty when unknown).
    pub operator_key: String,
    pub role: Option<Role>,
    /// The node that recorded it and signed it.
    pub node: NodeId,
    /// What was done: `policy.set`, `members.admit`, `case.ack`, `denied`...
    pub action: String,
    /// What it was done to.
    pub target: String,
    /// The change in short; before and after for policy and roles.
    pub summary: String,
    /// The result the node saw, for a record that stands alone (`denied`,
    /// `ok`, `queued`); empty when it travels with its command, whose
    /// outcome then says.
    pub result: String,
    /// ed25519 signature by `node` over [`AuditRecord::signed_bytes`], hex.
    pub sig: String,
}

/// A committed entry of the trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// 1, 2, 3... with no gap.
    pub seq: u64,
    /// The Raft log index that committed it.
    pub log_index: u64,
    /// Hash of the entry before (64 zeros for the first).
    pub prev: String,
    pub record: AuditRecord,
    /// The outcome of the command, or the record's result.
    pub outcome: String,
    /// SHA-256 of [`AuditEntry::hashed_bytes`], hex.
    pub hash: String,
}

/// The end of the trail as held by the state: how many entries there have
/// been and the hash of the last.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditHead {
    pub count: u64,
    /// Hash of entry `count` (empty before the first).
    pub head: String,
}

impl AuditHead {
    /// The `prev` the next entry carries.
    pub fn prev(&self) -> &str {
        if self.head.is_empty() {
            GENESIS
        } else {
            &self.head
        }
    }
}

/// Canonical encoding: length-prefixed fields after a domain tag.
struct Canon(Vec<u8>);

impl Canon {
    fn new(tag: &[u8]) -> Self {
        let mut c = Canon(Vec::with_capacity(512));
        c.bytes(tag);
        c
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u64(b.len() as u64);
        self.0.extend_from_slice(b);
    }
    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
}

fn too_long(field: &str, value: &str, max: usize) -> Result<(), String> {
    if value.len() > max {
        return Err(format!(
            "{field} is {} bytes, over the limit of {max}",
            value.len()
        ));
    }
    Ok(())
}

/// Cuts `s` to at most `max` bytes on a character boundary.
pub fn clip(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// Checks an ed25519 signature (hex) by `node` over `msg`.
fn verify_sig(node: &NodeId, msg: &[u8], sig_hex: &str) -> Result<(), String> {
    let sig = hex::decode(sig_hex).map_err(|_| "the signature is not hex".to_owned())?;
    if sig.len() != 64 {
        return Err(format!("the signature is {} bytes, not 64", sig.len()));
    }
    let key = libp2p_identity::ed25519::PublicKey::try_from_bytes(&node.0)
        .map_err(|_| format!("node {} is not an ed25519 key", node.to_hex()))?;
    if key.verify(msg, &sig) {
        Ok(())
    } else {
        Err(format!("the signature of node {node} does not verify"))
    }
}

impl AuditRecord {
    /// The bytes the recording node signs.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut c = Canon::new(RECORD_TAG);
        c.u64(self.time_ns);
        c.str(&self.operator);
        c.str(&self.operator_key);
        c.str(self.role.map_or("", Role::as_str));
        c.bytes(&self.node.0);
        c.str(&self.action);
        c.str(&self.target);
        c.str(&self.summary);
        c.str(&self.result);
        c.0
    }

    /// Makes every text field fit its bound (callers build records from
    /// request data; a record over a bound is refused on apply).
    pub fn clip_fields(&mut self) {
        self.operator = clip(&self.operator, MAX_NAME);
        self.operator_key = clip(&self.operator_key, 64);
        self.action = clip(&self.action, MAX_ACTION);
        self.target = clip(&self.target, MAX_TARGET);
        self.summary = clip(&self.summary, MAX_SUMMARY);
        self.result = clip(&self.result, MAX_OUTCOME);
    }

    /// The bounds, then the signature of the node it names.
    pub fn check(&self) -> Result<(), String> {
        too_long("operator", &self.operator, MAX_NAME)?;
        too_long("operator_key", &self.operator_key, 64)?;
        too_long("action", &self.action, MAX_ACTION)?;
        too_long("target", &self.target, MAX_TARGET)?;
        too_long("summary", &self.summary, MAX_SUMMARY)?;
        too_long("result", &self.result, MAX_OUTCOME)?;
        if self.action.is_empty() {
            return Err("action is empty".into());
        }
        verify_sig(&self.node, &self.signed_bytes(), &self.sig)
    }
}

impl AuditEntry {
    /// The bytes whose SHA-256 is [`AuditEntry::hash`].
    pub fn hashed_bytes(&self) -> Vec<u8> {
        let mut c = Canon::new(ENTRY_TAG);
        c.u64(self.seq);
        c.u64(self.log_index);
        c.str(&self.prev);
        c.bytes(&self.record.signed_bytes());
        c.str(&self.record.sig);
        c.str(&self.outcome);
        c.0
    }

    pub fn compute_hash(&self) -> String {
        hex::encode(Sha256::digest(self.hashed_bytes()))
    }
}

/// Short text of an outcome, for the entry.
pub fn describe(outcome: &Outcome) -> String {
    let text = match outcome {
        Outcome::Nothing => "ok".to_owned(),
        Outcome::Policy { version } => format!("ok: policy version {version}"),
        Outcome::Admitted => "ok: admitted".into(),
        Outcome::Removed => "ok: removed".into(),
        Outcome::Model { version } => format!("ok: model version {version}"),
        Outcome::Activated { version } => format!("ok: model version {version} active"),
        Outcome::Round { id } => format!("ok: round {id}"),
        Outcome::Abandoned { id } => format!("ok: round {id} abandoned"),
        Outcome::OperatorSet { name } => format!("ok: operator {name} set"),
        Outcome::OperatorRemoved { name } => format!("ok: operator {name} removed"),
        Outcome::Recorded { seq } => format!("ok: entry {seq}"),
        Outcome::Rotated { old, new } => format!("ok: node key {old} handed over to {new}"),
        Outcome::Proposal {
            id,
            approvals,
            needed,
        } => format!("ok: proposal {id}, {approvals} of {needed} approvals"),
        Outcome::Passed { id, outcome } => {
            format!("ok: proposal {id} passed; {}", describe(outcome))
        }
        Outcome::RemovalApproved { id, node } => {
            format!("ok: proposal {id} passed; removal of {node} approved")
        }
        Outcome::Rejected(reason) => format!("rejected: {reason}"),
    };
    clip(&text, MAX_OUTCOME)
}

/// Applies `Command::Audited`: checks the record, applies the command it
/// carries (if any) and appends the entry. A forged or oversized record is
/// refused and nothing changes.
pub(crate) fn apply(
    state: &mut ClusterState,
    record: &AuditRecord,
    command: Option<&Command>,
    log_index: u64,
) -> (Outcome, Option<AuditEntry>) {
    if let Err(e) = record.check() {
        return (
            Outcome::Rejected(format!("audit record refused: {e}")),
            None,
        );
    }
    let seq = state.audit.count + 1;
    let (outcome, text) = match command {
        Some(Command::Audited { .. }) => {
            return (
                Outcome::Rejected("an audited command cannot carry another".into()),
                None,
            );
        }
        Some(cmd) => {
            let o = state.apply_plain(cmd);
            let text = describe(&o);
            (o, text)
        }
        None => (Outcome::Recorded { seq }, clip(&record.result, MAX_OUTCOME)),
    };
    let mut entry = AuditEntry {
        seq,
        log_index,
        prev: state.audit.prev().to_owned(),
        record: record.clone(),
        outcome: text,
        hash: String::new(),
    };
    entry.hash = entry.compute_hash();
    state.audit = AuditHead {
        count: seq,
        head: entry.hash.clone(),
    };
    (outcome, Some(entry))
}

/// The last line of an export: signed by the exporting node, it fixes how
/// many entries the export holds and how it ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportHead {
    /// Entries in the export.
    pub count: u64,
    /// Sequence number of the first (0 when empty).
    pub first_seq: u64,
    /// The `prev` of the first: the checkpoint the export starts from.
    pub first_prev: String,
    /// Sequence number and hash of the last.
    pub last_seq: u64,
    pub head_hash: String,
    /// The exporting node and when it exported.
    pub node: NodeId,
    pub time_ns: u64,
    pub sig: String,
}

impl ExportHead {
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut c = Canon::new(HEAD_TAG);
        c.u64(self.count);
        c.u64(self.first_seq);
        c.str(&self.first_prev);
        c.u64(self.last_seq);
        c.str(&self.head_hash);
        c.bytes(&self.node.0);
        c.u64(self.time_ns);
        c.0
    }

    /// The head of `entries` (unsigned: the caller signs
    /// [`ExportHead::signed_bytes`] and sets `sig`).
    pub fn of(entries: &[AuditEntry], node: NodeId, time_ns: u64) -> ExportHead {
        ExportHead {
            count: entries.len() as u64,
            first_seq: entries.first().map_or(0, |e| e.seq),
            first_prev: entries.first().map_or(String::new(), |e| e.prev.clone()),
            last_seq: entries.last().map_or(0, |e| e.seq),
            head_hash: entries.last().map_or(String::new(), |e| e.hash.clone()),
            node,
            time_ns,
            sig: String::new(),
        }
    }

    pub fn verify(&self) -> Result<(), String> {
        verify_sig(&self.node, &self.signed_bytes(), &self.sig)
    }
}

/// One line of an export: an entry or the closing head.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ExportLine {
    Head { head: ExportHead },
    Entry(AuditEntry),
}

/// Why a trail does not verify, naming the entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("entry {seq}: edited: its content does not match its hash")]
    Edited { seq: u64 },
    #[error(
        "entry {expected}: missing: entry {found} comes where {expected} should (deleted or moved)"
    )]
    Missing { expected: u64, found: u64 },
    #[error("entry {found}: out of order: it comes where entry {expected} should (reordered)")]
    OutOfOrder { expected: u64, found: u64 },
    #[error("entry {seq}: its prev hash is not the hash of entry {} (the chain is broken)", .seq.saturating_sub(1))]
    Broken { seq: u64 },
    #[error("entry {seq}: {why}")]
    Signature { seq: u64, why: String },
    #[error("entry {seq}: {why}")]
    Untrusted { seq: u64, why: String },
    #[error("entry {seq}: {why}")]
    Unreadable { seq: u64, why: String },
    #[error("head: {0}")]
    Head(String),
}

/// Checks a trail entry by entry, in order; then [`ChainCheck::finish`]
/// checks the signed head against what was seen.
#[derive(Debug, Default)]
pub struct ChainCheck {
    first: Option<(u64, String)>,
    last: Option<(u64, String)>,
    count: u64,
}

impl ChainCheck {
    /// The sequence number the next entry must have (for naming a line
    /// that cannot be read).
    pub fn expected(&self) -> u64 {
        self.last.as_ref().map_or(1, |(s, _)| s + 1)
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// Checks one entry: its hash, its place (sequence and prev) and the
    /// signature of its record. The trust of the recording node is the
    /// caller's to check.
    pub fn push(&mut self, e: &AuditEntry) -> Result<(), ChainError> {
        if let Some((last, last_hash)) = &self.last {
            let expected = last + 1;
            if e.seq > expected {
                return Err(ChainError::Missing {
                    expected,
                    found: e.seq,
                });
            }
            if e.seq < expected {
                return Err(ChainError::OutOfOrder {
                    expected,
                    found: e.seq,
                });
            }
            if e.compute_hash() != e.hash {
                return Err(ChainError::Edited { seq: e.seq });
            }
            if &e.prev != last_hash {
                return Err(ChainError::Broken { seq: e.seq });
            }
        } else if e.compute_hash() != e.hash {
            return Err(ChainError::Edited { seq: e.seq });
        } else if e.seq == 1 && e.prev != GENESIS {
            return Err(ChainError::Broken { seq: 1 });
        }
        e.record.check().map_err(|why| ChainError::Signature {
            seq: e.seq,
            why: format!("record refused: {why}"),
        })?;
        if self.first.is_none() {
            self.first = Some((e.seq, e.prev.clone()));
        }
        self.last = Some((e.seq, e.hash.clone()));
        self.count += 1;
        Ok(())
    }

    /// Checks the export head (already trusted by the caller) against the
    /// entries seen: same count, same first and last entry.
    pub fn finish(&self, head: &ExportHead) -> Result<(), ChainError> {
        head.verify().map_err(ChainError::Head)?;
        let (last_seq, last_hash) = self.last.clone().unwrap_or((0, String::new()));
        if head.last_seq > last_seq || head.count > self.count {
            return Err(ChainError::Head(format!(
                "entry {}: missing: the signed head names {} entries ending at entry {}, \
                 the trail ends at entry {last_seq} after {} (entries cut off the end)",
                last_seq + 1,
                head.count,
                head.last_seq,
                self.count
            )));
        }
        if head.count != self.count || head.last_seq != last_seq || head.head_hash != last_hash {
            return Err(ChainError::Head(format!(
                "the signed head names {} entries ending at entry {} ({}), the trail has {} \
                 ending at entry {last_seq}",
                head.count,
                head.last_seq,
                short(&head.head_hash),
                self.count
            )));
        }
        let (first_seq, first_prev) = self.first.clone().unwrap_or((0, String::new()));
        if head.first_seq != first_seq || head.first_prev != first_prev {
            return Err(ChainError::Head(format!(
                "the signed head starts at entry {}, the trail at entry {first_seq} \
                 (entries removed from the start)",
                head.first_seq
            )));
        }
        Ok(())
    }
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

mod verify;
pub use verify::{Failed, Verified, verify_export};

#[cfg(test)]
mod tests;
