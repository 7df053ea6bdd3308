//! Response decisions shared as a [`Document`]: what every node's bouncer
//! enforces ([`crate::response`]).
//!
//! Each decision is one entry at key `<action>:<subject>` whose body is the
//! [`Decision`]; removing one writes a tombstone; expired ones are retired
//! at compaction. Decisions spread like any workspace change, so both
//! sides of a partition keep deciding and merge when it heals.

use std::collections::{BTreeMap, BTreeSet};

use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

use super::doc::{DocKind, Document, Entry, WsError};
use super::epoch::CompactReport;
use super::operator::{self, Author, OperatorView, RequestProof};
use crate::response::decisions::{Action, Decision, Subject, key};

/// Why a decision edit was refused.
#[derive(Debug, thiserror::Error)]
pub enum DecisionError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Store(#[from] WsError),
}

/// A decision as listed: the decision, who wrote it, the operator if one
/// asked for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DecisionView {
    #[serde(flatten)]
    pub decision: Decision,
    /// Hex public key of the node that wrote it.
    pub author: String,
    pub at_ms: u64,
    pub operator: Option<OperatorView>,
    pub operator_verified: bool,
}

fn decision_of(entry: &Entry) -> Option<Decision> {
    let d: Decision = serde_json::from_value(entry.body.clone()).ok()?;
    d.problem().is_none().then_some(d)
}

/// Keys of expired decisions: the compaction predicate.
pub fn retired_keys(entries: &BTreeMap<String, Entry>, now_ms: u64) -> BTreeSet<String> {
    entries
        .iter()
        .filter(|(_, e)| decision_of(e).is_none_or(|d| !d.is_live(now_ms)))
        .map(|(k, _)| k.clone())
        .collect()
}

/// The decisions document.
#[derive(Debug, Clone)]
pub struct Decisions {
    doc: Document,
}

impl Default for Decisions {
    fn default() -> Self {
        Decisions::new()
    }
}

impl Decisions {
    pub fn new() -> Decisions {
        Decisions {
            doc: Document::new(DocKind::Decisions),
        }
    }

    /// Wraps a loaded document; it must be of kind decisions.
    pub fn from_document(doc: Document) -> Result<Decisions, WsError> {
        doc.of_kind(DocKind::Decisions).map(|doc| Decisions { doc })
    }

    pub fn document(&self) -> &Document {
        &self.doc
    }

    pub fn document_mut(&mut self) -> &mut Document {
        &mut self.doc
    }

    /// Writes `decision` (a newer one for the same subject replaces it).
    pub fn put<'a>(
        &mut self,
        decision: &Decision,
        now_ms: u64,
        by: impl Into<Author<'a>>,
    ) -> Result<DecisionView, DecisionError> {
        if let Some(p) = decision.problem() {
            return Err(DecisionError::Invalid(p));
        }
        let by = by.into();
        let json = serde_json::to_value(decision).map_err(|e| WsError::Corrupt(e.to_string()))?;
        let key = decision.key();
        let stored = self
            .doc
            .put(&key, by.stamp(Entry::new(json, now_ms, by.key)), by.key)?;
        Ok(view(&key, &stored, decision.clone()))
    }

    /// Removes the decision against `subject`; `None` when there is no
    /// live one.
    pub fn remove<'a>(
        &mut self,
        subject: &Subject,
        now_ms: u64,
        by: impl Into<Author<'a>>,
    ) -> Result<Option<DecisionView>, DecisionError> {
        let key = key(Action::BlockSource, subject);
        let Some(current) = self.doc.get(&key).filter(|e| !e.removed) else {
            return Ok(None);
        };
        let Some(decision) = decision_of(&current).filter(|d| d.is_live(now_ms)) else {
            return Ok(None);
        };
        let by = by.into();
        let stored = self.doc.put(
            &key,
            by.stamp(Entry::tombstone(current.body, now_ms, by.key)),
            by.key,
        )?;
        Ok(Some(view(&key, &stored, decision)))
    }

    /// The live decision against `subject`.
    pub fn get(&self, subject: &Subject, now_ms: u64) -> Option<Decision> {
        self.doc
            .get(&key(Action::BlockSource, subject))
            .filter(|e| !e.removed)
            .and_then(|e| decision_of(&e))
            .filter(|d| d.is_live(now_ms))
    }

    /// Live decisions (not removed, not expired), operators checked.
    pub fn list(&self, now_ms: u64) -> Vec<DecisionView> {
        self.doc
            .entries()
            .iter()
            .filter(|(_, e)| !e.removed)
            .filter_map(|(k, e)| {
                decision_of(e)
                    .filter(|d| d.key() == *k && d.is_live(now_ms))
                    .map(|d| view(k, e, d))
            })
            .collect()
    }

    /// Live decisions, for the bouncer (operators not checked).
    pub fn live(&self, now_ms: u64) -> Vec<Decision> {
        self.doc
            .entries()
            .iter()
            .filter(|(_, e)| !e.removed)
            .filter_map(|(k, e)| decision_of(e).filter(|d| d.key() == *k))
            .filter(|d| d.is_live(now_ms))
            .collect()
    }

    /// Compacts, retiring expired decisions and tombstones older than
    /// `retention_ms`.
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

fn view(key: &str, entry: &Entry, decision: Decision) -> DecisionView {
    let (operator, operator_verified) = operator::check(DocKind::Decisions, key, entry);
    DecisionView {
        decision,
        author: entry.author.clone(),
        at_ms: entry.at_ms,
        operator,
        operator_verified,
    }
}

/// The body of `POST /api/v1/decisions`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddBody {
    pub subject: String,
    #[serde(default)]
    pub reason: String,
    pub duration_secs: u64,
}

/// Whether `req` asked for the decision entry at `key` (the route rule of
/// the operator proof, `claims.rs`): `POST /api/v1/decisions` with the same
/// subject, reason and lifetime, or `DELETE /api/v1/decisions?subject=…`.
pub(super) fn claim(
    key: &str,
    entry: &Entry,
    req: &RequestProof,
    path: &str,
    query: Option<&str>,
) -> Result<(), String> {
    let d = decision_of(entry).ok_or("the entry is not a decision")?;
    if d.key() != key {
        return Err("the entry's key is not its decision's".into());
    }
    if path != "/api/v1/decisions" {
        return Err(format!("path {path:?} is not /api/v1/decisions"));
    }
    let same = |asked: &str| {
        (asked.parse::<Subject>().ok() == Some(d.subject))
            .then_some(())
            .ok_or_else(|| format!("subject {asked:?} is not {}", d.subject))
    };
    if entry.removed {
        if req.method != "DELETE" {
            return Err(format!("a removal by {}", req.method));
        }
        let subject = query
            .and_then(|q| super::claims::form_value(q, "subject"))
            .ok_or("the query names no subject once")?;
        return same(&subject);
    }
    if req.method != "POST" {
        return Err(format!("an addition by {}", req.method));
    }
    let add: AddBody = serde_json::from_str(&req.body)
        .map_err(|e| format!("the request body does not parse: {e}"))?;
    same(&add.subject)?;
    if add.reason != d.reason {
        return Err("the reason differs".into());
    }
    let want = add
        .duration_secs
        .checked_mul(1000)
        .and_then(|ms| req.ts_ms.checked_add(ms));
    if want.is_none_or(|w| w.abs_diff(d.expires_ms) > super::operator::PROOF_WINDOW_MS) {
        return Err("the lifetime differs".into());
    }
    Ok(())
}
