//! Federated rounds in a simulation: every node is a site with synthetic
//! device telemetry of its own; some sites are poisoned (their update is
//! rewritten before it is signed) or straggle (they send it late). After
//! each round the combined model is scored on held-out windows.

use std::time::{Duration, Instant};

use amoskys_consensus::RoundStatus;
use amoskys_learning::anomaly::AnomalyModel;
use amoskys_learning::eval::roc_auc;
use amoskys_learning::features::{EntityKind, FeatureExtractor};
use amoskys_learning::federated::{Rule, SiteUpdate};
use amoskys_node::Node;
use amoskys_node::federation::{RoundSettings, SiteBehaviour};
use amoskys_sensors::{DeviceMetrics, Event, EventBody, InterfaceRates};
use serde::{Deserialize, Serialize};

use crate::scenario::Rng;

/// The `[federated]` table of a scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Federated {
    pub rounds: usize,
    pub rule: Rule,
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    #[serde(default = "default_deadline")]
    pub deadline_secs: u64,
    /// Seconds of device history each site trains on (one window a second).
    #[serde(default = "default_history")]
    pub history_secs: u64,
    /// Sites whose updates are replaced by garbage scaled far out of range.
    #[serde(default)]
    pub poisoned: Vec<usize>,
    /// Sites that send their update `straggle_ms` late.
    #[serde(default)]
    pub stragglers: Vec<usize>,
    #[serde(default)]
    pub straggle_ms: u64,
}

fn default_epochs() -> usize {
    2
}
fn default_deadline() -> u64 {
    20
}
fn default_history() -> u64 {
    300
}

/// What one round did.
#[derive(Debug, Clone, Serialize)]
pub struct RoundResult {
    pub round: u64,
    pub status: String,
    pub participants: usize,
    pub seconds: f64,
    /// ROC-AUC of the model in use after the round on held-out windows.
    pub roc_auc: Option<f64>,
}

/// How site `i` behaves under `f`.
pub fn behaviour(f: &Federated, i: usize) -> SiteBehaviour {
    let mut b = SiteBehaviour::default();
    if f.poisoned.contains(&i) {
        b.rewrite = Some(std::sync::Arc::new(|u: &mut SiteUpdate| {
            for (k, v) in u.vector.iter_mut().enumerate() {
                *v = if k % 2 == 0 { 1e6 } else { -1e6 };
            }
        }));
    }
    if f.stragglers.contains(&i) {
        b.delay = Duration::from_millis(f.straggle_ms);
    }
    b
}

/// Device polls once a second for the `secs` seconds before now: the
/// site's devices at their own load, or, when `attack`, a device being
/// flooded (saturated CPU, a hundred times the traffic, errors).
pub fn device_events(site: usize, secs: u64, attack: bool, rng: &mut Rng) -> Vec<Event> {
    let now = amoskys_sensors::now_ns();
    let mut out = Vec::new();
    let level = (site % 7) as f64;
    for t in 0..secs {
        for d in 0..2u64 {
            let wobble = (rng.below(11)) as f64;
            let (cpu, bytes, errors) = if attack {
                (97.0, 150_000.0 + wobble * 1_000.0, 40.0)
            } else {
                (
                    10.0 + wobble + level,
                    1_000.0 + wobble * 10.0 + level * 50.0,
                    0.0,
                )
            };
            out.push(Event::new(
                now - (secs - t) * 1_000_000_000,
                "synthetic",
                "snmp",
                EventBody::DeviceMetrics(DeviceMetrics {
                    device: format!("dev-{site}-{d}"),
                    address: "192.0.2.1:161".into(),
                    uptime_ticks: (t * 100) as u32,
                    description: "switch".into(),
                    rebooted: false,
                    load: Some([0.2 + wobble / 50.0, 0.2, 0.2]),
                    cpu_percent: vec![cpu as u8],
                    memory_total_kib: Some(1_000_000),
                    memory_available_kib: Some(400_000 + (wobble as u64) * 1_000),
                    interfaces: vec![InterfaceRates {
                        index: 1,
                        name: "eth0".into(),
                        in_bytes_per_sec: Some(bytes),
                        out_bytes_per_sec: Some(800.0),
                        in_packets_per_sec: Some(bytes / 100.0),
                        out_packets_per_sec: Some(9.0),
                        in_errors_per_sec: Some(errors),
                        out_errors_per_sec: Some(0.0),
                    }],
                    ..Default::default()
                }),
            ));
        }
    }
    out
}

/// Held-out device windows: normal ones from sites no node trained on and
/// flooded ones, with their labels (true = attack).
pub fn held_out(seed: u64) -> (Vec<Vec<f32>>, Vec<bool>) {
    let mut rng = Rng::new(seed ^ 0xE7A1);
    let mut rows = Vec::new();
    let mut labels = Vec::new();
    for (site, attack) in [(1_000, false), (1_001, false), (1_002, true)] {
        let mut fx = FeatureExtractor::new(1_000_000_000, 1_000);
        let mut windows = Vec::new();
        for e in device_events(site, 60, attack, &mut rng) {
            windows.extend(fx.push(&e));
        }
        windows.extend(fx.close());
        for w in windows.into_iter().filter(|w| w.kind == EntityKind::Device) {
            rows.push(w.values);
            labels.push(attack);
        }
    }
    (rows, labels)
}

fn score(node: &Node, rows: &[Vec<f32>], labels: &[bool]) -> Option<f64> {
    let applied = node.cluster()?.applied().borrow().clone();
    let sha = applied.state.active_model()?.model.sha256.clone();
    let bytes = node.store().get_blob(&sha).ok()??;
    let model = AnomalyModel::from_bytes(&bytes).ok()?;
    let refs: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
    roc_auc(&model.score(&refs), labels)
}

/// Runs `f.rounds` rounds started on `nodes[0]`; each waits for its end.
pub async fn rounds(
    f: &Federated,
    seed: u64,
    nodes: &[Option<Node>],
    progress: &mut dyn FnMut(&str),
) -> Vec<RoundResult> {
    let (rows, labels) = held_out(seed);
    let Some(first) = nodes.iter().flatten().next() else {
        return Vec::new();
    };
    let (Some(fed), Some(cluster)) = (first.federation(), first.cluster()) else {
        return Vec::new();
    };
    // A round is over every member: wait until every running node is one.
    let running = nodes.iter().flatten().count();
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let (voters, learners) = cluster.members();
        if voters.len() + learners.len() >= running || Instant::now() > end {
            progress(&format!(
                "{} of {running} nodes are members",
                voters.len() + learners.len()
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut out = Vec::new();
    for r in 0..f.rounds {
        let settings = RoundSettings {
            rule: f.rule,
            epochs: f.epochs,
            min_participants: 2,
            dp: None,
        };
        let started = Instant::now();
        let id = match fed
            .start_round(
                EntityKind::Device,
                settings,
                Duration::from_secs(f.deadline_secs),
            )
            .await
        {
            Ok(id) => id,
            Err(e) => {
                progress(&format!("round {} not started: {e}", r + 1));
                continue;
            }
        };
        let end = started + Duration::from_secs(f.deadline_secs + 30);
        let record = loop {
            let record = cluster.applied().borrow().state.rounds.get(&id).cloned();
            match record {
                Some(rec) if rec.status != RoundStatus::Open => break Some(rec),
                _ if Instant::now() > end => break None,
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        let (status, participants) = match &record {
            Some(rec) => match &rec.status {
                RoundStatus::Done { version } => (
                    "done".to_owned(),
                    cluster
                        .applied()
                        .borrow()
                        .state
                        .models
                        .get(version)
                        .map_or(0, |m| m.model.participants.len()),
                ),
                RoundStatus::Abandoned { reason } => (format!("abandoned: {reason}"), 0),
                RoundStatus::Open => ("open".to_owned(), 0),
            },
            None => ("no outcome in time".to_owned(), 0),
        };
        let result = RoundResult {
            round: id,
            status,
            participants,
            seconds: started.elapsed().as_secs_f64(),
            roc_auc: score(first, &rows, &labels),
        };
        progress(&format!(
            "round {} of {}: {}, {} participants, ROC-AUC {}",
            r + 1,
            f.rounds,
            result.status,
            result.participants,
            result.roc_auc.map_or("-".into(), |a| format!("{a:.3}"))
        ));
        out.push(result);
    }
    out
}
