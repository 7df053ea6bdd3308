//! Alerts in, decisions out: the `[response]` rules applied to every
//! alert the node sees. Pure: time is passed in.
//!
//! A rule with `min_nodes = 1` turns each matching alert this node raised
//! into a decision (the origin decides, so one node writes it). A rule
//! with `min_nodes = k ≥ 2` counts distinct reporting nodes with the
//! correlator's campaigns ([`amoskys_mesh::correlate`]): the reports of
//! one subject within `rules.campaign_window_secs`, in one fixed order on
//! every node, and the origin of the `k`-th report writes the decision.

use std::net::IpAddr;

use amoskys_mesh::Alert;
use amoskys_mesh::correlate::{Campaign, Correlator};

use super::decisions::{Decision, Subject};
use super::policy::{ResponsePolicy, ResponseRule};

/// A campaign is decided once its `k`-th report is this old, so reports in
/// flight have arrived.
pub const SETTLE_NS: u64 = 1_000_000_000;

/// The response rules of the policy in force, and their campaign counts.
#[derive(Debug)]
pub struct Engine {
    me: String,
    rules: Vec<ResponseRule>,
    window_ns: u64,
    /// One correlator per rule with `min_nodes ≥ 2`.
    campaigns: Vec<Option<Correlator>>,
}

/// The alert's subject when it is a source address (`source_ip:…`, or a
/// bare address); hashed addresses and other subjects make no decision.
fn subject_of(alert: &Alert) -> Option<Subject> {
    let s = alert.body.subject.trim();
    s.strip_prefix("source_ip:")
        .unwrap_or(s)
        .parse::<IpAddr>()
        .ok()
        .map(Subject::host)
}

impl Engine {
    /// `me`: this node's peer id; `window_ns`: the campaign window.
    pub fn new(me: String, policy: &ResponsePolicy, window_ns: u64) -> Engine {
        let mut e = Engine {
            me,
            rules: Vec::new(),
            window_ns,
            campaigns: Vec::new(),
        };
        e.set_policy(policy, window_ns);
        e
    }

    /// Follows a new policy; campaign counts restart when the rules change.
    pub fn set_policy(&mut self, policy: &ResponsePolicy, window_ns: u64) {
        if self.rules == policy.rules && self.window_ns == window_ns {
            return;
        }
        self.rules = policy.rules.clone();
        self.window_ns = window_ns;
        self.campaigns = self
            .rules
            .iter()
            .map(|r| (r.min_nodes >= 2).then(|| Correlator::new(r.min_nodes, window_ns, SETTLE_NS)))
            .collect();
    }

    /// The decisions `alert` makes at once (rules with `min_nodes = 1`);
    /// it is also counted for the campaign rules.
    pub fn observe(&mut self, alert: &Alert, now_ms: u64) -> Vec<Decision> {
        let Some(subject) = subject_of(alert) else {
            return Vec::new();
        };
        let b = &alert.body;
        let mut out = Vec::new();
        for (rule, campaign) in self.rules.iter().zip(self.campaigns.iter_mut()) {
            if !rule.matches(&b.rule, &b.severity) {
                continue;
            }
            match campaign {
                Some(c) => c.observe(alert),
                None if alert.origin == self.me => out.push(decision(
                    rule,
                    &self.me,
                    subject,
                    format!(
                        "{} ({}) against {subject} by {}",
                        b.rule, b.severity, b.technique
                    ),
                    vec![alert.id.clone()],
                    now_ms,
                )),
                None => {}
            }
        }
        out
    }

    /// The decisions of campaigns this node is to write at `now_ns`.
    pub fn ready(&mut self, now_ns: u64) -> Vec<Decision> {
        let now_ms = now_ns / 1_000_000;
        let mut out = Vec::new();
        for (rule, campaign) in self.rules.iter().zip(self.campaigns.iter_mut()) {
            let Some(c) = campaign else { continue };
            for Campaign {
                subject,
                references,
                ..
            } in c.ready(&self.me, now_ns)
            {
                let Ok(ip) = subject
                    .strip_prefix("source_ip:")
                    .unwrap_or(&subject)
                    .parse::<IpAddr>()
                else {
                    continue;
                };
                let subject = Subject::host(ip);
                out.push(decision(
                    rule,
                    &self.me,
                    subject,
                    format!(
                        "{} against {subject} reported by {} nodes",
                        rule.rule,
                        references.len()
                    ),
                    references.into_iter().map(|(_, id)| id).collect(),
                    now_ms,
                ));
            }
        }
        out
    }
}

fn decision(
    rule: &ResponseRule,
    me: &str,
    subject: Subject,
    reason: String,
    mut alerts: Vec<String>,
    now_ms: u64,
) -> Decision {
    alerts.truncate(super::decisions::MAX_ALERTS);
    let ms = u64::try_from(rule.duration().as_millis()).unwrap_or(u64::MAX);
    Decision {
        subject,
        action: rule.action(),
        reason,
        alerts,
        origin: format!("rule:{}@{me}", rule.rule),
        created_ms: now_ms,
        expires_ms: now_ms.saturating_add(ms),
    }
}
