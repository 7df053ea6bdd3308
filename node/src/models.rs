//! Local anomaly models in the node: one per entity kind, trained on the
//! node's own stored events, saved in the `models` column family with their
//! SHA-256 and feature schema, and shared with the detector.
//!
//! Training runs on its own thread ([`Trainer`]), never on the async
//! runtime: at start when a model is missing, on the `learning.retrain_hours`
//! schedule, and when asked through the API. It replays the baseline period
//! of stored events through a [`FeatureExtractor`], so the windows it trains
//! on are computed exactly as the live ones are; windows of attacks and of
//! flagged subjects are left out ([`crate::baseline`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use amoskys_learning::RulePolicy;
use amoskys_learning::anomaly::{AnomalyModel, ModelKind, TrainConfig};
use amoskys_learning::features::{EntityKind, FeatureExtractor};
use amoskys_sensors::now_ns;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::baseline::BaselineFilter;
use crate::storage::{StorageError, Store};

/// Entities of one kind tracked per window while replaying the baseline.
const MAX_ENTITIES: usize = 10_000;

/// What the node records about a stored model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Entity kind: source, host, process or device.
    pub entity: String,
    /// Feature schema of its inputs, e.g. `source@1`.
    pub schema: String,
    pub feature_schema_version: u32,
    /// auto, tails, forest, autoencoder or combined.
    pub model: String,
    /// What scores the windows, e.g. what `auto` chose: `tails (top 5)`,
    /// `isolation forest`; empty in records written before it was kept.
    #[serde(default)]
    pub detector: String,
    /// SHA-256 of the stored model bytes, hex.
    pub sha256: String,
    pub size_bytes: usize,
    pub trained_at_ns: u64,
    pub baseline_from_ns: u64,
    pub baseline_until_ns: u64,
    pub train_rows: u64,
    pub train_seconds: f64,
    pub parameters: usize,
    /// Threshold at the training quantile (the policy may move it).
    pub threshold: f64,
}

/// A model ready to score, with its record.
#[derive(Debug)]
pub struct Loaded {
    pub info: ModelInfo,
    pub model: AnomalyModel,
}

/// The current model of each entity kind; the trainer replaces them whole.
#[derive(Debug, Default)]
pub struct ModelSet {
    models: RwLock<HashMap<EntityKind, Arc<Loaded>>>,
    /// Kinds whose model comes from the cluster's registry; local training
    /// leaves them alone.
    pinned: RwLock<std::collections::HashSet<EntityKind>>,
    /// How far each model's live scores drifted from its training scores.
    drift: crate::drift::DriftBoard,
}

impl ModelSet {
    /// Loads every stored model that verifies. One that does not (bytes
    /// changed, another feature schema) is left stored, reported, and not
    /// used; training replaces it.
    pub fn load(store: &Store) -> Result<ModelSet, StorageError> {
        let set = ModelSet::default();
        for stored in store.models()? {
            let name = stored.name;
            match verify(&name, &stored.info, &stored.model) {
                Ok((kind, loaded)) => {
                    tracing::info!(
                        entity = %name,
                        sha256 = %loaded.info.sha256,
                        rows = loaded.info.train_rows,
                        "anomaly model loaded"
                    );
                    set.put(kind, loaded);
                }
                Err(e) => {
                    tracing::warn!(entity = %name, error = %e, "stored anomaly model not used")
                }
            }
        }
        Ok(set)
    }

    /// Marks `kind` as served by the registry.
    pub fn pin(&self, kind: EntityKind) {
        if let Ok(mut p) = self.pinned.write() {
            p.insert(kind);
        }
    }

    pub fn is_pinned(&self, kind: EntityKind) -> bool {
        self.pinned.read().is_ok_and(|p| p.contains(&kind))
    }

    pub fn drift(&self) -> &crate::drift::DriftBoard {
        &self.drift
    }

    pub fn get(&self, kind: EntityKind) -> Option<Arc<Loaded>> {
        self.models.read().ok()?.get(&kind).cloned()
    }

    /// Records of every model in use, by entity kind.
    pub fn infos(&self) -> Vec<ModelInfo> {
        let Ok(m) = self.models.read() else {
            return Vec::new();
        };
        let mut out: Vec<ModelInfo> = m.values().map(|l| l.info.clone()).collect();
        out.sort_by(|a, b| a.entity.cmp(&b.entity));
        out
    }

    fn put(&self, kind: EntityKind, loaded: Loaded) {
        self.drift.replaced(kind, &loaded, now_ns());
        if let Ok(mut m) = self.models.write() {
            m.insert(kind, Arc::new(loaded));
        }
    }

    /// Stores a trained model and puts it in use.
    pub fn install(
        &self,
        store: &Store,
        kind: EntityKind,
        model: AnomalyModel,
        mut info: ModelInfo,
    ) -> Result<ModelInfo, StorageError> {
        let bytes = model.to_bytes();
        info.sha256 = hex::encode(Sha256::digest(&bytes));
        info.size_bytes = bytes.len();
        let record = serde_json::to_vec(&info).unwrap_or_default();
        store.put_model(kind.as_str(), &record, &bytes)?;
        self.put(
            kind,
            Loaded {
                info: info.clone(),
                model,
            },
        );
        Ok(info)
    }
}

/// Checks a stored model against its record and this build's schema.
fn verify(name: &str, info: &[u8], bytes: &[u8]) -> Result<(EntityKind, Loaded), String> {
    let kind: EntityKind = name.parse()?;
    let info: ModelInfo =
        serde_json::from_slice(info).map_err(|e| format!("unreadable record: {e}"))?;
    let sha = hex::encode(Sha256::digest(bytes));
    if sha != info.sha256 {
        return Err(format!(
            "SHA-256 {sha} does not match the recorded {}",
            info.sha256
        ));
    }
    if info.schema != kind.schema() {
        return Err(format!(
            "trained on feature schema {}, this build computes {}; it will be retrained",
            info.schema,
            kind.schema()
        ));
    }
    let model = AnomalyModel::from_bytes(bytes).map_err(|e| e.to_string())?;
    if model.schema() != info.schema || model.inputs() != kind.features().len() {
        return Err("model does not match its record".into());
    }
    Ok((kind, Loaded { info, model }))
}

/// How and when the node trains.
#[derive(Debug, Clone)]
pub struct LearningSettings {
    pub window_ns: u64,
    pub baseline_ns: u64,
    pub retrain: Option<Duration>,
    pub min_windows: usize,
    pub max_windows: usize,
    pub train: TrainConfig,
    /// The rules replayed over the baseline to leave attacks out of it
    /// ([`BaselineFilter`]); none keeps every window.
    pub rules: Option<RulePolicy>,
    /// Members' source windows are left out of the baseline
    /// ([`crate::members`]).
    pub member_addresses: crate::members::MemberAddresses,
}

/// What one training run did for one entity kind.
#[derive(Debug, Clone, Serialize)]
pub struct KindOutcome {
    pub entity: String,
    pub windows: u64,
    /// Windows left out of the baseline: during attacks, or on a subject
    /// a rule flagged.
    pub left_out: u64,
    /// The new model, when one was trained.
    pub model: Option<ModelInfo>,
    /// Why none was, otherwise.
    pub skipped: Option<String>,
}

/// One training run.
#[derive(Debug, Clone, Serialize)]
pub struct TrainRun {
    pub started_at_ns: u64,
    pub seconds: f64,
    pub events: u64,
    pub undecodable_events: u64,
    pub kinds: Vec<KindOutcome>,
    pub error: Option<String>,
}

/// Baseline windows of one kind: all of them up to `max`, then a seeded
/// uniform sample (reservoir) of that size.
struct Sample {
    rows: Vec<Vec<f32>>,
    seen: u64,
    left_out: u64,
    state: u64,
}

impl Sample {
    fn add(&mut self, row: Vec<f32>, max: usize) {
        self.seen += 1;
        if self.rows.len() < max {
            self.rows.push(row);
            return;
        }
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        let j = self.state % self.seen;
        if let Some(slot) = self.rows.get_mut(j as usize) {
            *slot = row;
        }
    }
}

/// Replays stored events between the two times into feature windows, a
/// seeded uniform sample of at most `max_windows` per entity kind. Returns
/// the samples, the events read, and the undecodable events (or the
/// storage error).
fn replay(
    store: &Store,
    settings: &LearningSettings,
    from_ns: u64,
    until_ns: u64,
    stop: &AtomicBool,
) -> (HashMap<EntityKind, Sample>, u64, Result<u64, StorageError>) {
    let mut fx = FeatureExtractor::new(settings.window_ns, MAX_ENTITIES);
    let mut samples: HashMap<EntityKind, Sample> = HashMap::new();
    let max = settings.max_windows;
    let seed = settings.train.seed.max(1);
    let mut filter = settings
        .rules
        .clone()
        .map(|p| BaselineFilter::new(p, settings.window_ns));
    let mut events = 0;
    let scanned = store.scan_events(from_ns, until_ns, |event| {
        events += 1;
        if let Some(f) = filter.as_mut() {
            f.observe(event);
        }
        for w in fx.push(event) {
            let sample = samples.entry(w.kind).or_insert_with(|| Sample {
                rows: Vec::new(),
                seen: 0,
                left_out: 0,
                state: seed,
            });
            if filter.as_mut().is_some_and(|f| !f.keeps(&w)) || settings.member_addresses.covers(&w)
            {
                sample.left_out += 1;
                continue;
            }
            sample.add(w.values, max);
        }
        !stop.load(Ordering::Relaxed)
    });
    // The last window is cut by `until_ns`; it is left out.
    (samples, events, scanned)
}

/// The baseline windows of one entity kind ending now: what a federated
/// round trains on locally.
pub fn baseline_rows(
    store: &Store,
    settings: &LearningSettings,
    kind: EntityKind,
) -> Result<Vec<Vec<f32>>, StorageError> {
    let until = now_ns();
    let stop = AtomicBool::new(false);
    let (mut samples, _, scanned) = replay(
        store,
        settings,
        until.saturating_sub(settings.baseline_ns),
        until,
        &stop,
    );
    scanned?;
    Ok(samples.remove(&kind).map(|s| s.rows).unwrap_or_default())
}

/// The record of a model of `kind`.
pub fn info_for(kind: EntityKind, model: &AnomalyModel, train_seconds: f64) -> ModelInfo {
    ModelInfo {
        entity: kind.as_str().to_owned(),
        schema: kind.schema(),
        feature_schema_version: kind.version(),
        model: format!("{:?}", model.config().kind).to_lowercase(),
        detector: match model.config().kind {
            ModelKind::Autoencoder | ModelKind::Combined => String::new(),
            _ => model.detector().to_string(),
        },
        sha256: String::new(),
        size_bytes: 0,
        trained_at_ns: now_ns(),
        baseline_from_ns: 0,
        baseline_until_ns: 0,
        train_rows: model.train_rows(),
        train_seconds,
        parameters: model.parameters(),
        threshold: model.threshold(),
    }
}

/// Replays the baseline ending at `until_ns` and trains a model for every
/// entity kind with enough windows. `stop` ends the replay early.
pub fn train_all(
    store: &Store,
    set: &ModelSet,
    settings: &LearningSettings,
    until_ns: u64,
    stop: &AtomicBool,
) -> TrainRun {
    let started = Instant::now();
    let from_ns = until_ns.saturating_sub(settings.baseline_ns);
    let mut run = TrainRun {
        started_at_ns: now_ns(),
        seconds: 0.0,
        events: 0,
        undecodable_events: 0,
        kinds: Vec::new(),
        error: None,
    };
    let (mut samples, events, scanned) = replay(store, settings, from_ns, until_ns, stop);
    run.events = events;
    match scanned {
        Ok(bad) => run.undecodable_events = bad,
        Err(e) => {
            run.error = Some(e.to_string());
            run.seconds = started.elapsed().as_secs_f64();
            return run;
        }
    }
    for kind in EntityKind::ALL {
        if stop.load(Ordering::Relaxed) {
            run.error = Some("stopped".into());
            break;
        }
        let sample = samples.remove(&kind);
        let windows = sample.as_ref().map_or(0, |s| s.seen);
        let left_out = sample.as_ref().map_or(0, |s| s.left_out);
        let mut outcome = KindOutcome {
            entity: kind.as_str().to_owned(),
            windows,
            left_out,
            model: None,
            skipped: None,
        };
        if set.is_pinned(kind) {
            outcome.skipped = Some("the cluster's registry model is in use".into());
            run.kinds.push(outcome);
            continue;
        }
        match sample {
            Some(s) if s.rows.len() >= settings.min_windows => {
                let rows: Vec<&[f32]> = s.rows.iter().map(Vec::as_slice).collect();
                let t = Instant::now();
                match AnomalyModel::train(&kind.schema(), &rows, &settings.train) {
                    Ok(model) => {
                        let info = ModelInfo {
                            baseline_from_ns: from_ns,
                            baseline_until_ns: until_ns,
                            ..info_for(kind, &model, t.elapsed().as_secs_f64())
                        };
                        match set.install(store, kind, model, info) {
                            Ok(info) => {
                                tracing::info!(
                                    entity = kind.as_str(),
                                    rows = info.train_rows,
                                    sha256 = %info.sha256,
                                    seconds = info.train_seconds,
                                    "anomaly model trained"
                                );
                                outcome.model = Some(info);
                            }
                            Err(e) => outcome.skipped = Some(format!("cannot store: {e}")),
                        }
                    }
                    Err(e) => outcome.skipped = Some(e.to_string()),
                }
            }
            _ => {
                outcome.skipped = Some(format!(
                    "{windows} baseline windows, need {} ({left_out} more left out: attacks, flagged subjects)",
                    settings.min_windows
                ))
            }
        }
        run.kinds.push(outcome);
    }
    run.seconds = started.elapsed().as_secs_f64();
    run
}

/// What the trainer is doing and did last.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TrainerStatus {
    pub running: bool,
    pub queued: bool,
    pub runs: u64,
    pub last: Option<TrainRun>,
}

/// Why a training request was not queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TriggerError {
    #[error("a training run is already queued")]
    AlreadyQueued,
    #[error("the trainer has stopped")]
    Stopped,
}

/// The training thread.
#[derive(Debug)]
pub struct Trainer {
    tx: Option<SyncSender<()>>,
    /// Seconds between scheduled runs; 0 is never. The policy changes it
    /// live.
    retrain_secs: Arc<AtomicU64>,
    status: Arc<Mutex<TrainerStatus>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Trainer {
    /// Starts the thread. It trains at once when a kind has no model yet,
    /// then on the schedule and on request.
    pub fn spawn(
        store: Arc<Store>,
        set: Arc<ModelSet>,
        settings: LearningSettings,
    ) -> std::io::Result<Trainer> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let status = Arc::new(Mutex::new(TrainerStatus::default()));
        let stop = Arc::new(AtomicBool::new(false));
        if set.infos().len() < EntityKind::ALL.len() {
            let _ = tx.try_send(());
        }
        let retrain_secs = Arc::new(AtomicU64::new(
            settings.retrain.map_or(0, |d| d.as_secs().max(1)),
        ));
        let handle = {
            let status = status.clone();
            let stop = stop.clone();
            let every = retrain_secs.clone();
            std::thread::Builder::new()
                .name("amoskys-train".into())
                .spawn(move || train_loop(&store, &set, &settings, &rx, &status, &stop, &every))?
        };
        Ok(Trainer {
            tx: Some(tx),
            retrain_secs,
            status,
            stop,
            handle: Some(handle),
        })
    }

    /// Queues a run (at most one waits behind the one in progress).
    pub fn trigger(&self) -> Result<(), TriggerError> {
        let tx = self.tx.as_ref().ok_or(TriggerError::Stopped)?;
        match tx.try_send(()) {
            Ok(()) => {
                if let Ok(mut s) = self.status.lock() {
                    s.queued = true;
                }
                Ok(())
            }
            Err(TrySendError::Full(())) => Err(TriggerError::AlreadyQueued),
            Err(TrySendError::Disconnected(())) => Err(TriggerError::Stopped),
        }
    }

    /// Changes the schedule (`None`: only on request); takes effect
    /// within a minute.
    pub fn set_retrain(&self, every: Option<Duration>) {
        self.retrain_secs
            .store(every.map_or(0, |d| d.as_secs().max(1)), Ordering::Relaxed);
    }

    pub fn status(&self) -> TrainerStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Stops the thread, ending a run in progress early, and waits for it.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.tx = None;
        if let Some(h) = self.handle.take()
            && h.join().is_err()
        {
            tracing::error!("the training thread panicked");
        }
    }
}

impl Drop for Trainer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn train_loop(
    store: &Store,
    set: &ModelSet,
    settings: &LearningSettings,
    rx: &Receiver<()>,
    status: &Mutex<TrainerStatus>,
    stop: &AtomicBool,
    every: &AtomicU64,
) {
    // The schedule is read again at least once a minute, so a policy
    // change applies without a restart.
    const LOOK_AGAIN: Duration = Duration::from_secs(60);
    let mut last_run = std::time::Instant::now();
    loop {
        let secs = every.load(Ordering::Relaxed);
        let wait = if secs == 0 {
            LOOK_AGAIN
        } else {
            Duration::from_secs(secs)
                .saturating_sub(last_run.elapsed())
                .min(LOOK_AGAIN)
        };
        match rx.recv_timeout(wait) {
            Ok(()) => {}
            Err(RecvTimeoutError::Timeout) => {
                let secs = every.load(Ordering::Relaxed);
                if secs == 0 || last_run.elapsed() < Duration::from_secs(secs) {
                    continue;
                }
            }
            Err(RecvTimeoutError::Disconnected) => return,
        }
        last_run = std::time::Instant::now();
        if stop.load(Ordering::Relaxed) {
            return;
        }
        if let Ok(mut s) = status.lock() {
            s.running = true;
            s.queued = false;
        }
        let run = train_all(store, set, settings, now_ns(), stop);
        if let Some(e) = &run.error {
            tracing::warn!(error = %e, "training run ended early");
        }
        if let Ok(mut s) = status.lock() {
            s.running = false;
            s.runs += 1;
            s.last = Some(run);
        }
    }
}
