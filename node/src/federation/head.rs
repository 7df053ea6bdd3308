//! Federated rounds of the supervised head ([`crate::verdicts`]): the
//! round's kind is `head:<entity>`. Each participant trains the base head
//! on its own verdicts and sends only the head's parameters and its two
//! verdict counts ([`HeadUpdate`]), signed, to the aggregator; a site
//! without verdicts of both classes sends nothing. The aggregator combines
//! them with the round's rule, keeps the head (JSON) under its SHA-256 and
//! registers it with its lineage (schema `head:<entity schema>`, the base
//! version as parent, the round, the contributors, the verdict counts),
//! not as the active anomaly model. Every node follows the newest
//! registered head of each kind ([`Learner::set_registered`]); the policy's
//! `learning.head = "federated"` puts it in force.

use std::collections::BTreeMap;
use std::time::Duration;

use amoskys_consensus::{
    Applied, ClusterError, Command, NewModel, NewRound, NodeId, Outcome, RoundRecord,
};
use amoskys_learning::features::EntityKind;
use amoskys_learning::federated::round::{Collector, Refused, RoundSpec};
use amoskys_learning::head::{Head, HeadUpdate, Verdict, combine, local_update};
use amoskys_mesh::Service;
use std::sync::Arc;
use tracing::Instrument;

use super::{Federation, RoundSettings, lock, now_ns, sha256_hex};
use crate::verdicts::{Registered, head_config};

/// Times a participant sends its head update before it gives up.
const SEND_TRIES: u32 = 10;
/// The wait between two of them.
const SEND_RETRY: Duration = Duration::from_millis(300);

/// The round kind of `kind`'s head.
pub fn round_kind(kind: EntityKind) -> String {
    format!("head:{}", kind.as_str())
}

/// The registry schema of `kind`'s head.
pub fn schema(kind: EntityKind) -> String {
    format!("head:{}", kind.schema())
}

/// The entity kind of a head round's kind (`head:source`), if it is one.
pub fn head_kind(round_kind: &str) -> Option<Result<EntityKind, String>> {
    round_kind.strip_prefix("head:").map(str::parse)
}

/// The newest registered head of `kind` in `applied`.
fn newest(applied: &Applied, kind: EntityKind) -> Option<u64> {
    let schema = schema(kind);
    applied
        .state
        .models
        .values()
        .rev()
        .find(|m| m.model.schema == schema)
        .map(|m| m.version)
}

/// The newest registered head of every kind.
pub(super) fn newest_all(applied: &Applied) -> Vec<Option<u64>> {
    EntityKind::ALL
        .into_iter()
        .map(|k| newest(applied, k))
        .collect()
}

impl Federation {
    /// Proposes a head round of `kind` over every current member.
    pub async fn start_head_round(
        &self,
        kind: EntityKind,
        settings: RoundSettings,
        deadline: Duration,
    ) -> Result<u64, ClusterError> {
        let (voters, learners) = self.cluster.members();
        let aggregator = self
            .cluster
            .raft()
            .metrics()
            .borrow()
            .current_leader
            .unwrap_or(self.me);
        let base = newest(&self.cluster.applied().borrow(), kind);
        let spec =
            serde_json::to_string(&settings).map_err(|e| ClusterError::Invalid(e.to_string()))?;
        let round = NewRound {
            kind: round_kind(kind),
            base,
            participants: voters.into_iter().chain(learners).collect(),
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

    /// On the leader's schedule (`learning.federated_every_minutes`), with
    /// `learning.head = "federated"`: a head round of each listed kind once
    /// its last one is `every_ns` old.
    pub(super) async fn schedule_heads(
        &self,
        l: &crate::policy::LearningPolicy,
        applied: &Applied,
        every_ns: u64,
    ) {
        if l.head != "federated" {
            return;
        }
        for kind in l.federated_kinds.iter().filter_map(|k| k.parse().ok()) {
            if !super::due(&applied.state.rounds, &round_kind(kind), every_ns, now_ns()) {
                continue;
            }
            let settings = RoundSettings {
                rule: l.federated_rule,
                epochs: 1,
                min_participants: l.federated_min_participants,
                dp: None,
            };
            let deadline = Duration::from_secs(l.federated_deadline_secs);
            match self.start_head_round(kind, settings, deadline).await {
                Ok(id) => tracing::info!(
                    round = id,
                    entity = kind.as_str(),
                    "scheduled head round started"
                ),
                Err(e) => {
                    tracing::warn!(entity = kind.as_str(), error = %e, "scheduled head round not started")
                }
            }
        }
    }

    /// Takes part in (and aggregates, when this node is the aggregator) a
    /// head round.
    pub(super) fn begin_head(self: Arc<Self>, round: RoundRecord, settings: RoundSettings) {
        if round.round.aggregator == self.me {
            lock(&self.heads).insert(
                round.id,
                Collector::new(RoundSpec {
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
                    dp: None,
                }),
            );
            tokio::spawn(
                self.clone()
                    .aggregate_head(round.clone(), settings)
                    .in_current_span(),
            );
        }
        if round.round.participants.contains(&self.me) {
            tokio::spawn(
                async move {
                    if let Err(e) = self.participate_head(&round).await {
                        tracing::warn!(round = round.id, error = %e, "no head update sent for this round");
                    }
                }
                .in_current_span(),
            );
        }
    }

    /// The round's base head: a registry version, or the prior.
    async fn base_head(&self, round: &RoundRecord, kind: EntityKind) -> Result<Head, String> {
        let cfg = head_config(&self.learner.policy());
        let width = kind.features().len();
        let Some(v) = round.round.base else {
            return Ok(Head::prior(width, &cfg));
        };
        let sha = {
            let applied = self.cluster.applied().borrow().clone();
            let m = applied
                .state
                .models
                .get(&v)
                .ok_or(format!("base version {v} is not in the registry"))?;
            m.model.sha256.clone()
        };
        decode_head(&self.blob(&sha).await?, width)
    }

    async fn participate_head(&self, round: &RoundRecord) -> Result<(), String> {
        let kind = head_kind(&round.round.kind).ok_or("not a head round")??;
        let base = self.base_head(round, kind).await?;
        let cfg = head_config(&self.learner.policy());
        let learner = self.learner.clone();
        let id = round.id;
        let update = tokio::task::spawn_blocking(move || {
            let labelled = learner.verdicts_of(kind).map_err(|e| e.to_string())?;
            let verdicts: Vec<Verdict<'_>> = labelled
                .iter()
                .map(|l| Verdict {
                    score: l.window.score,
                    features: &l.window.features,
                    attack: l.attack,
                })
                .collect();
            local_update(&base, id, &verdicts, &cfg).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())??
        .ok_or("this node has no verdicts of both classes for the kind")?;
        tracing::info!(
            round = id,
            attacks = update.attacks,
            normals = update.normals,
            "head update ready"
        );
        let body = serde_json::to_vec(&update).map_err(|e| e.to_string())?;
        if round.round.aggregator == self.me {
            return self.offer_head(&self.me, &update);
        }
        let (mesh, peer, signed) = self.signed_for_aggregator(round, &body)?;
        // A head trains in milliseconds: the update may reach the
        // aggregator before it has opened the round, so a refusal is tried
        // again, a bounded number of times within the deadline.
        let mut tries = 1;
        loop {
            self.stats.sent(signed.len());
            match mesh.request(peer, Service::Model, signed.clone()).await {
                Ok(_) => return Ok(()),
                Err(e) if tries < SEND_TRIES && now_ns() < round.round.deadline_ns => {
                    tracing::debug!(round = id, error = %e, "head update refused; sending again");
                    tries += 1;
                    tokio::time::sleep(SEND_RETRY).await;
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    /// Offers a head update to the round it names.
    pub(super) fn offer_head(&self, from: &NodeId, update: &HeadUpdate) -> Result<(), String> {
        let mut heads = lock(&self.heads);
        let c = heads
            .get_mut(&update.round)
            .ok_or_else(|| Refused::Closed.to_string())?;
        c.offer(&from.to_string(), update.round, update.clone(), now_ns())
            .map_err(|e| e.to_string())
    }

    /// Whether `round` is a head round this node collects.
    pub(super) fn collects_head(&self, round: u64) -> bool {
        lock(&self.heads).contains_key(&round)
    }

    async fn aggregate_head(self: Arc<Self>, round: RoundRecord, settings: RoundSettings) {
        self.close_round(&self.heads, &round, "head", async |updates, missing| {
            self.combine_heads(&round, &settings, updates, missing)
                .await
        })
        .await;
    }

    async fn combine_heads(
        &self,
        round: &RoundRecord,
        settings: &RoundSettings,
        updates: Vec<(String, HeadUpdate)>,
        missing: Vec<String>,
    ) -> Result<NewModel, String> {
        let kind = head_kind(&round.round.kind).ok_or("not a head round")??;
        let base = self.base_head(round, kind).await?;
        // An update of the wrong shape or with bad values is dropped.
        let updates: Vec<(String, HeadUpdate)> = updates
            .into_iter()
            .filter(|(p, u)| {
                let ok = u.vector.len() == base.params.len()
                    && u.vector.iter().all(|v| v.is_finite());
                if !ok {
                    tracing::warn!(peer = %p, values = u.vector.len(), "head update of the wrong shape dropped");
                }
                ok
            })
            .collect();
        if updates.len() < settings.min_participants.max(1) {
            return Err(format!(
                "{} usable head updates, {} needed",
                updates.len(),
                settings.min_participants
            ));
        }
        let contributors: Vec<NodeId> = updates
            .iter()
            .filter_map(|(p, _)| NodeId::parse(p).ok())
            .collect();
        let only: Vec<HeadUpdate> = updates.into_iter().map(|(_, u)| u).collect();
        let head = combine(&base, &only, settings.rule).map_err(|e| e.to_string())?;
        let bytes = serde_json::to_vec(&head).map_err(|e| e.to_string())?;
        let sha = sha256_hex(&bytes);
        self.store
            .put_blob(&sha, &bytes)
            .map_err(|e| e.to_string())?;
        tracing::info!(round = round.id, updates = contributors.len(), attacks = head.attacks, normals = head.normals, %sha, "head round combined");
        Ok(NewModel {
            sha256: sha,
            schema: schema(kind),
            parent: round.round.base,
            round: Some(round.id),
            participants: contributors.clone(),
            metrics: BTreeMap::from([
                ("updates".to_owned(), contributors.len() as f64),
                ("missing".to_owned(), missing.len() as f64),
                ("attacks".to_owned(), head.attacks as f64),
                ("normals".to_owned(), head.normals as f64),
            ]),
            author: self.me,
            time_ns: now_ns(),
            activate: false,
        })
    }

    /// Puts the newest registered head of each kind in the learner.
    pub(super) async fn install_heads(&self, applied: &Applied) {
        for kind in EntityKind::ALL {
            let Some(version) = newest(applied, kind) else {
                continue;
            };
            if self
                .learner
                .registered(kind)
                .is_some_and(|r| r.version == version)
            {
                continue;
            }
            let Some(m) = applied.state.models.get(&version) else {
                continue;
            };
            let head = match self.blob(&m.model.sha256).await {
                Ok(bytes) => decode_head(&bytes, kind.features().len()),
                Err(e) => Err(e),
            };
            match head {
                Ok(head) => {
                    tracing::info!(version, entity = kind.as_str(), "registry head in use");
                    self.learner
                        .set_registered(kind, Registered { version, head });
                }
                Err(e) => tracing::warn!(version, error = %e, "registry head not installed"),
            }
        }
    }
}

/// A head read from a blob, checked: it decodes, its values are finite
/// and it takes `width` features.
fn decode_head(bytes: &[u8], width: usize) -> Result<Head, String> {
    let head: Head =
        serde_json::from_slice(bytes).map_err(|e| format!("a head blob does not decode: {e}"))?;
    let mut problems = head.problems();
    if head.inputs() != width {
        problems.push(format!(
            "the head takes {} features, the kind {width}",
            head.inputs()
        ));
    }
    if problems.is_empty() {
        Ok(head)
    } else {
        Err(problems.join("; "))
    }
}
