//! Edits of the node's workspace. Each is signed by the node's key; the
//! `_by` forms also carry the operator whose signed request asked for it
//! (the API's edits, docs/WORKSPACE.md "Operators"), the plain forms none.

use super::{EditError, Workspace, lock, now_ms};
use crate::workspace::cases::{Case, CaseError, CaseNotes, Note, Status, Verdict};
use crate::workspace::doc::DocKind;
use crate::workspace::intel::Ioc;
use crate::workspace::operator::{Author, Operator};

impl Workspace {
    pub fn intel_add(
        &self,
        indicator: &str,
        reason: &str,
        expires_ms: Option<u64>,
    ) -> Result<Ioc, EditError> {
        self.intel_add_by(indicator, reason, expires_ms, None)
    }

    pub fn intel_add_by(
        &self,
        indicator: &str,
        reason: &str,
        expires_ms: Option<u64>,
        operator: Option<&Operator>,
    ) -> Result<Ioc, EditError> {
        let mut docs = lock(&self.docs);
        let by = self.author(operator);
        let ioc = docs
            .intel
            .add(indicator, reason, expires_ms, now_ms(), by)?;
        self.changed(&mut docs, DocKind::Intel)?;
        Ok(ioc)
    }

    /// Removes an indicator; `None` when it was not listed.
    pub fn intel_remove(&self, indicator: &str) -> Result<Option<Ioc>, EditError> {
        self.intel_remove_by(indicator, None)
    }

    pub fn intel_remove_by(
        &self,
        indicator: &str,
        operator: Option<&Operator>,
    ) -> Result<Option<Ioc>, EditError> {
        let mut docs = lock(&self.docs);
        let removed = docs
            .intel
            .remove(indicator, now_ms(), self.author(operator))?;
        if removed.is_some() {
            self.changed(&mut docs, DocKind::Intel)?;
        }
        Ok(removed)
    }

    /// Live indicators (not removed, not expired), operators checked.
    pub fn intel_list(&self) -> Vec<Ioc> {
        lock(&self.docs).intel.list(now_ms())
    }

    pub fn case_ack(&self, alert: &str, assignee: Option<&str>) -> Result<Case, EditError> {
        self.case_ack_by(alert, assignee, None)
    }

    pub fn case_ack_by(
        &self,
        alert: &str,
        assignee: Option<&str>,
        operator: Option<&Operator>,
    ) -> Result<Case, EditError> {
        self.case_edit(operator, |c, now, by| c.ack(alert, assignee, now, by))
    }

    pub fn case_status(&self, alert: &str, status: Status) -> Result<Case, EditError> {
        self.case_status_by(alert, status, None)
    }

    pub fn case_status_by(
        &self,
        alert: &str,
        status: Status,
        operator: Option<&Operator>,
    ) -> Result<Case, EditError> {
        // A false positive names the judged alert's rule and subject, for
        // every node's detection (the API checks the alert is held here).
        let about = match status {
            Status::FalsePositive => self.store.alert(alert)?.map(|a| Verdict {
                rule: a.body.rule,
                subject: a.body.subject,
            }),
            _ => None,
        };
        self.case_edit(operator, |c, now, by| {
            c.set_status_about(alert, status, about, now, by)
        })
    }

    pub fn case_assign(&self, alert: &str, assignee: Option<&str>) -> Result<Case, EditError> {
        self.case_edit(None, |c, now, by| c.assign(alert, assignee, now, by))
    }

    pub fn case_note(&self, alert: &str, text: &str) -> Result<Note, EditError> {
        self.case_note_by(alert, text, None)
    }

    pub fn case_note_by(
        &self,
        alert: &str,
        text: &str,
        operator: Option<&Operator>,
    ) -> Result<Note, EditError> {
        self.case_edit(operator, |c, now, by| c.note(alert, text, now, by))
    }

    fn author<'a>(&'a self, operator: Option<&'a Operator>) -> Author<'a> {
        Author {
            key: &self.key,
            operator,
        }
    }

    fn case_edit<T>(
        &self,
        operator: Option<&Operator>,
        edit: impl FnOnce(&mut CaseNotes, u64, Author<'_>) -> Result<T, CaseError>,
    ) -> Result<T, EditError> {
        let mut docs = lock(&self.docs);
        let out = edit(&mut docs.cases, now_ms(), self.author(operator))?;
        self.changed(&mut docs, DocKind::Cases)?;
        Ok(out)
    }
}
