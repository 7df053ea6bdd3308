//! What a detector reports: a finding, before it becomes a signed alert.

use serde::{Deserialize, Serialize};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

/// MITRE ATT&CK tactic the finding belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Reconnaissance,
    CredentialAccess,
    Execution,
    Persistence,
    CommandAndControl,
    Impact,
    ResourceDevelopment,
    InitialAccess,
    PrivilegeEscalation,
    DefenseEvasion,
    Discovery,
    LateralMovement,
    Collection,
    Exfiltration,
    /// From the anomaly model: unusual, not matched to a technique.
    Anomaly,
}

/// The thing a finding is about. `Model` is one of the node's anomaly
/// models, by entity kind (`model_drift`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Subject {
    SourceIp(std::net::IpAddr),
    DestinationIp(std::net::IpAddr),
    Process { pid: i32, exe: String },
    Listener { port: u16 },
    Device(String),
    Host,
    Model(String),
}

/// One detection. Evidence is a short summary (counts, ports, names), never
/// a copy of raw events; the node's privacy policy filters it further.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Time of the event that completed the detection, ns since the epoch.
    pub time_ns: u64,
    /// Rule or model that fired, e.g. `port_scan_vertical`.
    pub rule: String,
    pub category: Category,
    /// MITRE ATT&CK technique id, e.g. `T1046`.
    pub technique: String,
    pub severity: Severity,
    /// Confidence in [0, 1].
    pub score: f64,
    pub subject: Subject,
    /// Ordered key/value facts.
    pub evidence: Vec<(String, String)>,
}
