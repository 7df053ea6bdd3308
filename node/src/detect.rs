//! Detection in the node: events through the rule engine, findings through
//! suppression and the privacy policy, then signed, stored and announced.
//! Runs on the event writer thread, right after each batch is stored.

use std::collections::HashMap;

use amoskys_learning::{Finding, RuleEngine, RulePolicy, Severity};
use amoskys_mesh::{Alert, AlertBody};
use amoskys_sensors::Event;
use ed25519_dalek::SigningKey;
use tokio::sync::broadcast;

use crate::privacy::Privacy;
use crate::storage::{StorageError, Store};

/// Most (rule, subject) pairs remembered for suppression.
const MAX_SUPPRESSED: usize = 10_000;

/// Turns events into signed, stored alerts.
#[derive(Debug)]
pub struct Detector {
    engine: RuleEngine,
    privacy: Privacy,
    key: SigningKey,
    suppress_ns: u64,
    last: HashMap<(String, String), u64>,
    announce: broadcast::Sender<Alert>,
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
            engine: RuleEngine::new(policy),
            privacy,
            key,
            suppress_ns: suppress_secs.saturating_mul(1_000_000_000),
            last: HashMap::new(),
            announce,
        }
    }

    /// Runs the detectors over a stored batch; stores and announces the
    /// alerts raised.
    pub fn process(&mut self, store: &Store, events: &[Event]) -> Result<Vec<Alert>, StorageError> {
        let findings: Vec<Finding> = events.iter().flat_map(|e| self.engine.observe(e)).collect();
        let mut alerts = Vec::new();
        for finding in findings {
            let subject = self.privacy.subject(&finding.subject);
            if self.suppressed(&finding.rule, &subject, finding.time_ns) {
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
            alerts.push(Alert::sign(body, &self.key));
        }
        if !alerts.is_empty() {
            store.put_alerts(&alerts)?;
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

    /// True when the same rule fired on the same subject within the
    /// suppression window; otherwise records this firing.
    fn suppressed(&mut self, rule: &str, subject: &str, t: u64) -> bool {
        let key = (rule.to_owned(), subject.to_owned());
        if let Some(&prev) = self.last.get(&key)
            && t.saturating_sub(prev) < self.suppress_ns
        {
            return true;
        }
        if self.last.len() >= MAX_SUPPRESSED {
            let horizon = t.saturating_sub(self.suppress_ns);
            self.last.retain(|_, seen| *seen >= horizon);
        }
        self.last.insert(key, t);
        false
    }
}

fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Low => "low",
        Severity::Medium => "medium",
        Severity::High => "high",
        Severity::Critical => "critical",
    }
}
