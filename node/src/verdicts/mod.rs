//! What the analysts' verdicts teach on a node.
//!
//! - Detection keeps the feature window behind each anomaly alert in the
//!   node's store ([`crate::storage::windows`]). When a case's status
//!   becomes `resolved` (a true positive) or `false_positive`, the
//!   [`Learner`] records the verdict with that window; a reopened case takes
//!   it back. Windows and verdicts never leave the node.
//! - Per entity kind, a supervised head ([`amoskys_learning::head`]) is
//!   trained on the node's verdicts over the unsupervised score and the
//!   window. It re-ranks alerts only once `learning.head_min_per_class`
//!   verdicts of each class are behind it; before, alerts keep the
//!   unsupervised order.
//! - `learning.head` says which head is in force: `off`, `local` (this
//!   node's) or `federated` (the registry's head of federated head rounds,
//!   `federation/head.rs`; the local one until a round registered one).
//! - [`Learner::review`] picks the unjudged alerts whose verdict would
//!   teach the most ([`amoskys_learning::active`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, PoisonError, RwLock};

use amoskys_learning::active::{Candidate, choose};
use amoskys_learning::features::EntityKind;
use amoskys_learning::head::{Head, HeadConfig, Verdict};
use serde::Serialize;
use tokio::sync::watch;

use crate::policy::InForce;
use crate::storage::windows::{Labelled, MAX_VERDICTS, MAX_WINDOWS, Window};
use crate::storage::{StorageError, Store};
use crate::workspace::{Case, Status, Workspace};

/// Unjudged windows the review considers (the newest).
const REVIEW_POOL: usize = 2_000;

/// A head as the registry holds it: its version and parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Registered {
    pub version: u64,
    pub head: Head,
}

/// The head's view of one alert, where a head is in force.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct HeadScore {
    /// Probability that the alert is a true positive.
    pub probability: f64,
    /// The head's log-odds: the ranking score (higher first).
    pub logit: f64,
}

/// One kind's head as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KindState {
    pub entity: String,
    /// `local`, `federated` or `none`.
    pub source: String,
    /// The registry version of a federated head.
    pub version: Option<u64>,
    pub in_force: bool,
    /// Verdicts behind the head in use (all sites for a federated one).
    pub attacks: u64,
    pub normals: u64,
    /// This node's verdicts of the kind.
    pub local_attacks: u64,
    pub local_normals: u64,
}

/// An alert worth an analyst's verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Review {
    pub alert: String,
    pub entity: String,
    pub time_ns: u64,
    /// The unsupervised score input (0 at the alert threshold).
    pub score: f32,
    /// The head's probability, where one is in force.
    pub probability: Option<f64>,
}

#[derive(Debug, Default)]
struct Heads {
    local: BTreeMap<EntityKind, Head>,
    registry: BTreeMap<EntityKind, Registered>,
}

/// The node's verdicts and heads.
#[derive(Debug)]
pub struct Learner {
    store: Arc<Store>,
    policy: watch::Receiver<Arc<InForce>>,
    heads: RwLock<Heads>,
}

/// The head settings under a policy.
pub fn head_config(policy: &InForce) -> HeadConfig {
    HeadConfig {
        min_per_class: policy.policy.learning.head_min_per_class,
        ..HeadConfig::default()
    }
}

impl Learner {
    /// A learner over `store`'s verdicts; [`Learner::follow`] trains its
    /// local heads first thing.
    pub fn new(store: Arc<Store>, policy: watch::Receiver<Arc<InForce>>) -> Arc<Learner> {
        Arc::new(Learner {
            store,
            policy,
            heads: RwLock::default(),
        })
    }

    /// The policy in force.
    pub fn policy(&self) -> Arc<InForce> {
        self.policy.borrow().clone()
    }

    fn mode(&self) -> String {
        self.policy.borrow().policy.learning.head.clone()
    }

    fn config(&self) -> HeadConfig {
        head_config(&self.policy.borrow())
    }

    /// The head the policy puts in use for `kind`, and where it is from.
    fn head_for(
        &self,
        heads: &Heads,
        kind: EntityKind,
    ) -> Option<(Head, &'static str, Option<u64>)> {
        match self.mode().as_str() {
            "local" => heads.local.get(&kind).map(|h| (h.clone(), "local", None)),
            "federated" => match heads.registry.get(&kind) {
                Some(r) => Some((r.head.clone(), "federated", Some(r.version))),
                None => heads.local.get(&kind).map(|h| (h.clone(), "local", None)),
            },
            _ => None,
        }
    }

    /// The head's score of a window, when a head is in force for its kind.
    pub fn score(&self, w: &Window) -> Option<HeadScore> {
        let kind: EntityKind = w.kind.parse().ok()?;
        let heads = self.heads.read().unwrap_or_else(PoisonError::into_inner);
        let (head, _, _) = self.head_for(&heads, kind)?;
        if !head.in_force(&self.config()) || head.inputs() != w.features.len() {
            return None;
        }
        Some(HeadScore {
            probability: head.probability(w.score, &w.features),
            logit: head.logit(w.score, &w.features),
        })
    }

    /// The head's score of a stored alert (one of this node's anomaly
    /// alerts whose window is kept).
    pub fn score_alert(&self, id: &str) -> Result<Option<HeadScore>, StorageError> {
        Ok(self.store.window(id)?.and_then(|w| self.score(&w)))
    }

    /// Each kind's head: where it is from, whether it is in force.
    pub fn state(&self) -> Vec<KindState> {
        let cfg = self.config();
        let heads = self.heads.read().unwrap_or_else(PoisonError::into_inner);
        EntityKind::ALL
            .into_iter()
            .map(|kind| {
                let local = heads.local.get(&kind);
                let used = self.head_for(&heads, kind);
                KindState {
                    entity: kind.as_str().to_owned(),
                    source: used.as_ref().map_or("none", |u| u.1).to_owned(),
                    version: used.as_ref().and_then(|u| u.2),
                    in_force: used.as_ref().is_some_and(|u| u.0.in_force(&cfg)),
                    attacks: used.as_ref().map_or(0, |u| u.0.attacks),
                    normals: used.as_ref().map_or(0, |u| u.0.normals),
                    local_attacks: local.map_or(0, |h| h.attacks),
                    local_normals: local.map_or(0, |h| h.normals),
                }
            })
            .collect()
    }

    /// This node's verdicts of `kind` (a copy; at most [`MAX_VERDICTS`]).
    pub fn verdicts_of(&self, kind: EntityKind) -> Result<Vec<Labelled>, StorageError> {
        let width = kind.features().len();
        Ok(self
            .store
            .verdicts()?
            .into_iter()
            .map(|(_, l)| l)
            .filter(|l| l.window.kind == kind.as_str() && l.window.features.len() == width)
            .collect())
    }

    /// Trains every kind's local head from the prior on the verdicts kept.
    pub fn train(&self) -> Result<(), StorageError> {
        let cfg = self.config();
        let mut local = BTreeMap::new();
        for kind in EntityKind::ALL {
            let labelled = self.verdicts_of(kind)?;
            if labelled.is_empty() {
                continue;
            }
            let verdicts: Vec<Verdict<'_>> = labelled.iter().map(as_verdict).collect();
            let prior = Head::prior(kind.features().len(), &cfg);
            match prior.train(&verdicts, &cfg) {
                Ok(head) => {
                    tracing::info!(
                        entity = kind.as_str(),
                        attacks = head.attacks,
                        normals = head.normals,
                        in_force = head.in_force(&cfg),
                        "head trained on this node's verdicts"
                    );
                    local.insert(kind, head);
                }
                Err(e) => tracing::warn!(entity = kind.as_str(), error = %e, "head not trained"),
            }
        }
        self.heads
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .local = local;
        Ok(())
    }

    /// Puts the registry's head of `kind` in use (for `learning.head =
    /// "federated"`).
    pub fn set_registered(&self, kind: EntityKind, registered: Registered) {
        self.heads
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .registry
            .insert(kind, registered);
    }

    /// The registry head of `kind` in use, if any.
    pub fn registered(&self, kind: EntityKind) -> Option<Registered> {
        let heads = self.heads.read().unwrap_or_else(PoisonError::into_inner);
        heads.registry.get(&kind).cloned()
    }

    /// Records the verdicts of closed cases on alerts whose window is kept
    /// here, and takes back those of reopened cases. True when any changed.
    pub fn record(&self, cases: &[Case]) -> Result<bool, StorageError> {
        let kept: HashMap<String, Labelled> = self.store.verdicts()?.into_iter().collect();
        let mut changed = false;
        for case in cases {
            let judged = kept.get(&case.alert);
            match case.status {
                Status::FalsePositive | Status::Resolved => {
                    let attack = case.status == Status::Resolved;
                    let at_ms = case.status_set.as_ref().map_or(0, |s| s.at_ms);
                    if judged.is_some_and(|l| l.attack == attack && l.at_ms == at_ms) {
                        continue;
                    }
                    changed |= self.store.put_verdict(&case.alert, attack, at_ms)?;
                }
                Status::New | Status::Acknowledged => {
                    if judged.is_some() && case.status_set.is_some() {
                        self.store.remove_verdict(&case.alert)?;
                        changed = true;
                    }
                }
            }
        }
        Ok(changed)
    }

    /// Up to `k` unjudged alerts to ask an analyst about, in the order to
    /// ask: per kind by [`choose`], the kinds taken in turn.
    pub fn review(
        &self,
        k: usize,
        closed: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<Review>, StorageError> {
        let windows: Vec<(String, Window)> = self
            .store
            .windows(REVIEW_POOL)?
            .into_iter()
            .filter(|(id, _)| !closed(id))
            .collect();
        let mut per_kind: Vec<Vec<Review>> = Vec::new();
        for kind in EntityKind::ALL {
            let of_kind: Vec<(&String, &Window, Option<HeadScore>)> = windows
                .iter()
                .filter(|(_, w)| w.kind == kind.as_str())
                .map(|(id, w)| (id, w, self.score(w)))
                .collect();
            let candidates: Vec<Candidate<'_>> = of_kind
                .iter()
                .enumerate()
                .map(|(i, (_, w, s))| Candidate {
                    id: i,
                    score: w.score,
                    probability: s.map(|s| s.probability),
                    features: &w.features,
                })
                .collect();
            let picked = choose(&candidates, k);
            per_kind.push(
                picked
                    .into_iter()
                    .map(|i| {
                        let (id, w, s) = &of_kind[i];
                        Review {
                            alert: (*id).clone(),
                            entity: w.kind.clone(),
                            time_ns: w.time_ns,
                            score: w.score,
                            probability: s.map(|s| s.probability),
                        }
                    })
                    .collect(),
            );
        }
        let mut out = Vec::new();
        let longest = per_kind.iter().map(Vec::len).max().unwrap_or(0);
        for i in 0..longest {
            out.extend(per_kind.iter().filter_map(|p| p.get(i).cloned()));
        }
        out.truncate(k);
        Ok(out)
    }

    /// Follows the workspace's cases: records verdicts and retrains the
    /// local heads when they change; trims the windows with retention.
    pub async fn follow(
        self: Arc<Self>,
        workspace: Arc<Workspace>,
        retention: std::time::Duration,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut changes = workspace.case_changes();
        // The cases as they are at start count as a change.
        changes.mark_changed();
        let mut trim = tokio::time::interval(TRIM_EVERY);
        let mut first = true;
        loop {
            let cases = tokio::select! {
                r = changes.changed() => {
                    if r.is_err() {
                        return;
                    }
                    Some(workspace.case_list())
                }
                _ = trim.tick() => None,
                _ = shutdown.wait_for(|stop| *stop) => return,
            };
            let me = self.clone();
            let force = first && cases.is_some();
            first &= cases.is_none();
            let keep_ns = u64::try_from(retention.as_nanos()).unwrap_or(u64::MAX);
            let result = tokio::task::spawn_blocking(move || match cases {
                Some(cases) => {
                    if me.record(&cases)? || force {
                        me.train()?;
                    }
                    Ok(())
                }
                None => {
                    let before = amoskys_sensors::now_ns().saturating_sub(keep_ns);
                    let n = me.store.trim_windows(before, MAX_WINDOWS, MAX_VERDICTS)?;
                    if n > 0 {
                        tracing::debug!(deleted = n, "alert windows trimmed");
                    }
                    Ok::<(), StorageError>(())
                }
            })
            .await;
            match result {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "verdicts not recorded"),
                Err(e) => tracing::warn!(error = %e, "verdict task failed"),
            }
        }
    }
}

/// How often unjudged windows are trimmed.
const TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

fn as_verdict(l: &Labelled) -> Verdict<'_> {
    Verdict {
        score: l.window.score,
        features: &l.window.features,
        attack: l.attack,
    }
}

#[cfg(test)]
mod tests;
