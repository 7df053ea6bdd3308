//! Detection in the node: events through the rule engine, the workspace's
//! IOCs ([`crate::ioc`]) and into feature windows, closed windows scored by
//! the anomaly models, findings through suppression ([`crate::suppress`]:
//! repeats, kept across restarts, and false-positive verdicts) and the
//! privacy policy, then signed, stored and announced.
//! Runs on the event writer thread, right after each batch is stored.

use std::sync::Arc;

use amoskys_learning::features::{EntityKind, FeatureExtractor, FeatureWindow};
use amoskys_learning::{Category, Finding, OwnSockets, RuleEngine, RulePolicy, Severity};
use amoskys_mesh::{Alert, AlertBody};
use amoskys_sensors::{Event, now_ns};
use ed25519_dalek::SigningKey;
use tokio::sync::{broadcast, watch};

use crate::drift::DriftSettings;
use crate::ioc::IocDetection;
use crate::members::MemberAddresses;
use crate::models::ModelSet;
use crate::policy::InForce;
use crate::privacy::Privacy;
use crate::storage::windows::Window;
use crate::storage::{StorageError, Store};
use crate::suppress::{Mark, Outcome, Suppression, VerdictFeed};
/// Entities of one kind with an open feature window.
const MAX_WINDOW_ENTITIES: usize = 10_000;
/// Features named in an anomaly alert's evidence.
const EXPLAINED_FEATURES: usize = 3;
/// How long the node waits for its mesh to report its listening ports.
const MESH_PORTS_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The anomaly half of detection: live feature windows and the models.
#[derive(Debug)]
pub struct AnomalyDetection {
    pub features: FeatureExtractor,
    pub models: Arc<ModelSet>,
    /// Members' source windows are not scored ([`crate::members`]).
    pub members: MemberAddresses,
}

impl AnomalyDetection {
    pub fn new(window_ns: u64, models: Arc<ModelSet>) -> Self {
        Self {
            features: FeatureExtractor::new(window_ns, MAX_WINDOW_ENTITIES),
            models,
            members: MemberAddresses::default(),
        }
    }
}

/// Turns events into signed, stored alerts.
#[derive(Debug)]
pub struct Detector {
    engine: RuleEngine,
    privacy: Privacy,
    key: SigningKey,
    suppression: Suppression,
    announce: broadcast::Sender<Alert>,
    anomaly: Option<AnomalyDetection>,
    intel: Option<IocDetection>,
    policy: Option<watch::Receiver<Arc<InForce>>>,
    own: Option<watch::Receiver<OwnSockets>>,
}

impl Detector {
    pub fn new(
        policy: RulePolicy,
        privacy: Privacy,
        key: SigningKey,
        suppress_secs: u64,
        announce: broadcast::Sender<Alert>,
    ) -> Self {
        Self {
            engine: with_user_names(RuleEngine::new(policy)),
            privacy,
            key,
            suppression: Suppression::new(suppress_secs),
            announce,
            anomaly: None,
            intel: None,
            policy: None,
            own: None,
        }
    }

    /// Takes up the repeat memory kept in the store
    /// ([`Store::suppression_marks`]), so a restart does not raise again
    /// what was raised within `suppress_secs`.
    pub fn with_remembered(mut self, marks: Vec<Mark>) -> Self {
        self.suppression.restore(marks);
        self
    }

    /// Also suppresses what the workspace's false-positive verdicts cover,
    /// for the policy's `false_positive_suppress_secs`.
    pub fn with_verdicts(mut self, feed: VerdictFeed) -> Self {
        self.suppression.follow_verdicts(feed);
        self
    }

    /// Follows the node's own sockets (its process, API and mesh ports),
    /// which never raise `new_listening_port`.
    pub fn with_own_sockets(mut self, own: watch::Receiver<OwnSockets>) -> Self {
        self.engine.set_own_sockets(own.borrow().clone());
        self.own = Some(own);
        self
    }

    /// TCP ports listening when the node started: the baseline, never
    /// reported as new.
    pub fn with_listener_baseline(mut self, ports: impl IntoIterator<Item = u16>) -> Self {
        self.engine.seed_listeners(ports);
        self
    }

    /// Follows the cluster policy: a new version replaces the rules and the
    /// privacy settings before the next batch.
    pub fn with_policy(mut self, policy: watch::Receiver<Arc<InForce>>) -> Self {
        self.policy = Some(policy);
        self
    }

    fn follow_policy(&mut self) {
        if let Some(own) = self.own.as_mut()
            && own.has_changed().unwrap_or(false)
        {
            let own = own.borrow_and_update().clone();
            self.engine.set_own_sockets(own);
        }
        let Some(rx) = self.policy.as_mut() else {
            return;
        };
        if !rx.has_changed().unwrap_or(false) {
            return;
        }
        let in_force = rx.borrow_and_update().clone();
        if *self.engine.policy() != in_force.policy.rules {
            // Keeps the baseline of listeners and the node's own sockets.
            self.engine.set_policy(in_force.policy.rules.clone());
        }
        if let Ok(p) = in_force.policy.privacy() {
            self.privacy = p;
        }
        if let Some(a) = &self.anomaly {
            let drift = DriftSettings::from_policy(&in_force.policy.learning);
            a.models.drift().configure(drift);
        }
    }

    /// Also matches events against the workspace's IOCs.
    pub fn with_intel(
        mut self,
        matcher: watch::Receiver<Arc<crate::workspace::IocMatcher>>,
    ) -> Self {
        self.intel = Some(IocDetection::new(matcher));
        self
    }

    /// Also scores feature windows with the anomaly models.
    pub fn with_anomaly(mut self, anomaly: AnomalyDetection) -> Self {
        self.anomaly = Some(anomaly);
        self
    }

    /// Runs the detectors over a stored batch; stores and announces the
    /// alerts raised.
    pub fn process(&mut self, store: &Store, events: &[Event]) -> Result<Vec<Alert>, StorageError> {
        self.follow_policy();
        self.suppression.refresh();
        let verdict_ns = self
            .engine
            .policy()
            .false_positive_suppress_secs
            .saturating_mul(1_000_000_000);
        let mut findings: Vec<(Finding, Option<Window>)> = events
            .iter()
            .flat_map(|e| self.engine.observe(e))
            .map(|f| (f, None))
            .collect();
        if let Some(intel) = self.intel.as_mut() {
            let matched = intel.observe(events, now_ns() / 1_000_000);
            findings.extend(matched.into_iter().map(|f| (f, None)));
        }
        if let Some(a) = self.anomaly.as_mut() {
            let mut windows = Vec::new();
            for e in events {
                windows.extend(a.features.push(e));
            }
            windows.extend(a.features.flush(now_ns()));
            windows.retain(|w| !a.members.covers(w));
            let quantile = self.engine.policy().anomaly_quantile;
            let scored = score_windows_kept(&a.models, &windows, quantile);
            findings.extend(scored.into_iter().map(|(f, w)| (f, Some(w))));
            findings.extend(a.models.drift().check().into_iter().map(|f| (f, None)));
        }
        let mut alerts = Vec::new();
        let mut kept = Vec::new();
        for (finding, window) in findings {
            let subject = self.privacy.subject(&finding.subject);
            let outcome =
                self.suppression
                    .check(&finding.rule, &subject, finding.time_ns, verdict_ns);
            if outcome != Outcome::Raise {
                continue;
            }
            let body = AlertBody {
                seq: store.next_alert_seq()?,
                time_ns: finding.time_ns,
                severity: severity_name(finding.severity).to_owned(),
                category: serde_json::to_value(finding.category)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                technique: finding.technique,
                rule: finding.rule,
                score: finding.score.clamp(0.0, 1.0),
                subject,
                evidence: self.privacy.evidence(&finding.evidence),
            };
            let alert = Alert::sign(body, &self.key);
            if let Some(w) = window {
                kept.push((alert.id.clone(), w));
            }
            alerts.push(alert);
        }
        let marks = self.suppression.take_changes();
        if !alerts.is_empty() || !marks.is_empty() {
            // The repeat memory goes in the alerts' batch: a crash keeps
            // both or neither.
            store.put_alerts_marked(&alerts, &marks)?;
            // The windows behind anomaly alerts, for the analysts' verdicts
            // (crate::verdicts); they stay on this node.
            store.put_windows(&kept)?;
            for alert in &alerts {
                tracing::info!(
                    id = %alert.id,
                    rule = %alert.body.rule,
                    technique = %alert.body.technique,
                    severity = %alert.body.severity,
                    subject = %alert.body.subject,
                    "alert raised"
                );
                // No subscriber is fine; a slow one lags and is told so.
                let _ = self.announce.send(alert.clone());
            }
        }
        Ok(alerts)
    }
}

/// TCP ports listening on this host now (the socket tables of `/proc`),
/// for [`Detector::with_listener_baseline`]. Empty when the procfs socket
/// sensor is off, or (with a warning) when the tables cannot be read.
pub fn listening_ports(procfs: &crate::config::ProcfsSection) -> Vec<u16> {
    if !(procfs.enabled && procfs.sockets) {
        return Vec::new();
    }
    match amoskys_sensors::procfs::sockets::read_tables() {
        Ok(entries) => entries
            .iter()
            .filter(|e| e.listening && e.transport == amoskys_sensors::Transport::Tcp)
            .map(|e| e.local.port())
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the socket tables; no listener baseline");
            Vec::new()
        }
    }
}

/// Adds the mesh's listening ports (TCP, and UDP for QUIC) to the node's
/// own sockets once the mesh reports them; gives up after `MESH_PORTS_WAIT`
/// (the node's process id still covers them).
pub async fn follow_mesh_ports(mesh: amoskys_mesh::MeshHandle, own: watch::Sender<OwnSockets>) {
    let end = tokio::time::Instant::now() + MESH_PORTS_WAIT;
    while tokio::time::Instant::now() < end {
        let Ok(addrs) = mesh.listen_addrs().await else {
            return;
        };
        let ports = ports_of(addrs.iter().map(ToString::to_string));
        if !ports.is_empty() {
            own.send_modify(|o| o.ports.extend(ports));
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tracing::debug!("mesh reported no listen address; its sockets are known by the process id");
}

/// TCP and UDP ports in multiaddrs (`/ip4/127.0.0.1/tcp/7301`,
/// `/ip4/0.0.0.0/udp/7301/quic-v1`).
fn ports_of(addrs: impl Iterator<Item = String>) -> Vec<u16> {
    let mut ports = Vec::new();
    for a in addrs {
        let parts: Vec<&str> = a.split('/').collect();
        for w in parts.windows(2) {
            if (w[0] == "tcp" || w[0] == "udp")
                && let Ok(port) = w[1].parse::<u16>()
                && !ports.contains(&port)
            {
                ports.push(port);
            }
        }
    }
    ports
}

/// Findings for the closed windows that score above the policy's quantile
/// of their model's baseline scores. Every score also goes to the model's
/// drift window ([`crate::drift`]).
pub fn score_windows(models: &ModelSet, windows: &[FeatureWindow], quantile: f64) -> Vec<Finding> {
    score_windows_kept(models, windows, quantile)
        .into_iter()
        .map(|(f, _)| f)
        .collect()
}

/// [`score_windows`], each finding with the window behind it as the
/// supervised head takes it (the score as a log ratio to the threshold).
pub fn score_windows_kept(
    models: &ModelSet,
    windows: &[FeatureWindow],
    quantile: f64,
) -> Vec<(Finding, Window)> {
    let mut out = Vec::new();
    for kind in EntityKind::ALL {
        let of_kind: Vec<&FeatureWindow> = windows.iter().filter(|w| w.kind == kind).collect();
        if of_kind.is_empty() {
            continue;
        }
        let Some(loaded) = models.get(kind) else {
            continue;
        };
        let model = &loaded.model;
        let rows: Vec<&[f32]> = of_kind.iter().map(|w| w.values.as_slice()).collect();
        let threshold = model.threshold_at(quantile);
        let scores = model.score(&rows);
        let end_ns = of_kind.iter().map(|w| w.end_ns).max().unwrap_or(0);
        models.drift().record(kind, &loaded, &scores, end_ns);
        for (w, score) in of_kind.iter().zip(scores) {
            // Strictly above: baseline scores are discrete, and a tie at the
            // quantile is a score the baseline has.
            if !score.is_finite() || score <= threshold {
                continue;
            }
            let rank = model.baseline_rank(score);
            let names = kind.features();
            let mut evidence = vec![
                (
                    "window_secs".to_owned(),
                    ((w.end_ns - w.start_ns) / 1_000_000_000).to_string(),
                ),
                ("anomaly_score".to_owned(), format!("{score:.2}")),
                ("threshold".to_owned(), format!("{threshold:.2}")),
                (
                    "model_sha256".to_owned(),
                    loaded.info.sha256.chars().take(16).collect(),
                ),
            ];
            for (j, tail) in model.explain(&w.values, EXPLAINED_FEATURES) {
                let (name, value) = match names.get(j) {
                    Some(n) => (*n, format!("{:.3}", w.values[j])),
                    None => ("reconstruction_error", "-".to_owned()),
                };
                evidence.push((
                    format!("feature.{name}"),
                    format!("{value} (tail {tail:.1})"),
                ));
            }
            let kept = Window {
                kind: kind.as_str().to_owned(),
                time_ns: w.end_ns,
                score: amoskys_learning::head::score_input(score, threshold),
                features: w.values.clone(),
            };
            let finding = Finding {
                time_ns: w.end_ns,
                rule: format!("anomaly_{}", kind.as_str()),
                category: Category::Anomaly,
                technique: String::new(),
                severity: if rank >= 1.0 {
                    Severity::High
                } else {
                    Severity::Medium
                },
                score: rank,
                subject: w.subject.clone(),
                evidence,
            };
            out.push((finding, kept));
        }
    }
    out
}

fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Low => "low",
        Severity::Medium => "medium",
        Severity::High => "high",
        Severity::Critical => "critical",
    }
}

/// The rule engine with the host's user names (Sigma's `User` field), read
/// from /etc/passwd once; uids without a name show as numbers.
fn with_user_names(mut engine: RuleEngine) -> RuleEngine {
    if let Ok(text) = std::fs::read_to_string("/etc/passwd") {
        engine.set_user_names(amoskys_learning::rules::sigma::parse_passwd(&text));
    }
    engine
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mesh_ports_come_from_tcp_and_quic_addresses() {
        let addrs = [
            "/ip4/127.0.0.1/tcp/7301",
            "/ip4/127.0.0.1/udp/7301/quic-v1",
            "/ip6/::1/tcp/41000/p2p/12D3KooW",
        ];
        assert_eq!(
            ports_of(addrs.iter().map(|a| a.to_string())),
            vec![7301, 41000]
        );
    }
}
