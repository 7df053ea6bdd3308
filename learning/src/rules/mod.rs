//! Policy-driven rule detectors: events in, findings out, no I/O.
//!
//! [`RuleEngine::observe`] takes one event and returns what it completed.
//! Network rules keep per-entity state over tumbling windows of
//! `window_secs` (event time); each rule fires at most once per entity and
//! window, so an ongoing attack yields one finding per window, not a flood.
//! The SYN-flood rule counts over a short sliding window instead
//! (`flood_window_ms`), and also fires at most once per `window_secs`.
//! Users' Sigma rules (`sigma`, [`sigma`]) run beside them, stateless.

mod flood;
mod host;
mod network;
pub mod sigma;

use std::collections::HashSet;
use std::net::IpAddr;

use amoskys_sensors::{Event, EventBody};
use serde::{Deserialize, Serialize};

use crate::{Category, Finding, Severity, Subject};
pub use host::OwnSockets;

/// Thresholds and allow-lists of the rule detectors (part of the policy).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulePolicy {
    /// Width of the counting windows.
    pub window_secs: u64,
    /// Sources never reported by network rules (e.g. the monitoring host).
    pub allow_sources: Vec<IpAddr>,
    /// Distinct ports on one host from one source: vertical port scan.
    pub scan_min_ports: usize,
    /// Distinct hosts on one port from one source: horizontal port scan.
    pub scan_min_hosts: usize,
    /// Distinct unanswered UDP ports on one host from one source within a
    /// window: UDP port scan.
    pub udp_scan_min_ports: usize,
    /// The long window of the slow-scan rule.
    pub slow_scan_window_secs: u64,
    /// Distinct (host, port) a source failed to reach within the long
    /// window: a slow scan (one that stays under the per-window thresholds).
    pub slow_scan_min_targets: usize,
    /// Connection attempts without a handshake to one host:port within
    /// `flood_window_ms`: SYN flood.
    pub flood_min_syn: u64,
    /// At most this share of the attempts in the window may complete a
    /// handshake.
    pub flood_max_completed_ratio: f64,
    /// The sliding window of the SYN-flood rule, in milliseconds.
    pub flood_window_ms: u64,
    /// Service ports watched for brute force.
    pub brute_force_ports: Vec<u16>,
    /// Short connections from one source to one service within a window.
    pub brute_force_min_attempts: u64,
    /// A connection longer than this is a session, not an attempt.
    pub brute_force_max_secs: u64,
    /// Ports that may start listening without a finding.
    pub listen_allow_ports: Vec<u16>,
    /// Programs whose child shell is suspicious (network services).
    pub lineage_services: Vec<String>,
    /// Shell program names.
    pub lineage_shells: Vec<String>,
    /// Known-bad addresses (threat intel); traffic to or from them fires.
    pub ioc_addresses: Vec<IpAddr>,
    /// Quantile of the baseline windows' anomaly scores above which a
    /// window raises an anomaly finding (0.99: one baseline window in 100).
    pub anomaly_quantile: f64,
    /// Distinct nodes reporting one technique against one subject within
    /// `campaign_window_secs` that make a cross-site campaign alert.
    pub campaign_min_nodes: usize,
    pub campaign_window_secs: u64,
    /// How long a false-positive verdict on an alert suppresses its rule on
    /// its subject, from the verdict (0: it suppresses nothing).
    pub false_positive_suppress_secs: u64,
    /// Sigma rule texts (YAML, one or more documents each), see
    /// docs/RULES.md.
    pub sigma: Vec<String>,
}

impl Default for RulePolicy {
    fn default() -> Self {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect();
        Self {
            window_secs: 60,
            allow_sources: Vec::new(),
            scan_min_ports: 20,
            scan_min_hosts: 10,
            udp_scan_min_ports: 20,
            slow_scan_window_secs: 3_600,
            slow_scan_min_targets: 30,
            flood_min_syn: 200,
            flood_max_completed_ratio: 0.2,
            flood_window_ms: 1_000,
            brute_force_ports: vec![
                21, 22, 23, 25, 110, 143, 389, 445, 1433, 3306, 3389, 5432, 5900,
            ],
            brute_force_min_attempts: 5,
            brute_force_max_secs: 15,
            listen_allow_ports: Vec::new(),
            lineage_services: s(&[
                "nginx",
                "apache2",
                "httpd",
                "lighttpd",
                "php-fpm",
                "java",
                "tomcat",
                "node",
                "mysqld",
                "postgres",
                "redis-server",
                "named",
                "smbd",
                "vsftpd",
                "proftpd",
                "exim4",
                "postfix",
            ]),
            lineage_shells: s(&[
                "sh", "bash", "dash", "zsh", "ksh", "csh", "tcsh", "fish", "busybox",
            ]),
            ioc_addresses: Vec::new(),
            anomaly_quantile: 0.99,
            campaign_min_nodes: 3,
            campaign_window_secs: 600,
            false_positive_suppress_secs: 86_400,
            sigma: Vec::new(),
        }
    }
}

impl RulePolicy {
    /// Every problem, each with its key.
    pub fn validate(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !(1..=86_400).contains(&self.window_secs) {
            out.push(format!(
                "window_secs: {} is out of range (expected 1 to 86400)",
                self.window_secs
            ));
        }
        let max = crate::window::MAX_DISTINCT;
        for (key, v) in [
            ("scan_min_ports", self.scan_min_ports),
            ("scan_min_hosts", self.scan_min_hosts),
            ("udp_scan_min_ports", self.udp_scan_min_ports),
        ] {
            if !(2..=max).contains(&v) {
                out.push(format!("{key}: {v} is out of range (expected 2 to {max})"));
            }
        }
        if !(60..=7 * 86_400).contains(&self.slow_scan_window_secs) {
            out.push(format!(
                "slow_scan_window_secs: {} is out of range (expected 60 to 604800)",
                self.slow_scan_window_secs
            ));
        }
        if !(2..=1_000_000).contains(&self.slow_scan_min_targets) {
            out.push(format!(
                "slow_scan_min_targets: {} is out of range (expected 2 to 1000000)",
                self.slow_scan_min_targets
            ));
        }
        if !(2..=10_000_000).contains(&self.flood_min_syn) {
            out.push(format!(
                "flood_min_syn: {} is out of range (expected 2 to 10000000)",
                self.flood_min_syn
            ));
        }
        if !(100..=60_000).contains(&self.flood_window_ms) {
            out.push(format!(
                "flood_window_ms: {} is out of range (expected 100 to 60000)",
                self.flood_window_ms
            ));
        }
        if !(1..=86_400).contains(&self.brute_force_max_secs) {
            out.push(format!(
                "brute_force_max_secs: {} is out of range (expected 1 to 86400)",
                self.brute_force_max_secs
            ));
        }
        if !(0.0..=1.0).contains(&self.flood_max_completed_ratio) {
            out.push(format!(
                "flood_max_completed_ratio: {} is out of range (expected 0 to 1)",
                self.flood_max_completed_ratio
            ));
        }
        if !(0.5..=1.0).contains(&self.anomaly_quantile) {
            out.push(format!(
                "anomaly_quantile: {} is out of range (expected 0.5 to 1)",
                self.anomaly_quantile
            ));
        }
        if !(2..=1000).contains(&self.campaign_min_nodes) {
            out.push(format!(
                "campaign_min_nodes: {} is out of range (expected 2 to 1000)",
                self.campaign_min_nodes
            ));
        }
        if !(1..=86_400).contains(&self.campaign_window_secs) {
            out.push(format!(
                "campaign_window_secs: {} is out of range (expected 1 to 86400)",
                self.campaign_window_secs
            ));
        }
        if self.false_positive_suppress_secs > 2_592_000 {
            out.push(format!(
                "false_positive_suppress_secs: {} is out of range (expected 0 to 2592000)",
                self.false_positive_suppress_secs
            ));
        }
        if !(2..=1_000_000).contains(&self.brute_force_min_attempts) {
            out.push(format!(
                "brute_force_min_attempts: {} is out of range (expected 2 to 1000000)",
                self.brute_force_min_attempts
            ));
        }
        if let Err(problems) = sigma::SigmaRules::load(&self.sigma) {
            out.extend(problems.iter().map(ToString::to_string));
        }
        out
    }

    fn window_ns(&self) -> u64 {
        self.window_secs.saturating_mul(1_000_000_000)
    }

    fn slow_window_ns(&self) -> u64 {
        self.slow_scan_window_secs.saturating_mul(1_000_000_000)
    }
}

/// The rule detectors with their window state.
#[derive(Debug)]
pub struct RuleEngine {
    policy: RulePolicy,
    allow: HashSet<IpAddr>,
    ioc: HashSet<IpAddr>,
    net: network::NetworkRules,
    host: host::HostRules,
    sigma: sigma::SigmaRules,
}

impl RuleEngine {
    pub fn new(policy: RulePolicy) -> Self {
        Self {
            allow: policy.allow_sources.iter().copied().collect(),
            ioc: policy.ioc_addresses.iter().copied().collect(),
            net: network::NetworkRules::new(policy.window_ns(), policy.slow_window_ns()),
            host: host::HostRules::new(policy.window_ns()),
            sigma: sigma::SigmaRules::load_lenient(&policy.sigma).0,
            policy,
        }
    }

    /// Replaces the policy (a committed policy change applies live). Window
    /// state is kept when the window width is unchanged.
    pub fn set_policy(&mut self, policy: RulePolicy) {
        if policy.window_secs != self.policy.window_secs
            || policy.slow_scan_window_secs != self.policy.slow_scan_window_secs
            || policy.flood_window_ms != self.policy.flood_window_ms
        {
            self.net = network::NetworkRules::new(policy.window_ns(), policy.slow_window_ns());
            self.host.set_window(policy.window_ns());
        }
        self.allow = policy.allow_sources.iter().copied().collect();
        self.ioc = policy.ioc_addresses.iter().copied().collect();
        if policy.sigma != self.policy.sigma {
            let users = self.sigma.user_names().clone();
            self.sigma = sigma::SigmaRules::load_lenient(&policy.sigma).0;
            self.sigma.set_user_names(users);
        }
        self.policy = policy;
    }

    /// User names by uid, for the `User` field of Sigma rules.
    pub fn set_user_names(&mut self, users: std::collections::HashMap<u32, String>) {
        self.sigma.set_user_names(users);
    }

    /// The Sigma rules loaded from the policy.
    pub fn sigma(&self) -> &sigma::SigmaRules {
        &self.sigma
    }

    /// The node's own sockets: never reported as new listeners.
    pub fn set_own_sockets(&mut self, own: OwnSockets) {
        self.host.set_own(own);
    }

    /// TCP ports listening when the node started: the baseline, not new
    /// while they stay open (a listener that closes and opens again is).
    pub fn seed_listeners(&mut self, ports: impl IntoIterator<Item = u16>) {
        self.host.seed_listeners(ports);
    }

    /// Replaces the IOC addresses (threat intel changes live).
    pub fn set_iocs(&mut self, iocs: impl IntoIterator<Item = IpAddr>) {
        self.ioc = iocs.into_iter().collect();
    }

    pub fn policy(&self) -> &RulePolicy {
        &self.policy
    }

    /// Feeds one event; returns the findings it completed.
    pub fn observe(&mut self, event: &Event) -> Vec<Finding> {
        let mut out = Vec::new();
        let t = event.time_ns;
        match &event.body {
            EventBody::NetworkActivity(flow) => {
                self.ioc_check(t, flow.src, flow.dst, &mut out);
                if !self.allow.contains(&flow.src) {
                    self.net.observe(&self.policy, t, flow, &mut out);
                }
            }
            EventBody::SocketActivity(sock) => {
                if let Some(remote) = sock.remote {
                    self.ioc_check(t, sock.local.ip(), remote.ip(), &mut out);
                }
                self.host.socket(&self.policy, t, sock, &mut out);
            }
            EventBody::ProcessActivity(p) => self.host.process(&self.policy, t, p, &mut out),
            _ => {}
        }
        self.sigma.observe(event, &mut out);
        out
    }

    fn ioc_check(&mut self, time_ns: u64, a: IpAddr, b: IpAddr, out: &mut Vec<Finding>) {
        for (ioc, peer) in [(b, a), (a, b)] {
            if self.ioc.contains(&ioc) && self.net.first_in_window(time_ns, "ioc", ioc) {
                out.push(Finding {
                    time_ns,
                    rule: "ioc_address".into(),
                    category: Category::CommandAndControl,
                    technique: "T1071".into(),
                    severity: Severity::High,
                    score: 0.95,
                    subject: Subject::DestinationIp(ioc),
                    evidence: vec![
                        ("ioc".into(), ioc.to_string()),
                        ("peer".into(), peer.to_string()),
                    ],
                });
            }
        }
    }
}

#[cfg(test)]
mod tests;
