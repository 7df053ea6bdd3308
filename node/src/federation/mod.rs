//! Federated rounds and the model registry on a node.
//!
//! - A round is committed through Raft (`Command::StartRound`). Each
//!   participant replays its own baseline windows of the round's entity
//!   kind, trains the base version on them and sends only its update
//!   (signed with the node key) to the aggregator as a `model` mesh
//!   request.
//! - The aggregator collects updates until all are in or the deadline
//!   passes, combines them with the round's rule, keeps the result under its
//!   SHA-256, and commits the new version to the registry (active), or
//!   abandons the round below its minimum.
//! - Every node follows the registry's active version: it fetches the blob
//!   by hash (locally or with `blob` requests to its peers), checks hash,
//!   format and feature schema, and puts the model in use.
//! - Rounds of the supervised head (kind `head:<entity>`): `head.rs`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use amoskys_consensus::{
    Cluster, ClusterError, Command, NewModel, NewRound, NodeId, Outcome, RoundRecord, RoundStatus,
};
use amoskys_learning::anomaly::AnomalyModel;
use amoskys_learning::features::EntityKind;
use amoskys_learning::federated::round::{Collector, Refused};
use amoskys_learning::federated::{
    Accountant, DpConfig, NoiseSource, Rule, SiteDp, SiteUpdate, combine, local_update,
};
use amoskys_mesh::{MeshHandle, Service};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::models::{LearningSettings, ModelSet, baseline_rows};
use crate::policy::InForce;

mod close;
mod head;
mod registry;
mod site;
mod stats;
use crate::storage::Store;
pub use head::head_kind;
pub use site::{Rewrite, SiteBehaviour};
pub use stats::{FederationStats, RoundEnd};
use tokio::sync::watch;
use tracing::Instrument;

/// How often the aggregator checks whether a round can close.
const CLOSE_CHECK: Duration = Duration::from_millis(200);
/// How often the leader looks whether a scheduled round is due.
const SCHEDULE_CHECK: Duration = Duration::from_secs(30);

/// Whether a round of `kind` is due: none open, and the last one started
/// at least `every_ns` ago (or never).
fn due(rounds: &BTreeMap<u64, RoundRecord>, kind: &str, every_ns: u64, now_ns: u64) -> bool {
    let of_kind = rounds.values().filter(|r| r.round.kind == kind);
    let mut last = None;
    for r in of_kind {
        if r.status == RoundStatus::Open {
            return false;
        }
        last = last.max(Some(r.round.time_ns));
    }
    last.is_none_or(|t| now_ns.saturating_sub(t) >= every_ns)
}

/// The learning settings of a round (the JSON `spec` of its record).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoundSettings {
    pub rule: Rule,
    pub epochs: usize,
    pub min_participants: usize,
    #[serde(default)]
    pub dp: Option<DpConfig>,
}

/// What a federation is made of.
#[derive(Debug)]
pub struct Parts {
    pub me: NodeId,
    pub store: Arc<Store>,
    pub models: Arc<ModelSet>,
    pub cluster: Arc<Cluster>,
    pub mesh: Option<MeshHandle>,
    pub key: SigningKey,
    pub learning: LearningSettings,
    pub site: SiteBehaviour,
    /// The verdicts a head round trains on, and the heads in use.
    pub learner: Arc<crate::verdicts::Learner>,
}

/// The node's federation: rounds it takes part in or aggregates, and the
/// registry's active model.
#[derive(Debug)]
pub struct Federation {
    me: NodeId,
    store: Arc<Store>,
    models: Arc<ModelSet>,
    cluster: Arc<Cluster>,
    mesh: Option<MeshHandle>,
    key: SigningKey,
    learning: LearningSettings,
    site: SiteBehaviour,
    learner: Arc<crate::verdicts::Learner>,
    collecting: Mutex<HashMap<u64, Collector<SiteUpdate>>>,
    heads: Mutex<HashMap<u64, Collector<amoskys_learning::head::HeadUpdate>>>,
    handled: Mutex<HashSet<u64>>,
    stats: Arc<FederationStats>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn now_ns() -> u64 {
    amoskys_sensors::now_ns()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Federation {
    pub fn new(p: Parts) -> Arc<Federation> {
        Arc::new(Federation {
            me: p.me,
            store: p.store,
            models: p.models,
            cluster: p.cluster,
            mesh: p.mesh,
            key: p.key,
            learning: p.learning,
            site: p.site,
            learner: p.learner,
            collecting: Mutex::new(HashMap::new()),
            heads: Mutex::new(HashMap::new()),
            handled: Mutex::new(HashSet::new()),
            stats: Arc::default(),
        })
    }

    /// Rounds and update bytes, for the node's metrics.
    pub fn stats(&self) -> Arc<FederationStats> {
        self.stats.clone()
    }

    /// Proposes a round over every current member, aggregated by the
    /// leader (or this node without one).
    pub async fn start_round(
        &self,
        kind: EntityKind,
        settings: RoundSettings,
        deadline: Duration,
    ) -> Result<u64, ClusterError> {
        let (voters, learners) = self.cluster.members();
        let participants: Vec<NodeId> = voters.into_iter().chain(learners).collect();
        let aggregator = self
            .cluster
            .raft()
            .metrics()
            .borrow()
            .current_leader
            .unwrap_or(self.me);
        let applied = self.cluster.applied().borrow().clone();
        let base = applied
            .state
            .models
            .values()
            .rev()
            .find(|m| m.model.schema == kind.schema())
            .map(|m| m.version);
        let mut settings = settings;
        if let Rule::MultiKrum {
            byzantine,
            select: 0,
        } = settings.rule
        {
            let select = participants.len().saturating_sub(2 * byzantine).max(1);
            settings.rule = Rule::MultiKrum { byzantine, select };
        }
        let spec =
            serde_json::to_string(&settings).map_err(|e| ClusterError::Invalid(e.to_string()))?;
        let round = NewRound {
            kind: kind.as_str().to_owned(),
            base,
            participants,
            aggregator,
            deadline_ns: now_ns()
                .saturating_add(u64::try_from(deadline.as_nanos()).unwrap_or(u64::MAX)),
            spec,
            started_by: self.me,
            time_ns: now_ns(),
        };
        match self.cluster.propose(Command::StartRound(round)).await? {
            (_, Outcome::Round { id }) => Ok(id),
            (_, Outcome::Rejected(r)) => Err(ClusterError::Rejected(r)),
            (_, other) => Err(ClusterError::Raft(format!("unexpected outcome {other:?}"))),
        }
    }

    /// On the leader, starts the rounds the policy schedules: one per
    /// listed kind once its last round is `federated_every_minutes` old.
    pub async fn schedule(self: Arc<Self>, policy: watch::Receiver<Arc<InForce>>) {
        let mut tick = tokio::time::interval(SCHEDULE_CHECK);
        loop {
            tick.tick().await;
            let l = policy.borrow().policy.learning.clone();
            let leader = self.cluster.raft().metrics().borrow().current_leader;
            if l.federated_every_minutes == 0 || leader != Some(self.me) {
                continue;
            }
            let every_ns = l.federated_every_minutes.saturating_mul(60_000_000_000);
            let applied = self.cluster.applied().borrow().clone();
            for kind in l
                .federated_kinds
                .iter()
                .filter_map(|k| k.parse::<EntityKind>().ok())
            {
                if !due(&applied.state.rounds, kind.as_str(), every_ns, now_ns()) {
                    continue;
                }
                let settings = RoundSettings {
                    rule: l.federated_rule,
                    epochs: l.federated_epochs,
                    min_participants: l.federated_min_participants,
                    dp: l.federated_dp,
                };
                let deadline = Duration::from_secs(l.federated_deadline_secs);
                match self.start_round(kind, settings, deadline).await {
                    Ok(id) => tracing::info!(
                        round = id,
                        entity = kind.as_str(),
                        "scheduled federated round started"
                    ),
                    Err(e) => {
                        tracing::warn!(entity = kind.as_str(), error = %e, "scheduled round not started")
                    }
                }
            }
            self.schedule_heads(&l, &applied, every_ns).await;
        }
    }

    /// Follows the replicated state: joins new rounds, aggregates those
    /// this node leads, and keeps the registry's active model in use.
    pub async fn follow(self: Arc<Self>) {
        let mut applied = self.cluster.applied();
        let mut installed: Option<u64> = None;
        let mut heads_seen = Vec::new();
        loop {
            let now = applied.borrow_and_update().clone();
            for r in now.state.rounds.values() {
                if r.status == RoundStatus::Open && lock(&self.handled).insert(r.id) {
                    self.clone().begin(r.clone());
                }
            }
            let heads = head::newest_all(&now);
            if heads != heads_seen {
                heads_seen = heads;
                let (me, now) = (self.clone(), now.clone());
                tokio::spawn(async move { me.install_heads(&now).await });
            }
            if now.state.active_model != installed {
                installed = now.state.active_model;
                let me = self.clone();
                let now = now.clone();
                tokio::spawn(async move { me.install_active(&now).await });
            }
            if applied.changed().await.is_err() {
                return;
            }
        }
    }

    /// Starts this node's part in `round`, its tasks in a
    /// `federated_round` span.
    fn begin(self: Arc<Self>, round: RoundRecord) {
        let span =
            tracing::info_span!("federated_round", round = round.id, kind = %round.round.kind);
        let _in = span.enter();
        let settings: RoundSettings = match serde_json::from_str(&round.round.spec) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(round = round.id, error = %e, "round settings unreadable; not taking part");
                return;
            }
        };
        if head_kind(&round.round.kind).is_some() {
            return self.begin_head(round, settings);
        }
        if round.round.aggregator == self.me {
            lock(&self.collecting).insert(
                round.id,
                Collector::new(amoskys_learning::federated::round::RoundSpec {
                    id: round.id,
                    base: round.round.base,
                    participants: round
                        .round
                        .participants
                        .iter()
                        .map(|p| p.to_string())
                        .collect(),
                    aggregator: self.me.to_string(),
                    deadline_ns: round.round.deadline_ns,
                    min_participants: settings.min_participants,
                    rule: settings.rule,
                    epochs: settings.epochs,
                    dp: settings.dp,
                }),
            );
            tokio::spawn(
                self.clone()
                    .aggregate(round.clone(), settings.clone())
                    .in_current_span(),
            );
        }
        if round.round.participants.contains(&self.me) {
            tokio::spawn(
                async move {
                    if let Err(e) = self.participate(&round, &settings).await {
                        tracing::warn!(round = round.id, error = %e, "no update sent for this round");
                    }
                }
                .in_current_span(),
            );
        }
    }

    /// The round's base model: a registry version, or untrained.
    async fn base_model(
        &self,
        round: &RoundRecord,
        kind: EntityKind,
    ) -> Result<AnomalyModel, String> {
        match round.round.base {
            Some(v) => {
                let applied = self.cluster.applied().borrow().clone();
                let m = applied
                    .state
                    .models
                    .get(&v)
                    .ok_or(format!("base version {v} is not in the registry"))?;
                let bytes = self.blob(&m.model.sha256).await?;
                AnomalyModel::from_bytes(&bytes).map_err(|e| e.to_string())
            }
            None => {
                AnomalyModel::untrained(&kind.schema(), kind.features().len(), &self.learning.train)
                    .map_err(|e| e.to_string())
            }
        }
    }

    async fn participate(
        &self,
        round: &RoundRecord,
        settings: &RoundSettings,
    ) -> Result<(), String> {
        let kind: EntityKind = round.round.kind.parse()?;
        let base = self.base_model(round, kind).await?;
        let store = self.store.clone();
        let learning = self.learning.clone();
        // The seed only shuffles and initialises local training; the privacy
        // noise comes from the operating system, so no one can replay it.
        let (id, epochs, train_seed) = (
            round.id,
            settings.epochs,
            self.learning.train.seed ^ round.id,
        );
        let dp = settings.dp.map(|config| SiteDp {
            config,
            noise: NoiseSource::Os,
        });
        let update = tokio::task::spawn_blocking(move || {
            let rows = baseline_rows(&store, &learning, kind).map_err(|e| e.to_string())?;
            if rows.is_empty() {
                return Err(format!("no {} windows in the baseline", kind.as_str()));
            }
            let refs: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
            local_update(&base, id, &refs, epochs, train_seed, dp).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())??;
        let mut update = update;
        if let Some(rewrite) = &self.site.rewrite {
            rewrite(&mut update);
        }
        tokio::time::sleep(self.site.delay).await;
        tracing::info!(
            round = id,
            samples = update.samples,
            "federated update ready"
        );
        let body = serde_json::to_vec(&update).map_err(|e| e.to_string())?;
        if round.round.aggregator == self.me {
            return self.offer(&self.me, &body);
        }
        let (mesh, peer, signed) = self.signed_for_aggregator(round, &body)?;
        self.stats.sent(signed.len());
        mesh.request(peer, Service::Model, signed)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// `body` signed with the node's key, and where the round's aggregator
    /// is reached.
    fn signed_for_aggregator(
        &self,
        round: &RoundRecord,
        body: &[u8],
    ) -> Result<(&MeshHandle, libp2p_identity::PeerId, Vec<u8>), String> {
        let mut signed = self.key.sign(body).to_bytes().to_vec();
        signed.extend_from_slice(body);
        let mesh = self.mesh.as_ref().ok_or("this node has no mesh")?;
        let peer = round
            .round
            .aggregator
            .peer_id()
            .ok_or("aggregator has no peer id")?;
        Ok((mesh, peer, signed))
    }

    fn offer(&self, from: &NodeId, body: &[u8]) -> Result<(), String> {
        if let Ok(head) = serde_json::from_slice::<amoskys_learning::head::HeadUpdate>(body)
            && self.collects_head(head.round)
        {
            return self.offer_head(from, &head);
        }
        let update: SiteUpdate =
            serde_json::from_slice(body).map_err(|e| format!("malformed update: {e}"))?;
        let mut collecting = lock(&self.collecting);
        let round = update.round;
        let c = collecting
            .get_mut(&round)
            .ok_or_else(|| Refused::Closed.to_string())?;
        c.offer(&from.to_string(), round, update, now_ns())
            .map_err(|e| e.to_string())
    }

    async fn aggregate(self: Arc<Self>, round: RoundRecord, settings: RoundSettings) {
        self.close_round(
            &self.collecting,
            &round,
            "model",
            async |updates, missing| self.combine(&round, &settings, updates, missing).await,
        )
        .await;
    }

    async fn combine(
        &self,
        round: &RoundRecord,
        settings: &RoundSettings,
        updates: Vec<(String, SiteUpdate)>,
        missing: Vec<String>,
    ) -> Result<NewModel, String> {
        let kind: EntityKind = round.round.kind.parse()?;
        let base = self.base_model(round, kind).await?;
        let rule = settings.rule;
        // An update of the wrong shape is dropped, not allowed to sink the
        // round.
        let want = amoskys_learning::federated::layout(&base).len();
        let updates: Vec<(String, SiteUpdate)> = updates
            .into_iter()
            .filter(|(p, u)| {
                let ok = u.vector.len() == want;
                if !ok {
                    tracing::warn!(peer = %p, values = u.vector.len(), want, "update of the wrong shape dropped");
                }
                ok
            })
            .collect();
        if updates.len() < settings.min_participants.max(1) {
            return Err(format!(
                "{} usable updates, {} needed",
                updates.len(),
                settings.min_participants
            ));
        }
        let contributors: Vec<NodeId> = updates
            .iter()
            .filter_map(|(p, _)| NodeId::parse(p).ok())
            .collect();
        let samples: u64 = updates.iter().map(|(_, u)| u.samples).sum();
        let only: Vec<SiteUpdate> = updates.into_iter().map(|(_, u)| u).collect();
        let model = tokio::task::spawn_blocking(move || combine(&base, &only, rule))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let mut metrics = BTreeMap::from([
            ("updates".to_owned(), contributors.len() as f64),
            ("missing".to_owned(), missing.len() as f64),
            ("samples".to_owned(), samples as f64),
            ("threshold".to_owned(), model.threshold()),
        ]);
        if let Some(dp) = settings.dp {
            // Every earlier private round of this kind counts towards the
            // total a site has spent.
            let applied = self.cluster.applied().borrow().clone();
            let mut accountant = Accountant::default();
            for r in applied.state.rounds.values() {
                if r.id < round.id
                    && r.round.kind == round.round.kind
                    && matches!(r.status, RoundStatus::Done { .. })
                    && let Ok(s) = serde_json::from_str::<RoundSettings>(&r.round.spec)
                    && let Some(d) = s.dp
                {
                    accountant.spend(d.noise_multiplier);
                }
            }
            accountant.spend(dp.noise_multiplier);
            metrics.insert("dp_delta".into(), dp.delta);
            metrics.insert(
                "dp_epsilon_round".into(),
                Accountant::round_epsilon(dp.noise_multiplier, dp.delta),
            );
            metrics.insert("dp_epsilon_total".into(), accountant.epsilon(dp.delta));
            metrics.insert("dp_rounds".into(), accountant.rounds() as f64);
        }
        let bytes = model.to_bytes();
        let sha = sha256_hex(&bytes);
        self.store
            .put_blob(&sha, &bytes)
            .map_err(|e| e.to_string())?;
        tracing::info!(round = round.id, updates = contributors.len(), missing = missing.len(), %sha, "round combined");
        Ok(NewModel {
            sha256: sha,
            schema: kind.schema(),
            parent: round.round.base,
            round: Some(round.id),
            participants: contributors,
            metrics,
            author: self.me,
            time_ns: now_ns(),
            activate: true,
        })
    }

    /// Answers `model` (an update for a round this node aggregates) and
    /// `blob` (content by hash) requests.
    pub async fn serve(
        &self,
        peer: &libp2p_identity::PeerId,
        service: Service,
        body: &[u8],
    ) -> Result<Vec<u8>, String> {
        match service {
            Service::Blob => {
                let sha = std::str::from_utf8(body).map_err(|_| "malformed blob request")?;
                if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err("malformed blob request: expected 64 hex digits".into());
                }
                self.store
                    .get_blob(sha)
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("blob {sha} is not held here"))
            }
            Service::Model => {
                self.stats.received(body.len());
                let from = NodeId::from_peer_id(peer).ok_or("the peer has no ed25519 key")?;
                if body.len() < 64 {
                    return Err("malformed update: no signature".into());
                }
                let (sig, update) = body.split_at(64);
                let sig =
                    Signature::from_slice(sig).map_err(|e| format!("malformed signature: {e}"))?;
                VerifyingKey::from_bytes(&from.0)
                    .map_err(|e| e.to_string())?
                    .verify(update, &sig)
                    .map_err(|_| "the update's signature does not verify".to_owned())?;
                self.offer(&from, update)
                    .map(|()| b"accepted".to_vec())
                    .map_err(|e| format!("update refused: {e}"))
            }
            other => Err(format!(
                "{} requests are not served by this node",
                other.as_str()
            )),
        }
    }
}

#[cfg(test)]
mod tests;
