//! The `[response]` section of the replicated policy: which alerts become
//! decisions, and whether nodes enforce them. Pure.

use std::time::Duration;

use amoskys_mesh::alert::SEVERITIES;
use serde::{Deserialize, Serialize};

use super::decisions::{Action, MAX_DURATION_SECS, Subject};

/// Largest `response.max_decisions`.
pub const MAX_DECISIONS_MAX: usize = 100_000;
/// Largest `min_nodes` of a response rule.
pub const MIN_NODES_MAX: usize = 1000;
/// Most response rules.
pub const MAX_RULES: usize = 64;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResponsePolicy {
    /// `observe` (decisions recorded, nothing enforced) or `enforce`.
    pub mode: String,
    pub rules: Vec<ResponseRule>,
    /// CIDR blocks (or addresses) no decision may block, besides loopback,
    /// each node's own addresses and the members' addresses.
    pub never_block: Vec<String>,
    /// Most decisions a node enforces at once (the oldest first).
    pub max_decisions: usize,
    /// Whether a node removes its nftables table when it stops.
    pub remove_table_on_stop: bool,
}

impl Default for ResponsePolicy {
    fn default() -> Self {
        Self {
            mode: "observe".into(),
            rules: Vec::new(),
            never_block: Vec::new(),
            max_decisions: 10_000,
            remove_table_on_stop: true,
        }
    }
}

/// One rule: alerts of `rule` (or of `rule_*`) at `min_severity` or
/// above, reported by `min_nodes` distinct nodes, make a decision of
/// `action` against the alert's subject for `duration`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseRule {
    pub rule: String,
    #[serde(default = "medium")]
    pub min_severity: String,
    #[serde(default = "one")]
    pub min_nodes: usize,
    #[serde(default = "block_source")]
    pub action: String,
    /// A duration such as `90s`, `30m`, `1h`.
    pub duration: String,
}

fn medium() -> String {
    "medium".into()
}

fn one() -> usize {
    1
}

fn block_source() -> String {
    "block_source".into()
}

fn severity_rank(s: &str) -> Option<usize> {
    SEVERITIES.iter().position(|x| *x == s)
}

/// `text` as a decision's duration (1 s to 30 days).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text.trim())
        .map_err(|e| format!("{text:?} is not a duration such as 90s, 30m or 1h ({e})"))?;
    if d < Duration::from_secs(1) || d.as_secs() > MAX_DURATION_SECS {
        return Err(format!("{text:?} is out of range (expected 1s to 30d)"));
    }
    Ok(d)
}

impl ResponseRule {
    /// Whether an alert of `rule` at `severity` is one this rule counts.
    pub fn matches(&self, rule: &str, severity: &str) -> bool {
        let named = rule == self.rule
            || rule
                .strip_prefix(self.rule.as_str())
                .is_some_and(|rest| rest.starts_with('_'));
        named
            && match (severity_rank(severity), severity_rank(&self.min_severity)) {
                (Some(got), Some(min)) => got >= min,
                _ => false,
            }
    }

    pub fn duration(&self) -> Duration {
        parse_duration(&self.duration).unwrap_or(Duration::from_secs(3600))
    }

    pub fn action(&self) -> Action {
        self.action.parse().unwrap_or(Action::BlockSource)
    }
}

impl ResponsePolicy {
    pub fn enforce(&self) -> bool {
        self.mode == "enforce"
    }

    /// Valid `never_block` entries.
    pub fn never_block(&self) -> Vec<Subject> {
        self.never_block
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect()
    }

    /// Every problem, each with its key under `response.`.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !["observe", "enforce"].contains(&self.mode.as_str()) {
            out.push(format!(
                "response.mode: {:?} is not \"observe\" or \"enforce\"",
                self.mode
            ));
        }
        if !(1..=MAX_DECISIONS_MAX).contains(&self.max_decisions) {
            out.push(format!(
                "response.max_decisions: {} is out of range (expected 1 to {MAX_DECISIONS_MAX})",
                self.max_decisions
            ));
        }
        if self.rules.len() > MAX_RULES {
            out.push(format!(
                "response.rules: {} rules are over {MAX_RULES}",
                self.rules.len()
            ));
        }
        for (i, s) in self.never_block.iter().enumerate() {
            if let Err(e) = s.parse::<Subject>() {
                out.push(format!("response.never_block[{i}]: {e}"));
            }
        }
        for (i, r) in self.rules.iter().enumerate() {
            let at = format!("response.rules[{i}]");
            if r.rule.trim().is_empty() || r.rule.len() > 64 {
                out.push(format!("{at}.rule: expected a rule name of 1 to 64 bytes"));
            }
            if severity_rank(&r.min_severity).is_none() {
                out.push(format!(
                    "{at}.min_severity: {:?} is not one of {}",
                    r.min_severity,
                    SEVERITIES.join(", ")
                ));
            }
            if !(1..=MIN_NODES_MAX).contains(&r.min_nodes) {
                out.push(format!(
                    "{at}.min_nodes: {} is out of range (expected 1 to {MIN_NODES_MAX})",
                    r.min_nodes
                ));
            }
            if let Err(e) = r.action.parse::<Action>() {
                out.push(format!("{at}.action: {e}"));
            }
            if let Err(e) = parse_duration(&r.duration) {
                out.push(format!("{at}.duration: {e}"));
            }
        }
        out
    }
}
