//! Drift of the node's anomaly models: each kind's live window scores
//! against the model's training scores ([`amoskys_learning::drift`]), on a
//! sliding window of the last `learning.drift_windows` windows. When the
//! statistic reaches `learning.drift_threshold` a drift episode starts: one
//! `model_drift` finding (low severity, through the same signed-alert path
//! as the others) and, as `learning.drift_action` says, a local retraining
//! run or a federated round ([`act`]). A new model of the kind starts the
//! window again.
//!
//! The board lives in the [`ModelSet`](crate::models::ModelSet): the writer
//! thread records scores and checks, the API shows the state.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use amoskys_learning::drift::{BINS, Check, Reference, Tracker};
use amoskys_learning::features::EntityKind;
use amoskys_learning::{Category, Finding, Severity, Subject};
use serde::Serialize;
use tokio::sync::{mpsc, watch};

use crate::federation::{Federation, RoundSettings};
use crate::models::{Loaded, Trainer, TriggerError};
use crate::policy::{InForce, LearningPolicy};

/// Drift actions waiting for the node to carry them out; beyond it one is
/// dropped with a warning (an episode starts at most once per kind).
pub const ACTIONS_QUEUE: usize = 16;

/// What a drift episode does besides its alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Alert,
    Retrain,
    FederatedRound,
}

impl Action {
    /// From a validated `learning.drift_action`.
    fn parse(s: &str) -> Action {
        match s {
            "alert" => Action::Alert,
            "federated_round" => Action::FederatedRound,
            _ => Action::Retrain,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Action::Alert => "alert",
            Action::Retrain => "retrain",
            Action::FederatedRound => "federated_round",
        }
    }
}

/// The drift keys of the policy in force.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftSettings {
    pub threshold: f64,
    pub min_windows: usize,
    pub windows: usize,
    pub action: Action,
}

impl DriftSettings {
    pub fn from_policy(l: &LearningPolicy) -> DriftSettings {
        DriftSettings {
            threshold: l.drift_threshold,
            min_windows: l.drift_min_windows,
            windows: l.drift_windows.max(l.drift_min_windows),
            action: Action::parse(&l.drift_action),
        }
    }
}

impl Default for DriftSettings {
    fn default() -> Self {
        DriftSettings::from_policy(&LearningPolicy::default())
    }
}

/// A drift action for the node to carry out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub kind: EntityKind,
    pub action: Action,
}

/// One drift episode of a kind.
#[derive(Debug, Clone, Serialize)]
pub struct Episode {
    /// End of the live window that started it (event time, ns).
    pub since_ns: u64,
    /// PSI when it started.
    pub statistic: f64,
    pub windows: usize,
    pub threshold: f64,
    pub model_sha256: String,
    pub action: Action,
    /// When it ended, and why (the statistic fell back, or the model was
    /// replaced); none while it runs.
    pub ended_ns: Option<u64>,
    pub ended_by: Option<String>,
}

/// Drift of one kind, as `GET /api/v1/models` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct KindStatus {
    pub entity: String,
    /// The model the live scores are compared with.
    pub model_sha256: String,
    /// PSI at the last check; none until `min_windows` live windows.
    pub statistic: Option<f64>,
    /// Live windows in the sliding window.
    pub windows: usize,
    pub min_windows: usize,
    pub threshold: f64,
    pub drifting: bool,
    /// Start of the running episode.
    pub since_ns: Option<u64>,
    /// Episodes since the node started.
    pub episodes: u64,
    /// The running or last episode (kept when the model is replaced).
    pub last_episode: Option<Episode>,
}

#[derive(Debug)]
struct KindDrift {
    sha256: String,
    tracker: Tracker,
    /// Latest live window end seen (event time).
    end_ns: u64,
    episodes: u64,
    last: Option<Episode>,
}

impl KindDrift {
    fn new(loaded: &Loaded, capacity: usize, end_ns: u64) -> KindDrift {
        KindDrift {
            sha256: loaded.info.sha256.clone(),
            tracker: Tracker::new(reference(loaded), capacity),
            end_ns,
            episodes: 0,
            last: None,
        }
    }

    /// Compares with `loaded` from now on; the episode count and the last
    /// episode stay (ended, if it ran).
    fn replace(&mut self, loaded: &Loaded, capacity: usize, at_ns: u64) {
        let mut next = KindDrift::new(loaded, capacity, at_ns.max(self.end_ns));
        next.episodes = self.episodes;
        next.last = self.last.take().map(|mut e| {
            if e.ended_ns.is_none() {
                e.ended_ns = Some(at_ns);
                e.ended_by = Some(format!("model replaced by {}", short(&next.sha256)));
            }
            e
        });
        *self = next;
    }
}

/// Every kind's drift state, the settings in force and where actions go.
#[derive(Debug, Default)]
pub struct DriftBoard {
    kinds: Mutex<HashMap<EntityKind, KindDrift>>,
    settings: Mutex<DriftSettings>,
    actions: Mutex<Option<mpsc::Sender<Request>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl DriftBoard {
    /// Where drift actions are sent (the node's [`act`] task).
    pub fn send_actions_to(&self, tx: mpsc::Sender<Request>) {
        *lock(&self.actions) = Some(tx);
    }

    /// Takes the policy's drift keys; a new window size applies at once.
    pub fn configure(&self, settings: DriftSettings) {
        let mut current = lock(&self.settings);
        if *current == settings {
            return;
        }
        for k in lock(&self.kinds).values_mut() {
            k.tracker.set_capacity(settings.windows);
        }
        *current = settings;
    }

    /// Adds live window scores of `kind`, scored by `loaded`; `end_ns` is
    /// the latest window's end. Another model than the one tracked starts
    /// the window again.
    pub fn record(&self, kind: EntityKind, loaded: &Loaded, scores: &[f64], end_ns: u64) {
        let capacity = lock(&self.settings).windows;
        let mut kinds = lock(&self.kinds);
        let k = kinds
            .entry(kind)
            .or_insert_with(|| KindDrift::new(loaded, capacity, end_ns));
        if k.sha256 != loaded.info.sha256 {
            k.replace(loaded, capacity, end_ns);
        }
        k.end_ns = k.end_ns.max(end_ns);
        for s in scores {
            k.tracker.observe(*s);
        }
    }

    /// A new model of `kind` is in use (trained, or from the registry): its
    /// window starts empty and a running episode ends.
    pub fn replaced(&self, kind: EntityKind, loaded: &Loaded, at_ns: u64) {
        let capacity = lock(&self.settings).windows;
        if let Some(k) = lock(&self.kinds).get_mut(&kind)
            && k.sha256 != loaded.info.sha256
        {
            k.replace(loaded, capacity, at_ns);
        }
    }

    /// Checks every kind: a `model_drift` finding for each episode that
    /// starts now, its action sent to the node.
    pub fn check(&self) -> Vec<Finding> {
        let settings = lock(&self.settings).clone();
        let mut out = Vec::new();
        let mut kinds = lock(&self.kinds);
        for (kind, k) in kinds.iter_mut() {
            match k
                .tracker
                .check(settings.threshold, settings.min_windows, k.end_ns)
            {
                Check::Started { psi, windows } => {
                    k.episodes += 1;
                    k.last = Some(Episode {
                        since_ns: k.end_ns,
                        statistic: psi,
                        windows,
                        threshold: settings.threshold,
                        model_sha256: k.sha256.clone(),
                        action: settings.action,
                        ended_ns: None,
                        ended_by: None,
                    });
                    tracing::info!(
                        entity = kind.as_str(),
                        psi,
                        windows,
                        threshold = settings.threshold,
                        action = settings.action.as_str(),
                        "anomaly model drift"
                    );
                    out.push(finding(*kind, k, psi, windows, &settings));
                    if settings.action != Action::Alert {
                        self.send(Request {
                            kind: *kind,
                            action: settings.action,
                        });
                    }
                }
                Check::Ended { psi, .. } => {
                    if let Some(e) = k.last.as_mut() {
                        e.ended_ns = Some(k.end_ns);
                        e.ended_by = Some(format!("statistic {psi:.3} fell back"));
                    }
                }
                Check::Warming { .. } | Check::Steady { .. } => {}
            }
        }
        out
    }

    fn send(&self, req: Request) {
        let Some(tx) = lock(&self.actions).clone() else {
            return;
        };
        if let Err(e) = tx.try_send(req) {
            tracing::warn!(entity = req.kind.as_str(), error = %e, "drift action dropped");
        }
    }

    /// Every tracked kind, by entity name.
    pub fn status(&self) -> Vec<KindStatus> {
        let settings = lock(&self.settings).clone();
        let kinds = lock(&self.kinds);
        let mut out: Vec<KindStatus> = kinds
            .iter()
            .map(|(kind, k)| KindStatus {
                entity: kind.as_str().to_owned(),
                model_sha256: k.sha256.clone(),
                statistic: k.tracker.last(),
                windows: k.tracker.windows(),
                min_windows: settings.min_windows,
                threshold: settings.threshold,
                drifting: k.tracker.since_ns().is_some(),
                since_ns: k.tracker.since_ns(),
                episodes: k.episodes,
                last_episode: k.last.clone(),
            })
            .collect();
        out.sort_by(|a, b| a.entity.cmp(&b.entity));
        out
    }
}

/// The training side of a model: edges at its training-score deciles, the
/// shares from its 1,001 calibration quantiles.
fn reference(loaded: &Loaded) -> Reference {
    let m = &loaded.model;
    Reference::new(
        (1..BINS).map(|i| m.threshold_at(i as f64 / BINS as f64)),
        |x| m.baseline_rank(x),
    )
}

fn short(sha: &str) -> String {
    sha.chars().take(16).collect()
}

fn finding(
    kind: EntityKind,
    k: &KindDrift,
    psi: f64,
    windows: usize,
    s: &DriftSettings,
) -> Finding {
    Finding {
        time_ns: k.end_ns,
        rule: "model_drift".into(),
        category: Category::Anomaly,
        technique: String::new(),
        severity: Severity::Low,
        // 0.5 at the threshold, towards 1 beyond it.
        score: psi / (psi + s.threshold),
        subject: Subject::Model(kind.as_str().to_owned()),
        evidence: vec![
            ("statistic".into(), "psi".into()),
            ("psi".into(), format!("{psi:.3}")),
            ("threshold".into(), format!("{}", s.threshold)),
            ("windows".into(), windows.to_string()),
            ("model_sha256".into(), short(&k.sha256)),
            ("action".into(), s.action.as_str().into()),
        ],
    }
}

/// Carries out drift actions until shutdown: `retrain` queues a local
/// training run, `federated_round` proposes a round of the kind over every
/// member with the policy's round settings.
pub async fn act(
    mut rx: mpsc::Receiver<Request>,
    trainer: Option<Arc<Mutex<Trainer>>>,
    federation: Arc<Federation>,
    policy: watch::Receiver<Arc<InForce>>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let req = tokio::select! {
            r = rx.recv() => match r {
                Some(r) => r,
                None => return,
            },
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let entity = req.kind.as_str();
        match req.action {
            Action::Alert => {}
            Action::Retrain => {
                let result = match &trainer {
                    Some(t) => lock(t).trigger(),
                    None => Err(TriggerError::Stopped),
                };
                match result {
                    Ok(()) | Err(TriggerError::AlreadyQueued) => {
                        tracing::info!(entity, "retraining after drift")
                    }
                    Err(e) => tracing::warn!(entity, error = %e, "no retraining after drift"),
                }
            }
            Action::FederatedRound => {
                let l = policy.borrow().policy.learning.clone();
                let settings = RoundSettings {
                    rule: l.federated_rule,
                    epochs: l.federated_epochs,
                    min_participants: l.federated_min_participants,
                    dp: l.federated_dp,
                };
                let deadline = Duration::from_secs(l.federated_deadline_secs);
                match federation.start_round(req.kind, settings, deadline).await {
                    Ok(id) => tracing::info!(entity, round = id, "federated round after drift"),
                    Err(e) => {
                        tracing::warn!(entity, error = %e, "no federated round after drift")
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use amoskys_learning::anomaly::{AnomalyModel, ModelKind, TrainConfig};

    use super::*;
    use crate::models::info_for;

    /// A tails model of two features trained on a grid of ordinary rows.
    fn loaded(seed: u64) -> Loaded {
        let rows: Vec<Vec<f32>> = (0..400)
            .map(|i| vec![(i % 20) as f32 / 100.0, (i % 7) as f32 / 100.0])
            .collect();
        let rows: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
        let cfg = TrainConfig {
            kind: ModelKind::Tails,
            seed,
            ..TrainConfig::default()
        };
        let model = AnomalyModel::train("source@1", &rows, &cfg).expect("trains");
        let mut info = info_for(EntityKind::Source, &model, 0.0);
        info.sha256 = format!("{seed:064x}");
        Loaded { info, model }
    }

    fn scores(l: &Loaded, far: bool) -> Vec<f64> {
        let rows: Vec<Vec<f32>> = (0..50)
            .map(|i| {
                let v = if far { 0.9 } else { (i % 20) as f32 / 100.0 };
                vec![v, (i % 7) as f32 / 100.0]
            })
            .collect();
        let rows: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
        l.model.score(&rows)
    }

    #[test]
    fn one_finding_and_one_action_per_episode_and_a_new_model_ends_it() {
        for (action, sent) in [
            ("alert", None),
            ("retrain", Some(Action::Retrain)),
            ("federated_round", Some(Action::FederatedRound)),
        ] {
            let board = DriftBoard::default();
            let (tx, mut rx) = mpsc::channel(ACTIONS_QUEUE);
            board.send_actions_to(tx);
            board.configure(DriftSettings {
                min_windows: 100,
                windows: 200,
                ..DriftSettings::from_policy(&LearningPolicy {
                    drift_action: action.into(),
                    ..LearningPolicy::default()
                })
            });
            let model = loaded(1);
            // Ordinary windows: warming, then steady.
            for batch in 0..4u64 {
                board.record(EntityKind::Source, &model, &scores(&model, false), batch);
                assert!(board.check().is_empty(), "{action}");
            }
            // Far-out windows: one finding, one action, however long.
            let mut found = Vec::new();
            for batch in 4..12u64 {
                board.record(EntityKind::Source, &model, &scores(&model, true), batch);
                found.extend(board.check());
            }
            assert_eq!(found.len(), 1, "{action}: {found:?}");
            let f = &found[0];
            assert_eq!(
                (f.rule.as_str(), f.severity),
                ("model_drift", Severity::Low)
            );
            assert_eq!(f.subject, Subject::Model("source".into()));
            assert!(f.score > 0.5, "{f:?}");
            assert_eq!(rx.try_recv().ok().map(|r| r.action), sent, "{action}");
            assert!(rx.try_recv().is_err(), "{action}: one action");
            let status = board.status();
            assert!(status[0].drifting && status[0].episodes == 1, "{status:?}");
            // A new model ends the episode and empties the window.
            board.replaced(EntityKind::Source, &loaded(2), 99);
            let status = board.status();
            let last = status[0].last_episode.as_ref().expect("episode");
            assert!(!status[0].drifting && status[0].windows == 0, "{status:?}");
            assert_eq!(last.ended_ns, Some(99));
            assert!(
                last.ended_by
                    .as_deref()
                    .is_some_and(|e| e.starts_with("model replaced"))
            );
        }
    }
}
