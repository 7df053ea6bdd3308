//! The cluster policy: one TOML document replicated through Raft, in force
//! on every node without a restart.
//!
//! Sections: `[rules]` (detection thresholds and allow-lists, the
//! correlation k), `[privacy]` (how addresses appear in alerts),
//! `[learning]` (the retraining schedule, federated rounds, model drift,
//! the supervised head the analysts' verdicts train),
//! `[membership]` (voter count, promotion, keys admitted on request) and
//! `[governance]` (how many nodes' admins must approve a policy change, a
//! member removal or a model activation) and `[response]` (alerts turned
//! into decisions, enforced or only recorded: [`crate::response`]). Before
//! a cluster has committed a policy, each node runs the one its
//! configuration gives.

use amoskys_consensus::{GovernancePolicy, MembershipPolicy, NodeId};
use amoskys_learning::RulePolicy;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::privacy::{Addresses, Privacy};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    pub rules: RulePolicy,
    pub privacy: PrivacyPolicy,
    pub learning: LearningPolicy,
    pub membership: MembershipSection,
    pub governance: GovernancePolicy,
    pub response: crate::response::ResponsePolicy,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacyPolicy {
    /// "keep" or "hash".
    pub addresses: String,
    /// Salt for "hash", at least 16 characters.
    pub salt: String,
}

impl PrivacyPolicy {
    /// The privacy filter, or the key at fault and why.
    pub fn to_privacy(&self) -> Result<Privacy, (&'static str, String)> {
        let addresses = match self.addresses.as_str() {
            "keep" => Addresses::Keep,
            "hash" if self.salt.len() >= 16 => Addresses::Hash {
                salt: self.salt.clone(),
            },
            "hash" => {
                return Err((
                    "salt",
                    "expected at least 16 characters when addresses is \"hash\"".into(),
                ));
            }
            other => {
                return Err((
                    "addresses",
                    format!("{other:?} is not \"keep\" or \"hash\""),
                ));
            }
        };
        Ok(Privacy { addresses })
    }
}

impl Default for PrivacyPolicy {
    fn default() -> Self {
        Self {
            addresses: "keep".into(),
            salt: String::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LearningPolicy {
    /// Hours between scheduled local retraining; 0 trains only on request.
    pub retrain_hours: u64,
    /// Minutes between federated rounds the leader starts for each kind
    /// below; 0 starts them only on request (`amoskys learn round`).
    pub federated_every_minutes: u64,
    pub federated_kinds: Vec<String>,
    pub federated_rule: amoskys_learning::federated::Rule,
    pub federated_epochs: usize,
    pub federated_deadline_secs: u64,
    pub federated_min_participants: usize,
    /// Clipping and noise of every update (none: off).
    pub federated_dp: Option<amoskys_learning::federated::DpConfig>,
    /// PSI of a model's live scores against its training scores at which
    /// a drift episode starts (`model_drift`, [`crate::drift`]).
    pub drift_threshold: f64,
    /// Live windows of a kind held before the statistic is computed.
    pub drift_min_windows: usize,
    /// The sliding window: the last this many live windows of a kind.
    pub drift_windows: usize,
    /// What a drift episode does besides the alert: `alert` (nothing
    /// more), `retrain` (local training) or `federated_round`.
    pub drift_action: String,
    /// The supervised head the analysts' verdicts train
    /// ([`crate::verdicts`]): `off`, `local` (this node's verdicts) or
    /// `federated` (the registry's head, combined from every site's).
    pub head: String,
    /// Verdicts of each class before the head re-ranks anything.
    pub head_min_per_class: u64,
}

impl Default for LearningPolicy {
    fn default() -> Self {
        Self {
            retrain_hours: 24,
            federated_every_minutes: 0,
            federated_kinds: ["source", "host", "process", "device"]
                .map(String::from)
                .to_vec(),
            federated_rule: amoskys_learning::federated::Rule::FedAvg,
            federated_epochs: 2,
            federated_deadline_secs: 300,
            federated_min_participants: 1,
            federated_dp: None,
            drift_threshold: 0.25,
            drift_min_windows: 200,
            drift_windows: 1000,
            drift_action: "retrain".into(),
            head: "local".into(),
            head_min_per_class: 10,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MembershipSection {
    /// Voters kept when there are enough members (odd: 3 or 5).
    pub voters: usize,
    /// Replace a silent voter with a caught-up learner.
    pub auto_promote: bool,
    pub voter_down_secs: u64,
    /// Keys (peer ids or 64 hex digits) admitted as soon as they ask to
    /// join, besides `mesh.admitted` of each node's configuration.
    pub auto_admit: Vec<String>,
}

impl Default for MembershipSection {
    fn default() -> Self {
        let d = MembershipPolicy::default();
        Self {
            voters: d.voters,
            auto_promote: d.auto_promote,
            voter_down_secs: d.voter_down_secs,
            auto_admit: Vec::new(),
        }
    }
}

/// Largest voter set a policy may ask for.
const MAX_VOTERS: usize = 9;
/// Ranges of the numeric `[learning]` and `[membership]` keys (docs/API.md
/// lists them with the `[rules]` ones).
pub const RETRAIN_HOURS_MAX: u64 = 24 * 365;
pub const FEDERATED_EVERY_MINUTES_MAX: u64 = 60 * 24 * 365;
pub const EPOCHS_MAX: usize = 1000;
pub const DEADLINE_SECS_MAX: u64 = 86_400;
pub const MIN_PARTICIPANTS_MAX: usize = 1000;
pub const VOTER_DOWN_SECS_MAX: u64 = 86_400;
pub const DRIFT_THRESHOLD_RANGE: (f64, f64) = (0.01, 10.0);
pub const DRIFT_WINDOWS_RANGE: (usize, usize) = (10, 100_000);
/// The values of `learning.drift_action`.
pub const DRIFT_ACTIONS: [&str; 3] = ["alert", "retrain", "federated_round"];
/// The values of `learning.head`.
pub const HEAD_MODES: [&str; 3] = ["off", "local", "federated"];
pub const HEAD_MIN_PER_CLASS_MAX: u64 = 100_000;
/// Largest `byzantine` and `select` of a robust aggregation rule.
pub const RULE_PEERS_MAX: usize = 1000;

/// What is wrong with an aggregation rule's parameters.
pub fn rule_problems(rule: &amoskys_learning::federated::Rule) -> Vec<String> {
    use amoskys_learning::federated::Rule;
    let mut out = Vec::new();
    match *rule {
        Rule::FedAvg | Rule::Median => {}
        Rule::TrimmedMean { trim } => {
            if !(0.0..0.5).contains(&trim) {
                out.push(format!(
                    "trim: {trim} is out of range (expected 0 to below 0.5)"
                ));
            }
        }
        Rule::Krum { byzantine } => {
            if byzantine > RULE_PEERS_MAX {
                out.push(format!(
                    "byzantine: {byzantine} is out of range (expected 0 to {RULE_PEERS_MAX})"
                ));
            }
        }
        Rule::MultiKrum { byzantine, select } => {
            if byzantine > RULE_PEERS_MAX {
                out.push(format!(
                    "byzantine: {byzantine} is out of range (expected 0 to {RULE_PEERS_MAX})"
                ));
            }
            // 0: the node picks participants - 2 * byzantine.
            if select > RULE_PEERS_MAX {
                out.push(format!(
                    "select: {select} is out of range (expected 0 to {RULE_PEERS_MAX})"
                ));
            }
        }
    }
    out
}

/// `value` within `min..=max`, else the problem naming `key`.
pub fn in_range<T: PartialOrd + std::fmt::Display>(
    key: &str,
    value: T,
    min: T,
    max: T,
) -> Result<(), String> {
    if value >= min && value <= max {
        Ok(())
    } else {
        Err(format!(
            "{key}: {value} is out of range (expected {min} to {max})"
        ))
    }
}

impl Policy {
    /// The policy a node's configuration gives, in force until the cluster
    /// commits one.
    pub fn from_config(config: &Config) -> Result<Policy, crate::config::Problem> {
        Ok(Policy {
            rules: config.rule_policy()?,
            privacy: PrivacyPolicy {
                addresses: config.privacy.addresses.clone(),
                salt: config.privacy.salt.clone(),
            },
            learning: LearningPolicy {
                retrain_hours: config.learning.retrain_hours,
                ..LearningPolicy::default()
            },
            membership: MembershipSection::default(),
            governance: GovernancePolicy::default(),
            response: crate::response::ResponsePolicy::default(),
        })
    }

    /// Parses and validates a document; the error lists every problem.
    pub fn parse(text: &str) -> Result<Policy, String> {
        let policy: Policy = toml::from_str(text).map_err(|e| e.message().to_owned())?;
        let problems = policy.validate();
        if problems.is_empty() {
            Ok(policy)
        } else {
            Err(problems.join("; "))
        }
    }

    pub fn validate(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .rules
            .validate()
            .into_iter()
            .map(|p| format!("rules.{p}"))
            .collect();
        if let Err(e) = self.privacy() {
            out.push(e);
        }
        let l = &self.learning;
        for (i, k) in l.federated_kinds.iter().enumerate() {
            if let Err(e) = k.parse::<amoskys_learning::features::EntityKind>() {
                out.push(format!("learning.federated_kinds[{i}]: {e}"));
            }
        }
        let m = &self.membership;
        out.extend(
            [
                in_range(
                    "learning.retrain_hours",
                    l.retrain_hours,
                    0,
                    RETRAIN_HOURS_MAX,
                ),
                in_range(
                    "learning.federated_every_minutes",
                    l.federated_every_minutes,
                    0,
                    FEDERATED_EVERY_MINUTES_MAX,
                ),
                in_range(
                    "learning.federated_epochs",
                    l.federated_epochs,
                    1,
                    EPOCHS_MAX,
                ),
                in_range(
                    "learning.federated_deadline_secs",
                    l.federated_deadline_secs,
                    1,
                    DEADLINE_SECS_MAX,
                ),
                in_range(
                    "learning.federated_min_participants",
                    l.federated_min_participants,
                    1,
                    MIN_PARTICIPANTS_MAX,
                ),
                in_range(
                    "learning.drift_threshold",
                    l.drift_threshold,
                    DRIFT_THRESHOLD_RANGE.0,
                    DRIFT_THRESHOLD_RANGE.1,
                ),
                in_range(
                    "learning.drift_min_windows",
                    l.drift_min_windows,
                    DRIFT_WINDOWS_RANGE.0,
                    DRIFT_WINDOWS_RANGE.1,
                ),
                in_range(
                    "learning.drift_windows",
                    l.drift_windows,
                    l.drift_min_windows.max(DRIFT_WINDOWS_RANGE.0),
                    DRIFT_WINDOWS_RANGE.1,
                ),
                in_range(
                    "learning.head_min_per_class",
                    l.head_min_per_class,
                    1,
                    HEAD_MIN_PER_CLASS_MAX,
                ),
                in_range("membership.voters", m.voters, 1, MAX_VOTERS),
                in_range(
                    "membership.voter_down_secs",
                    m.voter_down_secs,
                    1,
                    VOTER_DOWN_SECS_MAX,
                ),
            ]
            .into_iter()
            .filter_map(Result::err),
        );
        if !DRIFT_ACTIONS.contains(&l.drift_action.as_str()) {
            out.push(format!(
                "learning.drift_action: {:?} is not \"alert\", \"retrain\" or \"federated_round\"",
                l.drift_action
            ));
        }
        if !HEAD_MODES.contains(&l.head.as_str()) {
            out.push(format!(
                "learning.head: {:?} is not \"off\", \"local\" or \"federated\"",
                l.head
            ));
        }
        out.extend(
            rule_problems(&l.federated_rule)
                .into_iter()
                .map(|p| format!("learning.federated_rule.{p}")),
        );
        if let Some(dp) = &l.federated_dp {
            out.extend(
                dp.problems()
                    .into_iter()
                    .map(|p| format!("learning.federated_dp: {p}")),
            );
        }
        out.extend(self.governance.problems());
        out.extend(self.response.problems());
        for (i, k) in self.membership.auto_admit.iter().enumerate() {
            if let Err(e) = NodeId::parse(k) {
                out.push(format!("membership.auto_admit[{i}]: {e}"));
            }
        }
        out
    }

    pub fn privacy(&self) -> Result<Privacy, String> {
        self.privacy
            .to_privacy()
            .map_err(|(key, msg)| format!("privacy.{key}: {msg}"))
    }

    pub fn membership(&self) -> MembershipPolicy {
        MembershipPolicy {
            voters: self.membership.voters,
            auto_promote: self.membership.auto_promote,
            voter_down_secs: self.membership.voter_down_secs,
        }
    }

    /// Valid `membership.auto_admit` keys.
    pub fn auto_admit(&self) -> Vec<NodeId> {
        self.membership
            .auto_admit
            .iter()
            .filter_map(|k| NodeId::parse(k).ok())
            .collect()
    }

    pub fn retrain(&self) -> Option<std::time::Duration> {
        (self.learning.retrain_hours > 0).then(|| {
            std::time::Duration::from_secs(self.learning.retrain_hours.saturating_mul(3600))
        })
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }
}

/// The policy a node runs, and where it came from.
#[derive(Debug, Clone, Serialize)]
pub struct InForce {
    pub policy: Policy,
    /// The committed version; `None` while the configuration's applies.
    pub version: Option<u64>,
    /// A committed version this node could not apply (it keeps the last
    /// good one).
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_policy_round_trips_and_bad_documents_name_every_problem() {
        let text = Policy::default().to_toml();
        assert_eq!(Policy::parse(&text), Ok(Policy::default()));
        let partial = "[rules]\nscan_min_ports = 10\n";
        assert_eq!(
            Policy::parse(partial).map(|p| p.rules.scan_min_ports),
            Ok(10)
        );
        let bad =
            "[membership]\nvoters = 0\nauto_admit = [\"nope\"]\n[privacy]\naddresses = \"hash\"\n";
        let err = Policy::parse(bad).expect_err("invalid");
        for key in [
            "membership.voters",
            "membership.auto_admit[0]",
            "privacy.salt",
        ] {
            assert!(err.contains(key), "{err}");
        }
        let fed = "[learning]\nfederated_every_minutes = 60\nfederated_rule = { rule = \"multi_krum\", byzantine = 1, select = 3 }\n";
        let p = Policy::parse(fed).expect("a federated schedule");
        assert_eq!(
            p.learning.federated_rule,
            amoskys_learning::federated::Rule::MultiKrum {
                byzantine: 1,
                select: 3
            }
        );
        let bad =
            Policy::parse("[learning]\nfederated_kinds = [\"toaster\"]\n").expect_err("bad kind");
        assert!(bad.contains("learning.federated_kinds[0]"), "{bad}");
        let huge = u64::MAX;
        let err = Policy::parse(&format!(
            "[learning]\nretrain_hours = {huge}\nfederated_every_minutes = {huge}\nfederated_min_participants = {huge}\nfederated_rule = {{ rule = \"multi_krum\", byzantine = {huge}, select = {huge} }}\n[membership]\nvoter_down_secs = {huge}\n"
        ))
        .expect_err("huge values");
        for key in [
            "learning.retrain_hours",
            "learning.federated_every_minutes",
            "learning.federated_min_participants",
            "learning.federated_rule.byzantine",
            "learning.federated_rule.select",
            "membership.voter_down_secs",
        ] {
            assert!(err.contains(&format!("{key}: ")), "{key} in {err}");
        }
        let gov = Policy::parse("[governance]\napprovals = 2\nproposal_ttl_secs = 600\n")
            .expect("a governance section");
        assert_eq!(
            (gov.governance.approvals, gov.governance.proposal_ttl_secs),
            (2, 600)
        );
        let err = Policy::parse("[governance]\napprovals = 0\nproposal_ttl_secs = 0\n")
            .expect_err("out of range");
        for key in ["governance.approvals: ", "governance.proposal_ttl_secs: "] {
            assert!(err.contains(key), "{key} in {err}");
        }
        let err = Policy::parse(
            "[learning]\ndrift_threshold = nan\ndrift_min_windows = 500\ndrift_windows = 100\ndrift_action = \"panic\"\n",
        )
        .expect_err("bad drift keys");
        for key in [
            "learning.drift_threshold: ",
            "learning.drift_windows: ",
            "learning.drift_action: ",
        ] {
            assert!(err.contains(key), "{key} in {err}");
        }
        let drift = Policy::parse("[learning]\ndrift_action = \"federated_round\"\n")
            .expect("a drift action");
        assert_eq!(drift.learning.drift_threshold, 0.25);
        let err = Policy::parse("[learning]\nhead = \"on\"\nhead_min_per_class = 0\n")
            .expect_err("bad head keys");
        for key in ["learning.head: ", "learning.head_min_per_class: "] {
            assert!(err.contains(key), "{key} in {err}");
        }
        let unknown = Policy::parse("[rules]\nno_such_key = 1\n").expect_err("unknown key");
        assert!(unknown.contains("no_such_key"), "{unknown}");
    }
}
