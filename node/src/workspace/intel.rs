//! Threat intel: indicators of compromise (IOCs) shared as a [`Document`].
//!
//! Each IOC is one entry at key `<kind>:<normalized value>`; removing one
//! writes a tombstone. Expired IOCs are retired at compaction. User input is
//! parsed in `indicator.rs`; fast lookup for live detection is in
//! `matcher.rs`.

use std::collections::{BTreeMap, BTreeSet};

use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

use super::doc::{DocKind, Document, Entry, WsError};
use super::epoch::CompactReport;
pub use super::indicator::{IocError, IocKind, parse_indicator};
use super::matcher::IocMatcher;
use super::operator::{self, Author, OperatorView};

/// Longest reason text, in bytes.
pub const MAX_REASON_BYTES: usize = 1024;

/// One indicator of compromise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ioc {
    pub kind: IocKind,
    /// Normalized value.
    pub value: String,
    pub reason: String,
    /// Hex public key of the node that added (or last changed) it.
    pub added_by: String,
    /// After this time (ms since the Unix epoch) it no longer matches.
    pub expires_ms: Option<u64>,
    pub at_ms: u64,
    /// The operator who added (or removed) it, if the entry names one.
    pub operator: Option<OperatorView>,
    /// Whether the operator's signed request verifies for this entry;
    /// checked for the API's lists, not for the matcher's (always false
    /// there).
    pub operator_verified: bool,
}

impl Ioc {
    pub fn is_live(&self, now_ms: u64) -> bool {
        self.expires_ms.is_none_or(|e| e > now_ms)
    }
}

/// The entry body of an IOC.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct IocBody {
    kind: IocKind,
    value: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    expires_ms: Option<u64>,
}

fn key(kind: IocKind, value: &str) -> String {
    format!("{}:{value}", kind.label())
}

/// The IOC of `entry`; with `verified` the key of the entry, whose
/// operator proof is then checked.
fn ioc_of(entry: &Entry, verified: Option<&str>) -> Option<Ioc> {
    let body: IocBody = serde_json::from_value(entry.body.clone()).ok()?;
    let (operator, operator_verified) = match verified {
        Some(key) => operator::check(DocKind::Intel, key, entry),
        None => (None, false),
    };
    Some(Ioc {
        kind: body.kind,
        value: body.value,
        reason: body.reason,
        added_by: entry.author.clone(),
        expires_ms: body.expires_ms,
        at_ms: entry.at_ms,
        operator,
        operator_verified,
    })
}

/// Keys of expired IOCs: the intel document's compaction predicate.
pub fn retired_keys(entries: &BTreeMap<String, Entry>, now_ms: u64) -> BTreeSet<String> {
    entries
        .iter()
        .filter(|(_, e)| ioc_of(e, None).is_some_and(|ioc| !ioc.is_live(now_ms)))
        .map(|(k, _)| k.clone())
        .collect()
}

/// The threat intel document.
#[derive(Debug, Clone)]
pub struct ThreatIntel {
    doc: Document,
}

impl Default for ThreatIntel {
    fn default() -> Self {
        ThreatIntel::new()
    }
}

impl ThreatIntel {
    pub fn new() -> ThreatIntel {
        ThreatIntel {
            doc: Document::new(DocKind::Intel),
        }
    }

    /// Wraps a loaded document; it must be of kind intel.
    pub fn from_document(doc: Document) -> Result<ThreatIntel, WsError> {
        doc.of_kind(DocKind::Intel).map(|doc| ThreatIntel { doc })
    }

    pub fn document(&self) -> &Document {
        &self.doc
    }

    /// For sync and persistence.
    pub fn document_mut(&mut self) -> &mut Document {
        &mut self.doc
    }

    /// Adds (or updates) the IOC `indicator` (see [`parse_indicator`]).
    /// `by` is the node's key, or the key and the operator whose request
    /// this is.
    pub fn add<'a>(
        &mut self,
        indicator: &str,
        reason: &str,
        expires_ms: Option<u64>,
        now_ms: u64,
        by: impl Into<Author<'a>>,
    ) -> Result<Ioc, IocError> {
        if reason.len() > MAX_REASON_BYTES {
            return Err(IocError::ReasonTooLong(reason.len()));
        }
        let (kind, value) = parse_indicator(indicator)?;
        let body = IocBody {
            kind,
            value,
            reason: reason.to_owned(),
            expires_ms,
        };
        self.write(body, false, now_ms, by.into())
    }

    /// Removes `indicator` with a tombstone; `Ok(None)` if it is absent or
    /// already removed.
    pub fn remove<'a>(
        &mut self,
        indicator: &str,
        now_ms: u64,
        by: impl Into<Author<'a>>,
    ) -> Result<Option<Ioc>, IocError> {
        let (kind, value) = parse_indicator(indicator)?;
        match self.doc.get(&key(kind, &value)) {
            Some(entry) if !entry.removed => {
                let body = IocBody {
                    kind,
                    value,
                    reason: String::new(),
                    expires_ms: None,
                };
                self.write(body, true, now_ms, by.into()).map(Some)
            }
            _ => Ok(None),
        }
    }

    fn write(
        &mut self,
        body: IocBody,
        removed: bool,
        now_ms: u64,
        by: Author<'_>,
    ) -> Result<Ioc, IocError> {
        let key = key(body.kind, &body.value);
        let json = serde_json::to_value(&body).map_err(|e| WsError::Corrupt(e.to_string()))?;
        let entry = if removed {
            Entry::tombstone(json, now_ms, by.key)
        } else {
            Entry::new(json, now_ms, by.key)
        };
        let stored = self.doc.put(&key, by.stamp(entry), by.key)?;
        ioc_of(&stored, Some(key.as_str()))
            .ok_or_else(|| IocError::Store(WsError::Corrupt(format!("entry {key} is not an IOC"))))
    }

    /// The IOC for `indicator` unless removed (expired ones included).
    pub fn get(&self, indicator: &str) -> Option<Ioc> {
        let (kind, value) = parse_indicator(indicator).ok()?;
        let key = key(kind, &value);
        self.doc
            .get(&key)
            .filter(|e| !e.removed)
            .and_then(|e| ioc_of(&e, Some(key.as_str())))
    }

    /// Live, unexpired IOCs, ordered by kind label, then value, with their
    /// operators checked.
    pub fn list(&self, now_ms: u64) -> Vec<Ioc> {
        self.live(now_ms, true)
    }

    fn live(&self, now_ms: u64, verify: bool) -> Vec<Ioc> {
        self.doc
            .entries()
            .iter()
            .filter(|(_, e)| !e.removed)
            .filter_map(|(k, e)| ioc_of(e, verify.then_some(k.as_str())))
            .filter(|ioc| ioc.is_live(now_ms))
            .collect()
    }

    /// A matcher over the IOCs live at `now_ms` (operators not checked:
    /// detection does not need them).
    pub fn matcher(&self, now_ms: u64) -> IocMatcher {
        IocMatcher::new(self.live(now_ms, false))
    }

    /// Compacts, retiring expired IOCs and tombstones older than `retention_ms`.
    pub fn compact(
        &mut self,
        now_ms: u64,
        retention_ms: u64,
        signer: &SigningKey,
    ) -> Result<CompactReport, WsError> {
        let retired = retired_keys(&self.doc.entries(), now_ms);
        self.doc
            .compact(now_ms, retention_ms, |k, _| retired.contains(k), signer)
    }
}
