//! Offline trust: the membership export (`GET /api/v1/members/export`,
//! `amoskys members export`), signed by a voter, and the trust set that
//! `amoskys alerts verify` checks alert origins against.
//!
//! The export's signature is strict ed25519 over its canonical bytes (see
//! [`MembersExport::canonical_bytes`] and docs/ALERTS.md), never over JSON.
//!
//! An export also lists retired node keys with their hand-over (signed by
//! the old and the new key, checked here too): an alert a retired key
//! signed verifies up to the last sequence number the hand-over names, and
//! is refused after it.

use std::collections::{BTreeMap, BTreeSet};

use amoskys_consensus::{Applied, NodeId};
use amoskys_mesh::alert::{peer_id_of, rfc3339};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

/// Version of the export format and of its canonical encoding.
pub const EXPORT_VERSION: u16 = 1;
/// Domain separator that starts the canonical bytes.
pub const EXPORT_DOMAIN: &[u8] = b"AMOSKYS-MEMBERS\x00";
/// Largest export accepted (JSON bytes).
pub const MAX_EXPORT_BYTES: usize = 1024 * 1024;
/// Most entries in `members`, and in `removed`.
pub const MAX_EXPORT_ENTRIES: usize = 4096;
/// Longest `name`, in UTF-8 bytes.
pub const MAX_NAME: usize = 256;

/// The Raft membership as one node saw it committed, signed by that node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MembersExport {
    pub version: u16,
    /// Raft log id of the membership entry.
    pub membership_log: LogPosition,
    /// In key order as exported; the signature covers the order.
    pub members: Vec<ExportedMember>,
    pub removed: Vec<RemovedMember>,
    /// Node keys handed over to a successor (absent when none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired: Vec<RetiredKey>,
    /// Peer id of the node that signed; a voter of `members`.
    pub exported_by: String,
    /// RFC 3339 UTC, nine fraction digits.
    pub exported_at: String,
    /// ed25519 signature over [`MembersExport::canonical_bytes`], 128
    /// lowercase hex characters.
    pub signature: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogPosition {
    pub term: u64,
    pub index: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Voter,
    Learner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Voter => "voter",
            Role::Learner => "learner",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportedMember {
    /// Peer id of `key`.
    pub id: String,
    /// ed25519 public key, 64 lowercase hex characters.
    pub key: String,
    pub role: Role,
    /// The node's name when the exporter knows it (its own); absent means "".
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemovedMember {
    pub id: String,
    pub key: String,
    /// RFC 3339 UTC, nine fraction digits.
    pub removed_at: String,
}

/// A node key handed over to a successor: the hand-over as committed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetiredKey {
    pub id: String,
    pub key: String,
    /// Peer id of the successor key.
    pub successor: String,
    /// The last alert sequence number the key signed (absent: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seq: Option<u64>,
    /// The hand-over's time and the old and the new key's signatures of it
    /// (`amoskys_consensus::rotation::statement`).
    pub time_ns: u64,
    pub old_sig: String,
    pub new_sig: String,
}

/// Why an export or a trust set was refused or could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    #[error("this node is not in a cluster yet: there is no membership to export")]
    NoMembership,
    #[error(
        "this node ({0}) is not a voter, and an export is signed by a voter: ask a voter (`amoskys cluster status` lists them)"
    )]
    NotAVoter(String),
    #[error("membership export of {0} bytes is over the limit of {MAX_EXPORT_BYTES}")]
    TooLarge(usize),
    #[error("membership export does not decode: {0}")]
    Malformed(String),
    #[error("membership export version {0} is not supported (expected {EXPORT_VERSION})")]
    Version(u16),
    #[error("membership export field {field} is invalid: {reason}")]
    Field { field: String, reason: String },
    #[error("the export is signed by {0}, which is not a voter in it")]
    SignerNotVoter(String),
    #[error("the export is signed by {signer}, not by {pinned} (--signer)")]
    SignerNotPinned { signer: String, pinned: String },
    #[error("the membership export's signature does not verify")]
    BadSignature,
    #[error("line {line}: {reason}")]
    Keys { line: usize, reason: String },
}

fn field(field: impl Into<String>, reason: impl Into<String>) -> TrustError {
    TrustError::Field {
        field: field.into(),
        reason: reason.into(),
    }
}

impl MembersExport {
    /// The committed membership in `applied`, signed by `key`, which must
    /// be one of its voters. `names` gives the names this node knows.
    pub fn build(
        applied: &Applied,
        names: &BTreeMap<NodeId, String>,
        key: &SigningKey,
        now_ns: u64,
    ) -> Result<MembersExport, TrustError> {
        let log = applied
            .membership
            .log_id()
            .as_ref()
            .ok_or(TrustError::NoMembership)?;
        let me = NodeId(key.verifying_key().to_bytes());
        let voters: BTreeSet<NodeId> = applied.membership.voter_ids().collect();
        if !voters.contains(&me) {
            return Err(TrustError::NotAVoter(me.to_string()));
        }
        // BTreeMap order: by key bytes.
        let members = applied
            .membership
            .nodes()
            .map(|(id, _)| ExportedMember {
                id: id.to_string(),
                key: id.to_hex(),
                role: if voters.contains(id) {
                    Role::Voter
                } else {
                    Role::Learner
                },
                name: names.get(id).cloned().unwrap_or_default(),
            })
            .collect();
        let removed = applied
            .state
            .removed
            .iter()
            .map(|(id, t)| RemovedMember {
                id: id.to_string(),
                key: id.to_hex(),
                removed_at: rfc3339(*t),
            })
            .collect();
        let retired = applied
            .state
            .retired
            .iter()
            .map(|(id, r)| RetiredKey {
                id: id.to_string(),
                key: id.to_hex(),
                successor: r.successor.to_string(),
                last_seq: r.last_seq,
                time_ns: r.time_ns,
                old_sig: r.old_sig.clone(),
                new_sig: r.new_sig.clone(),
            })
            .collect();
        let mut export = MembersExport {
            version: EXPORT_VERSION,
            membership_log: LogPosition {
                term: log.leader_id.term,
                index: log.index,
            },
            members,
            removed,
            retired,
            exported_by: me.to_string(),
            exported_at: rfc3339(now_ns),
            signature: String::new(),
        };
        export.signature = hex::encode(key.sign(&export.canonical_bytes()).to_bytes());
        Ok(export)
    }

    /// Decodes JSON with the size limit applied first, then verifies.
    pub fn decode(bytes: &[u8], signer: Option<&NodeId>) -> Result<TrustSet, TrustError> {
        if bytes.len() > MAX_EXPORT_BYTES {
            return Err(TrustError::TooLarge(bytes.len()));
        }
        let export: MembersExport =
            serde_json::from_slice(bytes).map_err(|e| TrustError::Malformed(e.to_string()))?;
        export.verify(signer)
    }

    /// The bytes that are signed. Fixed order, big-endian integers, every
    /// string as the u32 count of its UTF-8 bytes, then those bytes:
    /// `EXPORT_DOMAIN, version u16, term u64, index u64, member count u32,
    /// then id, key, role, name of each member, removed count u32, then id,
    /// key, removed_at of each, then only when there are retired keys:
    /// their count u32, then id, key, successor, last_seq (`-` for none),
    /// time_ns u64, old_sig, new_sig of each; exported_by, exported_at`.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + 160 * self.members.len());
        out.extend_from_slice(EXPORT_DOMAIN);
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&self.membership_log.term.to_be_bytes());
        out.extend_from_slice(&self.membership_log.index.to_be_bytes());
        out.extend_from_slice(&(self.members.len() as u32).to_be_bytes());
        for m in &self.members {
            for s in [
                m.id.as_str(),
                m.key.as_str(),
                m.role.as_str(),
                m.name.as_str(),
            ] {
                put_str(&mut out, s);
            }
        }
        out.extend_from_slice(&(self.removed.len() as u32).to_be_bytes());
        for r in &self.removed {
            for s in [r.id.as_str(), r.key.as_str(), r.removed_at.as_str()] {
                put_str(&mut out, s);
            }
        }
        if !self.retired.is_empty() {
            out.extend_from_slice(&(self.retired.len() as u32).to_be_bytes());
            for r in &self.retired {
                let last = r.last_seq.map_or_else(|| "-".to_owned(), |s| s.to_string());
                for s in [r.id.as_str(), r.key.as_str(), r.successor.as_str(), &last] {
                    put_str(&mut out, s);
                }
                out.extend_from_slice(&r.time_ns.to_be_bytes());
                put_str(&mut out, &r.old_sig);
                put_str(&mut out, &r.new_sig);
            }
        }
        put_str(&mut out, &self.exported_by);
        put_str(&mut out, &self.exported_at);
        out
    }

    /// Checks every field, that the signer is a voter of the export (and
    /// the pinned `signer`, if given), and the signature. Returns the
    /// members as a trust set.
    pub fn verify(&self, signer: Option<&NodeId>) -> Result<TrustSet, TrustError> {
        if self.version != EXPORT_VERSION {
            return Err(TrustError::Version(self.version));
        }
        for (name, len) in [
            ("members", self.members.len()),
            ("removed", self.removed.len()),
            ("retired", self.retired.len()),
        ] {
            if len > MAX_EXPORT_ENTRIES {
                return Err(field(
                    name,
                    format!("{len} entries, at most {MAX_EXPORT_ENTRIES}"),
                ));
            }
        }
        for (name, time) in [("exported_at", &self.exported_at)]
            .into_iter()
            .chain(self.removed.iter().map(|r| ("removed_at", &r.removed_at)))
        {
            if humantime::parse_rfc3339(time).is_err() {
                return Err(field(name, format!("{time:?} is not an RFC 3339 UTC time")));
            }
        }
        let mut trust = TrustSet::default();
        let mut signer_key = None;
        for (i, m) in self.members.iter().enumerate() {
            let key = entry_key(&format!("members[{i}]"), &m.id, &m.key)?;
            if m.name.len() > MAX_NAME {
                return Err(field(
                    format!("members[{i}].name"),
                    format!("{} bytes, at most {MAX_NAME}", m.name.len()),
                ));
            }
            if m.id == self.exported_by {
                if m.role != Role::Voter {
                    return Err(TrustError::SignerNotVoter(m.id.clone()));
                }
                signer_key = Some(key);
            }
            let source = format!("{} in the export by {}", m.role.as_str(), self.exported_by);
            if trust.keys.insert(key.to_bytes(), source).is_some() {
                return Err(field(format!("members[{i}]"), "a key listed twice"));
            }
        }
        for (i, r) in self.removed.iter().enumerate() {
            let key = entry_key(&format!("removed[{i}]"), &r.id, &r.key)?;
            trust.removed.insert(key.to_bytes(), r.removed_at.clone());
        }
        for (i, r) in self.retired.iter().enumerate() {
            let at = format!("retired[{i}]");
            let key = entry_key(&at, &r.id, &r.key)?;
            let successor =
                NodeId::parse(&r.successor).map_err(|e| field(format!("{at}.successor"), e))?;
            let rotation = amoskys_consensus::NodeRotation {
                old: NodeId(key.to_bytes()),
                new: successor,
                last_seq: r.last_seq,
                time_ns: r.time_ns,
                old_sig: r.old_sig.clone(),
                new_sig: r.new_sig.clone(),
            };
            rotation.verify().map_err(|e| field(at, e))?;
            trust.retired.insert(
                key.to_bytes(),
                Handed {
                    successor: r.successor.clone(),
                    last_seq: r.last_seq,
                    source: format!(
                        "retired key in the export by {}, handed over to {}",
                        self.exported_by, r.successor
                    ),
                },
            );
        }
        let signer_key =
            signer_key.ok_or_else(|| TrustError::SignerNotVoter(self.exported_by.clone()))?;
        if let Some(pinned) = signer
            && pinned.0 != signer_key.to_bytes()
        {
            return Err(TrustError::SignerNotPinned {
                signer: self.exported_by.clone(),
                pinned: pinned.to_string(),
            });
        }
        let sig: [u8; 64] = lower_hex(&self.signature)
            .ok_or_else(|| field("signature", "expected 128 lowercase hex characters"))?;
        signer_key
            .verify_strict(&self.canonical_bytes(), &Signature::from_bytes(&sig))
            .map_err(|_| TrustError::BadSignature)?;
        Ok(trust)
    }
}

/// The key of an entry, checked: lowercase hex, a strong ed25519 key, and
/// `id` its peer id.
fn entry_key(at: &str, id: &str, key: &str) -> Result<VerifyingKey, TrustError> {
    let bytes: [u8; 32] = lower_hex(key)
        .ok_or_else(|| field(format!("{at}.key"), "expected 64 lowercase hex characters"))?;
    let key = VerifyingKey::from_bytes(&bytes)
        .ok()
        .filter(|k| !k.is_weak())
        .ok_or_else(|| field(format!("{at}.key"), "not a usable ed25519 key"))?;
    if id != peer_id_of(&key) {
        return Err(field(format!("{at}.id"), "is not the peer id of its key"));
    }
    Ok(key)
}

fn lower_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    hex::decode(s).ok()?.try_into().ok()
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// The keys whose alerts are trusted, each with where its trust comes from.
#[derive(Debug, Clone, Default)]
pub struct TrustSet {
    keys: BTreeMap<[u8; 32], String>,
    /// Keys an export lists as removed, and when: named when they sign.
    removed: BTreeMap<[u8; 32], String>,
    /// Retired keys: trusted for alerts up to their hand-over.
    retired: BTreeMap<[u8; 32], Handed>,
}

/// A retired key's hand-over, as the trust set keeps it.
#[derive(Debug, Clone)]
struct Handed {
    successor: String,
    last_seq: Option<u64>,
    source: String,
}

impl TrustSet {
    /// Keys from text: one peer id (`12D3KooW…`) or 64 hex digits of a
    /// public key a line; blank lines and `#` comments are skipped.
    pub fn from_keys(text: &str, source: &str) -> Result<TrustSet, TrustError> {
        let mut trust = TrustSet::default();
        for (i, line) in text.lines().enumerate() {
            let entry = line.split('#').next().unwrap_or_default().trim();
            if entry.is_empty() {
                continue;
            }
            let id = NodeId::parse(entry).map_err(|reason| TrustError::Keys {
                line: i + 1,
                reason,
            })?;
            trust.keys.insert(id.0, format!("{source} line {}", i + 1));
        }
        Ok(trust)
    }

    /// Adds every key of `other`.
    pub fn extend(&mut self, other: TrustSet) {
        self.removed.extend(other.removed);
        self.retired.extend(other.retired);
        self.keys.extend(other.keys);
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Where the trust in a node key as the signer of records (audit
    /// entries) comes from: a member, or a retired key (its records are
    /// history).
    pub fn admits_node(&self, key: &VerifyingKey) -> Result<&str, String> {
        match self.retired.get(&key.to_bytes()) {
            Some(h) => Ok(h.source.as_str()),
            None => self.admits(key, 0),
        }
    }

    /// Where the trust in an alert of sequence number `seq` signed by `key`
    /// comes from, or why there is none (naming the key). A retired key is
    /// trusted up to its hand-over's last sequence number.
    pub fn admits(&self, key: &VerifyingKey, seq: u64) -> Result<&str, String> {
        let bytes = key.to_bytes();
        if let Some(source) = self.keys.get(&bytes) {
            return Ok(source.as_str());
        }
        if let Some(h) = self.retired.get(&bytes) {
            if h.last_seq.is_some_and(|last| seq <= last) {
                return Ok(h.source.as_str());
            }
            return Err(format!(
                "origin {} was handed over to {} after sequence number {}; an alert it \
                 signed with sequence number {seq} is not trusted",
                peer_id_of(key),
                h.successor,
                h.last_seq
                    .map_or_else(|| "(none)".to_owned(), |s| s.to_string())
            ));
        }
        let removed = self
            .removed
            .get(&bytes)
            .map(|t| format!("; it was removed from the cluster at {t}"))
            .unwrap_or_default();
        Err(format!(
            "origin {} (key {}) is not in the trust set{removed}",
            peer_id_of(key),
            hex::encode(bytes)
        ))
    }
}

#[cfg(test)]
mod tests;
