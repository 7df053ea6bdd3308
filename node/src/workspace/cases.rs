//! Case notes: the analysts' shared state per alert, as a [`Document`].
//!
//! Keys, all under `case/<alert>/`:
//! - `status` and `assignee`: last-writer-wins values;
//! - `note/<at_ms>-<author prefix>-<n>`: one key per note, so concurrent
//!   notes from two nodes all survive a merge.
//!
//! A `false_positive` status also names the judged alert's rule and
//! subject (from the alert the writing node holds): the verdict every
//! node's detection follows ([`CaseNotes::false_positives`]).
//!
//! A resolved or false-positive case whose last change is older than the
//! retention is retired, notes included, at compaction.

use std::collections::{BTreeMap, BTreeSet};

use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

use super::doc::{DocKind, Document, Entry, WsError, author_hex};
use super::epoch::CompactReport;
use super::operator::{self, Author, OperatorView};
use crate::suppress::FalsePositives;

/// Longest note text, in bytes.
pub const MAX_NOTE_BYTES: usize = 4096;
/// Longest alert id or assignee, in bytes.
pub const MAX_NAME_BYTES: usize = 128;

/// Where a case stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    #[default]
    New,
    Acknowledged,
    FalsePositive,
    Resolved,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Acknowledged => "acknowledged",
            Status::FalsePositive => "false_positive",
            Status::Resolved => "resolved",
        }
    }

    /// Whether the case is closed (and may be retired).
    pub fn is_closed(self) -> bool {
        matches!(self, Status::FalsePositive | Status::Resolved)
    }
}

impl std::str::FromStr for Status {
    type Err = CaseError;

    fn from_str(s: &str) -> Result<Status, CaseError> {
        [
            Status::New,
            Status::Acknowledged,
            Status::FalsePositive,
            Status::Resolved,
        ]
        .into_iter()
        .find(|st| st.label() == s)
        .ok_or_else(|| CaseError::Status(s.to_owned()))
    }
}

/// Why a case operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaseError {
    #[error(
        "alert id {0:?} must be 1 to {MAX_NAME_BYTES} characters of letters, digits, '.', '_', ':' or '-'"
    )]
    AlertId(String),
    #[error("assignee {0:?} must be 1 to {MAX_NAME_BYTES} bytes without control characters")]
    Assignee(String),
    #[error("status {0:?} is not one of new, acknowledged, false_positive, resolved")]
    Status(String),
    #[error("the note is empty")]
    NoteEmpty,
    #[error("note of {len} bytes is over the limit of {MAX_NOTE_BYTES}; split it")]
    NoteTooLong { len: usize },
    #[error(transparent)]
    Store(#[from] WsError),
}

/// Who set a value, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stamp {
    /// Hex public key of the node that wrote it.
    pub by: String,
    pub at_ms: u64,
    /// The operator whose request it was, if the entry names one.
    pub operator: Option<OperatorView>,
    /// Whether the operator's signed request verifies for this value.
    pub operator_verified: bool,
}

/// One note on a case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Note {
    pub text: String,
    /// Hex public key of the node that wrote it.
    pub author: String,
    pub at_ms: u64,
    /// The operator who wrote it, if the entry names one.
    pub operator: Option<OperatorView>,
    /// Whether the operator's signed request verifies for this note.
    pub operator_verified: bool,
}

/// Everything known about one alert.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Case {
    pub alert: String,
    pub status: Status,
    /// `None` while the status was never set (it is then `New`).
    pub status_set: Option<Stamp>,
    pub assignee: Option<String>,
    pub assignee_set: Option<Stamp>,
    /// Ordered by time, then author.
    pub notes: Vec<Note>,
    /// Time of the latest change of any kind.
    pub last_ms: u64,
    /// The rule and subject a `false_positive` status judged, if named.
    #[serde(skip)]
    pub verdict: Option<Verdict>,
}

/// What a false-positive verdict covers: the judged alert's rule and
/// subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub rule: String,
    pub subject: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct StatusBody {
    status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none", flatten)]
    about: Option<Verdict>,
}

#[derive(Debug, Serialize, Deserialize)]
struct AssigneeBody {
    assignee: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct NoteBody {
    text: String,
}

fn to_body<T: Serialize>(body: &T) -> Result<serde_json::Value, CaseError> {
    serde_json::to_value(body).map_err(|e| CaseError::Store(WsError::Corrupt(e.to_string())))
}

fn check_alert(alert: &str) -> Result<(), CaseError> {
    let ok = !alert.is_empty()
        && alert.len() <= MAX_NAME_BYTES
        && alert
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'));
    if ok {
        Ok(())
    } else {
        Err(CaseError::AlertId(alert.to_owned()))
    }
}

fn prefix(alert: &str) -> String {
    format!("case/{alert}/")
}

/// The alert id of a case key.
fn alert_of(key: &str) -> Option<&str> {
    key.strip_prefix("case/")?
        .split_once('/')
        .map(|(alert, _)| alert)
}

/// Builds cases from their entries (keys under `case/`); operator proofs
/// are checked only when `verify` (compaction needs no operators).
fn cases_of(entries: &BTreeMap<String, Entry>, verify: bool) -> BTreeMap<String, Case> {
    let mut cases: BTreeMap<String, Case> = BTreeMap::new();
    for (key, entry) in entries {
        let Some(alert) = alert_of(key) else { continue };
        let case = cases.entry(alert.to_owned()).or_insert_with(|| Case {
            alert: alert.to_owned(),
            ..Case::default()
        });
        case.last_ms = case.last_ms.max(entry.at_ms);
        let (operator, operator_verified) = if verify {
            operator::check(DocKind::Cases, key, entry)
        } else {
            (None, false)
        };
        let stamp = Some(Stamp {
            by: entry.author.clone(),
            at_ms: entry.at_ms,
            operator: operator.clone(),
            operator_verified,
        });
        let rest = &key[prefix(alert).len()..];
        if rest == "status" {
            if let Ok(body) = serde_json::from_value::<StatusBody>(entry.body.clone()) {
                (case.status, case.status_set) = (body.status, stamp);
                case.verdict = body.about.filter(|_| body.status == Status::FalsePositive);
            }
        } else if rest == "assignee" {
            if let Ok(body) = serde_json::from_value::<AssigneeBody>(entry.body.clone()) {
                (case.assignee, case.assignee_set) = (body.assignee, stamp);
            }
        } else if rest.starts_with("note/")
            && !entry.removed
            && let Ok(body) = serde_json::from_value::<NoteBody>(entry.body.clone())
        {
            case.notes.push(Note {
                text: body.text,
                author: entry.author.clone(),
                at_ms: entry.at_ms,
                operator,
                operator_verified,
            });
        }
    }
    for case in cases.values_mut() {
        case.notes
            .sort_by(|a, b| (a.at_ms, &a.author, &a.text).cmp(&(b.at_ms, &b.author, &b.text)));
    }
    cases
}

/// Keys of closed cases whose last change is older than `retention_ms`:
/// the case document's compaction predicate.
pub fn retired_keys(
    entries: &BTreeMap<String, Entry>,
    now_ms: u64,
    retention_ms: u64,
) -> BTreeSet<String> {
    let retired: BTreeSet<String> = cases_of(entries, false)
        .into_values()
        .filter(|c| c.status.is_closed() && c.last_ms.saturating_add(retention_ms) <= now_ms)
        .map(|c| c.alert)
        .collect();
    entries
        .keys()
        .filter(|k| alert_of(k).is_some_and(|a| retired.contains(a)))
        .cloned()
        .collect()
}

/// The case notes document.
#[derive(Debug, Clone)]
pub struct CaseNotes {
    doc: Document,
}

impl Default for CaseNotes {
    fn default() -> Self {
        CaseNotes::new()
    }
}

impl CaseNotes {
    pub fn new() -> CaseNotes {
        CaseNotes {
            doc: Document::new(DocKind::Cases),
        }
    }

    /// Wraps a loaded document; it must be of kind cases.
    pub fn from_document(doc: Document) -> Result<CaseNotes, WsError> {
        doc.of_kind(DocKind::Cases).map(|doc| CaseNotes { doc })
    }

    pub fn document(&self) -> &Document {
        &self.doc
    }

    /// For sync and persistence.
    pub fn document_mut(&mut self) -> &mut Document {
        &mut self.doc
    }

    /// Acknowledges the alert and, if given, assigns it. `by` is the
    /// node's key, or the key and the operator whose request this is; so
    /// for every edit below.
    pub fn ack<'a>(
        &mut self,
        alert: &str,
        assignee: Option<&str>,
        now_ms: u64,
        by: impl Into<Author<'a>>,
    ) -> Result<Case, CaseError> {
        let by = by.into();
        if let Some(who) = assignee {
            self.assign(alert, Some(who), now_ms, by)?;
        }
        self.set_status(alert, Status::Acknowledged, now_ms, by)
    }

    pub fn set_status<'a>(
        &mut self,
        alert: &str,
        status: Status,
        now_ms: u64,
        by: impl Into<Author<'a>>,
    ) -> Result<Case, CaseError> {
        self.set_status_about(alert, status, None, now_ms, by)
    }

    /// Sets the status; a `false_positive` one with the judged alert's
    /// rule and subject (`about`) suppresses their repeats on every node.
    pub fn set_status_about<'a>(
        &mut self,
        alert: &str,
        status: Status,
        about: Option<Verdict>,
        now_ms: u64,
        by: impl Into<Author<'a>>,
    ) -> Result<Case, CaseError> {
        check_alert(alert)?;
        let about = about.filter(|_| status == Status::FalsePositive);
        self.put_field(
            alert,
            "status",
            to_body(&StatusBody { status, about })?,
            now_ms,
            by.into(),
        )
    }

    /// The false-positive verdicts that name a rule and subject, with the
    /// time each was given (operator proofs not checked: detection trusts
    /// the members' signed entries).
    pub fn false_positives(&self) -> FalsePositives {
        let mut out = FalsePositives::default();
        for case in cases_of(&self.doc.entries_with_prefix("case/"), false).into_values() {
            if let (Status::FalsePositive, Some(v), Some(set)) =
                (case.status, &case.verdict, &case.status_set)
            {
                out.insert(&v.rule, &v.subject, &case.alert, set.at_ms);
            }
        }
        out
    }

    /// Sets or clears the assignee.
    pub fn assign<'a>(
        &mut self,
        alert: &str,
        assignee: Option<&str>,
        now_ms: u64,
        by: impl Into<Author<'a>>,
    ) -> Result<Case, CaseError> {
        check_alert(alert)?;
        if let Some(who) = assignee
            && (who.is_empty() || who.len() > MAX_NAME_BYTES || who.chars().any(char::is_control))
        {
            return Err(CaseError::Assignee(who.to_owned()));
        }
        let body = to_body(&AssigneeBody {
            assignee: assignee.map(str::to_owned),
        })?;
        self.put_field(alert, "assignee", body, now_ms, by.into())
    }

    /// Writes one last-writer-wins field of a case; returns the case.
    fn put_field(
        &mut self,
        alert: &str,
        field: &str,
        body: serde_json::Value,
        now_ms: u64,
        by: Author<'_>,
    ) -> Result<Case, CaseError> {
        self.doc.put(
            &format!("{}{field}", prefix(alert)),
            by.stamp(Entry::new(body, now_ms, by.key)),
            by.key,
        )?;
        Ok(self.show(alert))
    }

    /// Adds a note; each note is its own key, so none is lost in a merge.
    pub fn note<'a>(
        &mut self,
        alert: &str,
        text: &str,
        now_ms: u64,
        by: impl Into<Author<'a>>,
    ) -> Result<Note, CaseError> {
        let by = by.into();
        check_alert(alert)?;
        if text.trim().is_empty() {
            return Err(CaseError::NoteEmpty);
        }
        if text.len() > MAX_NOTE_BYTES {
            return Err(CaseError::NoteTooLong { len: text.len() });
        }
        let author = author_hex(by.key);
        // Zero-padded time keeps a case's note keys in time order.
        let stem = format!("{}note/{now_ms:013}-{}", prefix(alert), &author[..16]);
        let mut n = 0u32;
        while self.doc.get(&format!("{stem}-{n}")).is_some() {
            n += 1;
        }
        let body = to_body(&NoteBody {
            text: text.to_owned(),
        })?;
        let key = format!("{stem}-{n}");
        let stored = self
            .doc
            .put(&key, by.stamp(Entry::new(body, now_ms, by.key)), by.key)?;
        let (operator, operator_verified) = operator::check(DocKind::Cases, &key, &stored);
        Ok(Note {
            text: text.to_owned(),
            author,
            at_ms: stored.at_ms,
            operator,
            operator_verified,
        })
    }

    /// The case of `alert`; a case nobody touched yet is `New` and empty.
    pub fn show(&self, alert: &str) -> Case {
        cases_of(&self.doc.entries_with_prefix(&prefix(alert)), true)
            .remove(alert)
            .unwrap_or_else(|| Case {
                alert: alert.to_owned(),
                ..Case::default()
            })
    }

    /// Every case, by alert id.
    pub fn list(&self) -> Vec<Case> {
        cases_of(&self.doc.entries_with_prefix("case/"), true)
            .into_values()
            .collect()
    }

    /// Compacts, retiring closed cases older than `retention_ms`.
    pub fn compact(
        &mut self,
        now_ms: u64,
        retention_ms: u64,
        signer: &SigningKey,
    ) -> Result<CompactReport, WsError> {
        let retired = retired_keys(&self.doc.entries(), now_ms, retention_ms);
        self.doc
            .compact(now_ms, retention_ms, |k, _| retired.contains(k), signer)
    }
}
