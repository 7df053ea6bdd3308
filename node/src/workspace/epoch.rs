//! Epochs: bounded history through compaction, and the rebase that joins a
//! node's state onto a newer epoch.
//!
//! Compaction builds a fresh document holding the current state minus
//! retired entries and tombstones older than the retention, as one base
//! change of the [`COMPACTOR`] actor. Its saved bytes are the *snapshot*;
//! the epoch id is `(previous number + 1, sha256(snapshot))`, epochs are
//! ordered by `(number, hash)`, and the compacting node signs the snapshot.
//!
//! A node that meets a higher epoch adopts its snapshot and re-puts, as new
//! signed changes, every key of its own state that is newer in LWW order
//! than the snapshot's (or absent from it and neither retired nor an expired
//! tombstone). This state-based join makes concurrent compactions and long
//! partitions converge without losing edits, with one known limit: a removal
//! can be undone when a node that still holds the removed entry was away for
//! longer than the tombstone retention, because the compactor dropped the
//! tombstone that would have beaten it.

use std::collections::{BTreeMap, BTreeSet};

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, Automerge, ChangeHash, ObjType, ROOT};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use super::doc::{COMPACTOR, DocKind, Document, ENTRIES, Entry, WsError, check_ops, entries_of};
use super::wire::{Reader, WireError, Writer};

/// Domain separator of snapshot signatures.
pub const SNAPSHOT_DOMAIN: &[u8] = b"amoskys-workspace-snapshot-v1";
/// Largest snapshot; it must fit in one sync envelope with its header.
pub const MAX_SNAPSHOT_BYTES: usize = super::sync::MAX_SYNC_BYTES - 1024;
/// Bytes of entries in one rebase change, so every change fits in a sync
/// message (an entry is at most `MAX_ENTRY_BYTES`).
const REBASE_BATCH_BYTES: usize = 1024 * 1024;

/// Identity of an epoch, ordered by `(number, hash)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EpochId {
    pub number: u64,
    /// SHA-256 of the snapshot; all zero for the genesis epoch.
    pub hash: [u8; 32],
}

impl EpochId {
    /// Epoch 0: every document starts from the same genesis change.
    pub const GENESIS: EpochId = EpochId {
        number: 0,
        hash: [0; 32],
    };
}

impl std::fmt::Display for EpochId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.number, hex::encode(&self.hash[..6]))
    }
}

/// What [`Document::compact`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactReport {
    pub epoch: EpochId,
    pub entries_kept: usize,
    pub entries_dropped: usize,
    pub bytes_before: usize,
    pub bytes_after: usize,
}

/// The signed base of an epoch.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct Snapshot {
    pub(super) epoch: EpochId,
    pub(super) signer: [u8; 32],
    pub(super) signature: [u8; 64],
    pub(super) compacted_at_ms: u64,
    pub(super) retention_ms: u64,
    pub(super) bytes: Vec<u8>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("epoch", &self.epoch)
            .field("signer", &hex::encode(self.signer))
            .field("compacted_at_ms", &self.compacted_at_ms)
            .field("bytes", &self.bytes.len())
            .finish_non_exhaustive()
    }
}

impl Snapshot {
    fn signed_message(&self, kind: DocKind) -> Vec<u8> {
        let mut w = Writer::new();
        w.bytes(SNAPSHOT_DOMAIN)
            .u8(kind.code())
            .u64(self.epoch.number)
            .bytes(&self.epoch.hash);
        w.u64(self.compacted_at_ms).u64(self.retention_ms);
        w.finish()
    }

    /// Hash, signature and signer admission; cheap, no Automerge decoding.
    pub(super) fn check(
        &self,
        kind: DocKind,
        admitted: &dyn Fn(&[u8; 32]) -> bool,
    ) -> Result<(), String> {
        if self.epoch.number == 0 {
            return Err("epoch 0 has no snapshot".into());
        }
        if sha256(&self.bytes) != self.epoch.hash {
            return Err(format!(
                "snapshot bytes do not hash to epoch {}",
                self.epoch
            ));
        }
        if !admitted(&self.signer) {
            return Err(format!(
                "signer {} is not admitted",
                hex::encode(self.signer)
            ));
        }
        VerifyingKey::from_bytes(&self.signer)
            .and_then(|k| {
                k.verify_strict(
                    &self.signed_message(kind),
                    &Signature::from_bytes(&self.signature),
                )
            })
            .map_err(|_| "snapshot signature does not verify".to_string())
    }

    /// Loads the snapshot and checks that it is exactly one base change of
    /// this kind and epoch, holding only valid entries.
    pub(super) fn open(&self, kind: DocKind) -> Result<Automerge, String> {
        let doc =
            Automerge::load(&self.bytes).map_err(|e| format!("snapshot does not load: {e}"))?;
        let changes = doc.get_changes(&[]);
        let [change] = changes.as_slice() else {
            return Err(format!(
                "snapshot has {} changes, expected one base change",
                changes.len()
            ));
        };
        if *change.actor_id() != ActorId::from(COMPACTOR)
            || change.message() != Some(&base_message(kind, self.epoch.number))
        {
            return Err("snapshot is not a base change of this document and epoch".into());
        }
        check_ops(change, true)?;
        Ok(doc)
    }

    pub(super) fn write(&self, w: &mut Writer) {
        w.bytes(&self.signer)
            .bytes(&self.signature)
            .u64(self.compacted_at_ms)
            .u64(self.retention_ms);
        w.blob(&self.bytes);
    }

    pub(super) fn read(r: &mut Reader<'_>, epoch: EpochId) -> Result<Snapshot, WireError> {
        Ok(Snapshot {
            epoch,
            signer: r.array("snapshot signer")?,
            signature: r.array("snapshot signature")?,
            compacted_at_ms: r.u64("snapshot time")?,
            retention_ms: r.u64("snapshot retention")?,
            bytes: r.blob("snapshot")?.to_vec(),
        })
    }
}

pub(super) fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn base_message(kind: DocKind, number: u64) -> String {
    format!("amoskys-workspace {} epoch {number}", kind.label())
}

/// The base document of an epoch: one change by the compactor actor, at
/// time 0, that creates the `entries` map and fills it. Deterministic.
fn build_base(
    kind: DocKind,
    number: u64,
    entries: &BTreeMap<String, Entry>,
) -> Result<Automerge, WsError> {
    let mut doc = Automerge::new().with_actor(ActorId::from(COMPACTOR));
    let mut tx = doc.transaction();
    let obj = tx.put_object(ROOT, ENTRIES, ObjType::Map)?;
    for (key, entry) in entries {
        tx.put(&obj, key.as_str(), entry.encode()?)?;
    }
    tx.commit_with(
        CommitOptions::default()
            .with_message(base_message(kind, number))
            .with_time(0),
    );
    Ok(doc)
}

/// The genesis document of `kind`, the same on every node.
pub(super) fn genesis(kind: DocKind) -> Result<Automerge, WsError> {
    build_base(kind, 0, &BTreeMap::new())
}

/// Hashes of the base change(s) a document of this epoch must contain.
pub(super) fn base_heads(
    kind: DocKind,
    epoch: EpochId,
    snapshot: Option<&Snapshot>,
) -> Result<Vec<ChangeHash>, WsError> {
    match (epoch.number, snapshot) {
        (0, None) if epoch == EpochId::GENESIS => Ok(genesis(kind)?.get_heads()),
        (n, Some(s)) if n > 0 && sha256(&s.bytes) == epoch.hash => s
            .open(kind)
            .map(|d| d.get_heads())
            .map_err(|e| WsError::Corrupt(format!("snapshot of epoch {epoch}: {e}"))),
        _ => Err(WsError::Corrupt(format!(
            "epoch {epoch} does not match its snapshot"
        ))),
    }
}

fn expired_tombstone(entry: &Entry, now_ms: u64, retention_ms: u64) -> bool {
    entry.removed && entry.at_ms.saturating_add(retention_ms) <= now_ms
}

impl Document {
    /// Starts a new epoch from the current state minus the entries `retired`
    /// names and tombstones older than `retention_ms`. On error (a snapshot
    /// over [`MAX_SNAPSHOT_BYTES`]) the document is unchanged.
    pub fn compact(
        &mut self,
        now_ms: u64,
        retention_ms: u64,
        retired: impl Fn(&str, &Entry) -> bool,
        signer: &SigningKey,
    ) -> Result<CompactReport, WsError> {
        let bytes_before = self.len_bytes();
        let entries = self.entries();
        let total = entries.len();
        let kept: BTreeMap<String, Entry> = entries
            .into_iter()
            .filter(|(k, e)| !retired(k, e) && !expired_tombstone(e, now_ms, retention_ms))
            .collect();
        let number = self.epoch.number.saturating_add(1);
        let base = build_base(self.kind, number, &kept)?;
        let bytes = base.save();
        if bytes.len() > MAX_SNAPSHOT_BYTES {
            return Err(WsError::SnapshotTooLarge {
                size: bytes.len(),
                max: MAX_SNAPSHOT_BYTES,
            });
        }
        let mut snapshot = Snapshot {
            epoch: EpochId {
                number,
                hash: sha256(&bytes),
            },
            signer: signer.verifying_key().to_bytes(),
            signature: [0; 64],
            compacted_at_ms: now_ms,
            retention_ms,
            bytes,
        };
        snapshot.signature = signer.sign(&snapshot.signed_message(self.kind)).to_bytes();
        let epoch = snapshot.epoch;
        self.doc = base;
        self.epoch = epoch;
        self.snapshot = Some(snapshot);
        self.signatures.clear();
        Ok(CompactReport {
            epoch,
            entries_kept: kept.len(),
            entries_dropped: total - kept.len(),
            bytes_before,
            bytes_after: self.len_bytes(),
        })
    }

    /// Moves to the epoch of `snapshot` (already checked and opened as
    /// `base`) and re-puts this node's newer state onto it, signed by
    /// `signer`. Returns the number of keys re-put. Atomic: on error the
    /// document is unchanged.
    pub(super) fn adopt(
        &mut self,
        snapshot: Snapshot,
        base: Automerge,
        signer: &SigningKey,
    ) -> Result<usize, WsError> {
        let ours = self.entries();
        let mut next = Document {
            kind: self.kind,
            doc: base,
            epoch: snapshot.epoch,
            snapshot: None,
            signatures: Default::default(),
        };
        let theirs = entries_of(&next.doc, &next.entries_obj()?, "");
        let (at, retention) = (snapshot.compacted_at_ms, snapshot.retention_ms);
        // Retirement is judged on the joined state: a case that is active in
        // the snapshot keeps our old notes; one closed long ago in both does not.
        let mut joined = theirs.clone();
        for (key, entry) in &ours {
            if joined
                .get(key)
                .is_none_or(|snap| entry.lww_cmp(snap).is_gt())
            {
                joined.insert(key.clone(), entry.clone());
            }
        }
        let retired = retired_keys(self.kind, &joined, at, retention);
        let mut puts = Vec::new();
        for (key, entry) in &ours {
            let keep = match theirs.get(key) {
                Some(snap) => entry.lww_cmp(snap).is_gt(),
                None => !retired.contains(key) && !expired_tombstone(entry, at, retention),
            };
            if keep {
                puts.push((key.clone(), entry.encode()?));
            }
        }
        let time = i64::try_from(at / 1000).unwrap_or(i64::MAX);
        let mut start = 0;
        while start < puts.len() {
            let mut end = start;
            let mut size = 0;
            while end < puts.len()
                && (end == start || size + puts[end].1.len() <= REBASE_BATCH_BYTES)
            {
                size += puts[end].1.len();
                end += 1;
            }
            next.commit(signer, &puts[start..end], time)?;
            start = end;
        }
        next.snapshot = Some(snapshot);
        *self = next;
        Ok(puts.len())
    }
}

/// Keys the kind retires at `now_ms`, as the rebase must judge them.
fn retired_keys(
    kind: DocKind,
    entries: &BTreeMap<String, Entry>,
    now_ms: u64,
    retention_ms: u64,
) -> BTreeSet<String> {
    match kind {
        DocKind::Intel => super::intel::retired_keys(entries, now_ms),
        DocKind::Cases => super::cases::retired_keys(entries, now_ms, retention_ms),
        DocKind::Decisions => super::decisions::retired_keys(entries, now_ms),
    }
}
