//! The decisions document on a node: edits (by a response rule or an
//! operator), the live list, and the watch the bouncer follows.

use tokio::sync::watch;

use super::{EditError, Workspace, lock, now_ms};
use crate::response::decisions::{Decision, Subject};
use crate::workspace::decisions::DecisionView;
use crate::workspace::doc::DocKind;
use crate::workspace::operator::{Author, Operator};

impl Workspace {
    /// Writes `decision`, signed by the node's key; with `operator`, the
    /// operator's signed request goes with it.
    pub fn decision_put(
        &self,
        decision: &Decision,
        operator: Option<&Operator>,
    ) -> Result<DecisionView, EditError> {
        let mut docs = lock(&self.docs);
        let view = docs.decisions.put(
            decision,
            now_ms(),
            Author {
                key: &self.key,
                operator,
            },
        )?;
        self.changed(&mut docs, DocKind::Decisions)?;
        Ok(view)
    }

    /// Removes the live decision against `subject`; `None` when there is
    /// none.
    pub fn decision_remove(
        &self,
        subject: &Subject,
        operator: Option<&Operator>,
    ) -> Result<Option<DecisionView>, EditError> {
        let mut docs = lock(&self.docs);
        let removed = docs.decisions.remove(
            subject,
            now_ms(),
            Author {
                key: &self.key,
                operator,
            },
        )?;
        if removed.is_some() {
            self.changed(&mut docs, DocKind::Decisions)?;
        }
        Ok(removed)
    }

    /// The live decision against `subject`.
    pub fn decision(&self, subject: &Subject) -> Option<Decision> {
        lock(&self.docs).decisions.get(subject, now_ms())
    }

    /// Live decisions with their authors and operators checked.
    pub fn decisions_list(&self) -> Vec<DecisionView> {
        lock(&self.docs).decisions.list(now_ms())
    }

    /// Live decisions at `now_ms`, for the bouncer.
    pub fn decisions_live(&self, now_ms: u64) -> Vec<Decision> {
        lock(&self.docs).decisions.live(now_ms)
    }

    /// Changes after every change of the decisions (here or by a peer).
    pub fn decided(&self) -> watch::Receiver<u64> {
        self.decided.subscribe()
    }
}
