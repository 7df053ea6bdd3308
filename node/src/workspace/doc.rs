//! A signed Automerge document: the shared core of threat intel and case
//! notes.
//!
//! Content model: the root map holds one map, `entries`, from a string key to
//! a scalar string holding a JSON [`Entry`]. Entries never nest, so a merge
//! can only conflict per key, and the conflict is settled by [`Entry`]'s
//! last-writer-wins order, not by Automerge's op order.
//!
//! Authorship: every local change is made with the Automerge actor id set to
//! the author's 32-byte ed25519 public key and signed over
//! `CHANGE_DOMAIN || change hash`. Signatures live beside the Automerge bytes
//! and travel with every change in a sync message.
//!
//! History: the `entries` map is created by a fixed base change of the
//! all-zero [`COMPACTOR`] actor with time 0, identical on every node, so two
//! nodes never create competing `entries` maps. Compaction (see `epoch.rs`)
//! replaces the history with a new base change.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

use automerge::legacy::{Key, ObjectId, OpId, OpType};
use automerge::transaction::{CommitOptions, Transactable};
use automerge::{
    ActorId, Automerge, Change, ChangeHash, ObjId, ObjType, ROOT, ReadDoc, ScalarValue,
    ScalarValueRef, ValueRef,
};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::epoch::{EpochId, Snapshot};

/// Longest entry key, in bytes.
pub const MAX_KEY_BYTES: usize = 256;
/// Largest encoded entry (JSON bytes).
pub const MAX_ENTRY_BYTES: usize = 64 * 1024;
/// Domain separator of change signatures.
pub const CHANGE_DOMAIN: &[u8] = b"amoskys-workspace-change-v1";
/// Actor of base (genesis and snapshot) changes; never a real key.
pub const COMPACTOR: [u8; 32] = [0; 32];

/// Name of the map that holds the entries.
pub(super) const ENTRIES: &str = "entries";

/// Errors of local document operations and of loading a saved document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WsError {
    #[error("key of {0} bytes is empty or over the limit of {MAX_KEY_BYTES}")]
    KeyLength(usize),
    #[error("entry of {0} bytes is over the limit of {MAX_ENTRY_BYTES}")]
    EntryTooLarge(usize),
    #[error("entry author {entry} is not the signing key {signer}; sign with the author's key")]
    AuthorMismatch { entry: String, signer: String },
    #[error("snapshot of {size} bytes is over the limit of {max}; retire more entries")]
    SnapshotTooLarge { size: usize, max: usize },
    #[error("document is of kind {found}, expected {expected}")]
    WrongKind { expected: DocKind, found: DocKind },
    #[error("saved document is corrupt: {0}")]
    Corrupt(String),
    #[error("automerge: {0}")]
    Automerge(String),
}

impl From<automerge::AutomergeError> for WsError {
    fn from(e: automerge::AutomergeError) -> Self {
        WsError::Automerge(e.to_string())
    }
}

/// Which shared document this is; each kind has its own history and peers
/// sync each kind separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocKind {
    Intel,
    Cases,
    Decisions,
}

impl DocKind {
    /// Every kind, in the order peers sync them.
    pub const ALL: [DocKind; 3] = [DocKind::Intel, DocKind::Cases, DocKind::Decisions];

    pub fn label(self) -> &'static str {
        match self {
            DocKind::Intel => "intel",
            DocKind::Cases => "cases",
            DocKind::Decisions => "decisions",
        }
    }

    pub(super) fn code(self) -> u8 {
        match self {
            DocKind::Intel => 1,
            DocKind::Cases => 2,
            DocKind::Decisions => 3,
        }
    }

    pub(super) fn from_code(code: u8) -> Option<DocKind> {
        match code {
            1 => Some(DocKind::Intel),
            2 => Some(DocKind::Cases),
            3 => Some(DocKind::Decisions),
            _ => None,
        }
    }
}

impl std::fmt::Display for DocKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// One value in the document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The author's wall clock, ms since the Unix epoch.
    pub at_ms: u64,
    /// The author's ed25519 public key, hex.
    pub author: String,
    /// A tombstone: the key was removed.
    #[serde(default)]
    pub removed: bool,
    /// Kind-specific content.
    #[serde(default)]
    pub body: serde_json::Value,
    /// The operator whose signed request made this edit (`operator.rs`);
    /// absent on edits made without one and on older entries. Kept as
    /// plain JSON so a malformed one from a peer reads as unverified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<serde_json::Value>,
}

impl Entry {
    /// A live entry by the holder of `key`.
    pub fn new(body: serde_json::Value, at_ms: u64, key: &SigningKey) -> Entry {
        Entry {
            at_ms,
            author: author_hex(key),
            removed: false,
            body,
            operator: None,
        }
    }

    /// This entry carrying `operator`.
    pub fn with_operator(self, operator: Option<&super::operator::Operator>) -> Entry {
        Entry {
            // Serializing plain data with string keys cannot fail.
            operator: operator.and_then(|o| serde_json::to_value(o).ok()),
            ..self
        }
    }

    /// A tombstone by the holder of `key`.
    pub fn tombstone(body: serde_json::Value, at_ms: u64, key: &SigningKey) -> Entry {
        Entry {
            removed: true,
            ..Entry::new(body, at_ms, key)
        }
    }

    /// Last-writer-wins order: `(at_ms, author)`, then the encoding, so
    /// that every node picks the same winner.
    pub fn lww_cmp(&self, other: &Entry) -> Ordering {
        (self.at_ms, &self.author)
            .cmp(&(other.at_ms, &other.author))
            .then_with(|| self.encode_unchecked().cmp(&other.encode_unchecked()))
    }

    pub(super) fn encode(&self) -> Result<String, WsError> {
        let json = self.encode_unchecked();
        if json.len() > MAX_ENTRY_BYTES {
            return Err(WsError::EntryTooLarge(json.len()));
        }
        Ok(json)
    }

    fn encode_unchecked(&self) -> String {
        // Serializing plain data with string keys cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    pub(super) fn decode(json: &str) -> Option<Entry> {
        if json.len() > MAX_ENTRY_BYTES {
            return None;
        }
        serde_json::from_str(json).ok()
    }
}

/// Hex public key of `key`, as [`Entry::author`] holds it.
pub fn author_hex(key: &SigningKey) -> String {
    hex::encode(key.verifying_key().as_bytes())
}

/// The message a change signature covers.
pub(super) fn change_message(hash: &ChangeHash) -> Vec<u8> {
    [CHANGE_DOMAIN, hash.as_ref()].concat()
}

/// Whether `signature` by `actor` signs the change `hash`.
pub(super) fn change_signature_ok(
    actor: &[u8; 32],
    hash: &ChangeHash,
    signature: &[u8; 64],
) -> bool {
    VerifyingKey::from_bytes(actor)
        .and_then(|k| k.verify_strict(&change_message(hash), &Signature::from_bytes(signature)))
        .is_ok()
}

pub(super) fn check_key(key: &str) -> Result<(), WsError> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(WsError::KeyLength(key.len()));
    }
    Ok(())
}

/// A workspace document of one [`DocKind`].
#[derive(Debug, Clone)]
pub struct Document {
    pub(super) kind: DocKind,
    pub(super) doc: Automerge,
    pub(super) epoch: EpochId,
    /// The base of the current epoch; `None` in epoch 0 (the genesis).
    pub(super) snapshot: Option<Snapshot>,
    /// Signature of every change of the current epoch except the base.
    pub(super) signatures: HashMap<ChangeHash, [u8; 64]>,
}

impl Document {
    /// An empty document in epoch 0.
    pub fn new(kind: DocKind) -> Document {
        Document {
            kind,
            // Creating a map in an empty document cannot fail; if it did, the
            // empty document reports "no entries map" on first use.
            doc: super::epoch::genesis(kind).unwrap_or_default(),
            epoch: EpochId::GENESIS,
            snapshot: None,
            signatures: HashMap::new(),
        }
    }

    pub fn kind(&self) -> DocKind {
        self.kind
    }

    /// This document, if it is of `kind`.
    pub fn of_kind(self, kind: DocKind) -> Result<Document, WsError> {
        if self.kind == kind {
            Ok(self)
        } else {
            Err(WsError::WrongKind {
                expected: kind,
                found: self.kind,
            })
        }
    }

    pub fn epoch(&self) -> EpochId {
        self.epoch
    }

    /// Heads of the Automerge history (for tests and diagnostics).
    pub fn heads(&self) -> Vec<ChangeHash> {
        self.doc.get_heads()
    }

    /// Writes `entry` at `key` as a change signed by `signer`, who must be
    /// the entry's author. If the key's current entry is not older in LWW
    /// order, `at_ms` is raised above it so an overwrite always wins.
    pub fn put(
        &mut self,
        key: &str,
        mut entry: Entry,
        signer: &SigningKey,
    ) -> Result<Entry, WsError> {
        check_key(key)?;
        let signer_hex = author_hex(signer);
        if entry.author != signer_hex {
            return Err(WsError::AuthorMismatch {
                entry: entry.author,
                signer: signer_hex,
            });
        }
        if let Some(current) = self.get(key)
            && entry.lww_cmp(&current) != Ordering::Greater
        {
            entry.at_ms = current.at_ms.saturating_add(1);
        }
        let time = i64::try_from(entry.at_ms / 1000).unwrap_or(i64::MAX);
        self.commit(signer, &[(key.to_owned(), entry.encode()?)], time)?;
        Ok(entry)
    }

    /// The winning entry at `key`, tombstones included.
    pub fn get(&self, key: &str) -> Option<Entry> {
        let obj = self.entries_obj().ok()?;
        winner(&self.doc, &obj, key)
    }

    /// Every key's winning entry, tombstones included.
    pub fn entries(&self) -> BTreeMap<String, Entry> {
        self.entries_with_prefix("")
    }

    /// The winning entries whose key starts with `prefix`.
    pub fn entries_with_prefix(&self, prefix: &str) -> BTreeMap<String, Entry> {
        match self.entries_obj() {
            Ok(obj) => entries_of(&self.doc, &obj, prefix),
            Err(_) => BTreeMap::new(),
        }
    }

    /// Size of [`Document::save`].
    pub fn len_bytes(&self) -> usize {
        self.save().len()
    }

    /// Commits `puts` (key, encoded entry) as one change signed by `signer`.
    pub(super) fn commit(
        &mut self,
        signer: &SigningKey,
        puts: &[(String, String)],
        time: i64,
    ) -> Result<(), WsError> {
        let obj = self.entries_obj()?;
        self.doc
            .set_actor(ActorId::from(signer.verifying_key().to_bytes()));
        let mut tx = self.doc.transaction();
        for (key, json) in puts {
            tx.put(&obj, key.as_str(), json.as_str())?;
        }
        let (hash, _) = tx.commit_with(CommitOptions::default().with_time(time));
        if let Some(hash) = hash {
            self.signatures
                .insert(hash, signer.sign(&change_message(&hash)).to_bytes());
        }
        Ok(())
    }

    pub(super) fn entries_obj(&self) -> Result<ObjId, WsError> {
        match self.doc.get(ROOT, ENTRIES)? {
            Some((automerge::Value::Object(ObjType::Map), id)) => Ok(id),
            _ => Err(WsError::Corrupt("the document has no entries map".into())),
        }
    }
}

/// The winning entry at `key` of `obj` in `doc`.
pub(super) fn winner(doc: &Automerge, obj: &ObjId, key: &str) -> Option<Entry> {
    doc.get_all(obj, key)
        .ok()?
        .into_iter()
        .filter_map(|(value, _)| value.as_str().and_then(Entry::decode))
        .max_by(|a, b| a.lww_cmp(b))
}

/// The winning entry of every key starting with `prefix` in the map `obj`.
pub(super) fn entries_of(doc: &Automerge, obj: &ObjId, prefix: &str) -> BTreeMap<String, Entry> {
    let mut out = BTreeMap::new();
    for item in doc.map_range(obj, prefix.to_owned()..) {
        if !item.key.starts_with(prefix) {
            break;
        }
        let entry = if item.conflict {
            winner(doc, obj, &item.key)
        } else if let ValueRef::Scalar(ScalarValueRef::Str(json)) = &item.value {
            Entry::decode(json)
        } else {
            None
        };
        if let Some(entry) = entry {
            out.insert(item.key.into_owned(), entry);
        }
    }
    out
}

/// Checks that a change only writes valid entries into the `entries` map
/// (and, for a base change, first creates that map).
pub(super) fn check_ops(change: &Change, base: bool) -> Result<(), String> {
    if !change.extra_bytes().is_empty() {
        return Err(format!("change {} carries extra bytes", change.hash()));
    }
    let entries = ObjectId::Id(OpId(1, ActorId::from(COMPACTOR)));
    // Automerge's decoding unwraps the actor indices a change's own columns
    // hold; a signed but hostile change must not take the node down.
    let expanded = std::panic::catch_unwind(|| change.decode())
        .map_err(|_| format!("change {} has operations that do not decode", change.hash()))?;
    let mut ops = expanded.operations.iter();
    if base {
        let first = ops.next().ok_or("base change is empty")?;
        if first.obj != ObjectId::Root
            || first.key != Key::Map(ENTRIES.into())
            || first.action != OpType::Make(ObjType::Map)
        {
            return Err("base change does not start by creating the entries map".into());
        }
    }
    for op in ops {
        let (Key::Map(key), OpType::Put(ScalarValue::Str(json))) = (&op.key, &op.action) else {
            return Err(format!(
                "change {} has an operation other than an entry put",
                change.hash()
            ));
        };
        if op.obj != entries || op.insert {
            return Err(format!(
                "change {} writes outside the entries map",
                change.hash()
            ));
        }
        if key.is_empty() || key.len() > MAX_KEY_BYTES {
            return Err(format!(
                "change {} has a key of {} bytes (1 to {MAX_KEY_BYTES})",
                change.hash(),
                key.len()
            ));
        }
        if Entry::decode(json).is_none() {
            return Err(format!(
                "change {} puts an invalid entry at {key:?}",
                change.hash()
            ));
        }
    }
    Ok(())
}
