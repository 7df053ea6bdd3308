//! Node configuration: serde structs, layered loading and validation.
//!
//! Layers, lowest first: the embedded [`DEFAULT_TOML`], an optional file,
//! `AMOSKYS_*` environment variables, and `--set key=value` overrides. They
//! are merged as TOML tables, then deserialised with unknown keys refused.
//! [`Config::validate`] then reports every semantic problem at once, each
//! with its key and the expected form.

mod load;
mod mqtt;
mod outputs;
mod validate;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use load::{CONFIG_FILE_ENV, ConfigError, SYSTEM_CONFIG_FILE, Source, default_file};
pub use mqtt::{MQTT_TOPIC_TOML, MqttSection, MqttTopicSection};
pub use outputs::{FACILITIES, MAX_OUTPUTS, OUTPUT_TOML, OutputSection};
pub use validate::Problem;
pub(crate) use validate::{host_port, is_dns_name};

/// The embedded default configuration.
pub const DEFAULT_TOML: &str = include_str!("default.toml");

/// Every key of one `[[sensors.snmp.devices]]` entry, with its default.
pub const SNMP_DEVICE_TOML: &str = include_str!("snmp_device.toml");

/// Prefix of environment overrides.
pub const ENV_PREFIX: &str = "AMOSKYS_";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[[outputs]]`: syslog, webhook and file outputs of alerts (first, so
    /// `outputs = []` renders before the tables).
    pub outputs: Vec<OutputSection>,
    pub node: NodeSection,
    pub log: LogSection,
    pub api: ApiSection,
    pub storage: StorageSection,
    pub detection: DetectionSection,
    pub learning: LearningSection,
    pub privacy: PrivacySection,
    pub mesh: MeshSection,
    pub cluster: ClusterSection,
    pub workspace: WorkspaceSection,
    pub sensors: SensorsSection,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    pub name: String,
    pub data_dir: String,
    pub event_queue: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    pub format: String,
    pub level: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSection {
    pub listen: String,
    /// Requests handled at once.
    pub max_connections: usize,
    /// Of `max_connections`, the slots only writes may take.
    pub write_reserve: usize,
    /// Open connections from one source address.
    pub max_connections_per_source: usize,
    /// A request's headers must arrive within this long (milliseconds).
    pub header_timeout_ms: u64,
    /// A request's body must arrive within this long (milliseconds).
    pub body_timeout_ms: u64,
    pub tls: TlsSection,
}

/// `[api.tls]`: TLS for the API (required off loopback).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    pub enabled: bool,
    /// PEM certificate chain; empty with `key_file`: self-signed.
    pub cert_file: String,
    /// PEM private key of `cert_file`.
    pub key_file: String,
    /// Extra DNS names or IP addresses of the self-signed certificate.
    pub names: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSection {
    pub event_retention_hours: u64,
    pub event_max_mb: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectionSection {
    pub enabled: bool,
    pub policy: String,
    pub suppress_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LearningSection {
    pub enabled: bool,
    pub window_secs: u64,
    pub baseline_hours: u64,
    pub retrain_hours: u64,
    pub min_windows: usize,
    pub max_windows: usize,
    pub model: String,
    pub epochs: usize,
    pub members: usize,
    pub seed: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacySection {
    pub addresses: String,
    pub salt: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeshSection {
    pub enabled: bool,
    pub listen: Vec<String>,
    pub bootstrap: Vec<String>,
    pub mdns: bool,
    pub kademlia: bool,
    pub quic: bool,
    pub admitted: Vec<String>,
    pub network_key_file: String,
    pub alert_window_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    pub init: String,
    pub heartbeat_ms: u64,
    pub election_min_ms: u64,
    pub election_max_ms: u64,
    pub snapshot_every: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceSection {
    pub sync_every_ms: u64,
    pub retention_days: u64,
    pub compact_above_kib: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensorsSection {
    pub procfs: ProcfsSection,
    pub flows: FlowsSection,
    pub snmp: SnmpSection,
    pub ebpf: EbpfSection,
    pub mqtt: MqttSection,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowsSection {
    pub enabled: bool,
    pub interfaces: Vec<String>,
    pub idle_timeout_ms: u64,
    pub active_timeout_ms: u64,
    pub max_flows: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnmpSection {
    pub enabled: bool,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub devices: Vec<SnmpDeviceSection>,
}

/// One polled device; keys absent from the file take the defaults of
/// [`SNMP_DEVICE_TOML`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SnmpDeviceSection {
    pub name: String,
    pub address: String,
    pub version: String,
    pub community: String,
    pub user: String,
    pub auth_protocol: String,
    pub auth_password: String,
    pub privacy_protocol: String,
    pub privacy_password: String,
}

impl Default for SnmpDeviceSection {
    fn default() -> Self {
        Self {
            name: String::new(),
            address: String::new(),
            version: "v2c".into(),
            community: String::new(),
            user: String::new(),
            auth_protocol: "sha".into(),
            auth_password: String::new(),
            privacy_protocol: "aes".into(),
            privacy_password: String::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EbpfSection {
    pub enabled: bool,
    pub watch_paths: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcfsSection {
    pub enabled: bool,
    pub interval_ms: u64,
    pub sockets: bool,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl Config {
    /// The embedded defaults alone.
    pub fn embedded_default() -> Result<Self, ConfigError> {
        Self::load(&[Source::Embedded])
    }

    /// The data directory: `node.data_dir`, or the platform default.
    pub fn data_dir(&self) -> PathBuf {
        if !self.node.data_dir.is_empty() {
            return PathBuf::from(&self.node.data_dir);
        }
        if is_root() {
            return PathBuf::from("/var/lib/amoskys");
        }
        let base = std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
            .unwrap_or_else(|| PathBuf::from("."));
        base.join("amoskys")
    }

    /// The API address. Call after [`Config::validate`] passed.
    pub fn api_listen(&self) -> Result<SocketAddr, Problem> {
        validate::socket_addr("api.listen", &self.api.listen)
    }

    pub fn log_format(&self) -> Result<LogFormat, Problem> {
        validate::log_format(&self.log.format)
    }

    pub fn procfs_interval(&self) -> Duration {
        Duration::from_millis(self.sensors.procfs.interval_ms)
    }

    pub fn event_retention(&self) -> Duration {
        Duration::from_secs(self.storage.event_retention_hours.saturating_mul(3600))
    }

    /// The rule policy: the file named by `detection.policy`, or defaults.
    pub fn rule_policy(&self) -> Result<amoskys_learning::RulePolicy, Problem> {
        if self.detection.policy.is_empty() {
            return Ok(amoskys_learning::RulePolicy::default());
        }
        let path = &self.detection.policy;
        let text = std::fs::read_to_string(path)
            .map_err(|e| Problem::new("detection.policy", format!("cannot read {path:?}: {e}")))?;
        let policy: amoskys_learning::RulePolicy = toml::from_str(&text).map_err(|e| {
            Problem::new(
                "detection.policy",
                format!("{path:?} is not a valid policy: {}", e.message()),
            )
        })?;
        let problems = policy.validate();
        if problems.is_empty() {
            Ok(policy)
        } else {
            Err(Problem::new(
                "detection.policy",
                format!("{path:?}: {}", problems.join("; ")),
            ))
        }
    }

    /// How the shared workspace runs.
    pub fn workspace_settings(&self) -> crate::workspace::Settings {
        let w = &self.workspace;
        crate::workspace::Settings {
            sync_every: std::time::Duration::from_millis(w.sync_every_ms),
            retention_ms: w.retention_days.saturating_mul(86_400_000),
            compact_above: usize::try_from(w.compact_above_kib.saturating_mul(1024))
                .unwrap_or(usize::MAX),
        }
    }

    /// The anomaly models' settings. Call after [`Config::validate`]
    /// passed; an unknown model kind falls back to the default.
    pub fn learning(&self) -> crate::models::LearningSettings {
        let l = &self.learning;
        crate::models::LearningSettings {
            window_ns: l.window_secs.saturating_mul(1_000_000_000),
            baseline_ns: l.baseline_hours.saturating_mul(3_600_000_000_000),
            retrain: (l.retrain_hours > 0)
                .then(|| std::time::Duration::from_secs(l.retrain_hours.saturating_mul(3600))),
            min_windows: l.min_windows,
            max_windows: l.max_windows,
            train: amoskys_learning::anomaly::TrainConfig {
                kind: l
                    .model
                    .parse()
                    .unwrap_or(amoskys_learning::anomaly::ModelKind::Auto),
                epochs: l.epochs,
                members: l.members,
                seed: l.seed,
                ..Default::default()
            },
            rules: Some(self.rule_policy().unwrap_or_default()),
            member_addresses: Default::default(),
        }
    }

    /// The admitted members' public keys. Call after [`Config::validate`]
    /// passed (invalid entries are skipped).
    pub fn mesh_admitted(&self) -> Vec<[u8; 32]> {
        self.mesh
            .admitted
            .iter()
            .filter_map(|k| parse_key_hex(k).ok())
            .collect()
    }

    /// The pre-shared network key, when a file is set.
    pub fn mesh_network_key(&self) -> Result<Option<[u8; 32]>, Problem> {
        let path = &self.mesh.network_key_file;
        if path.is_empty() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(path).map_err(|e| {
            Problem::new(
                "mesh.network_key_file",
                format!("cannot read {path:?}: {e}"),
            )
        })?;
        parse_key_hex(text.trim())
            .map(Some)
            .map_err(|e| Problem::new("mesh.network_key_file", format!("{path:?}: {e}")))
    }

    /// The SNMP devices to poll. Call after [`Config::validate`] passed;
    /// unknown protocol names fall back to the defaults (SHA, AES).
    pub fn snmp_devices(&self) -> Vec<amoskys_sensors::snmp::SnmpDevice> {
        use amoskys_sensors::snmp::{AuthProtocol, PrivProtocol, SnmpAuth, SnmpDevice};
        self.sensors
            .snmp
            .devices
            .iter()
            .map(|d| SnmpDevice {
                name: d.name.clone(),
                address: d.address.clone(),
                auth: if d.version == "v3" {
                    SnmpAuth::V3 {
                        user: d.user.clone(),
                        auth_protocol: match d.auth_protocol.as_str() {
                            "md5" => AuthProtocol::Md5,
                            "sha224" => AuthProtocol::Sha224,
                            "sha256" => AuthProtocol::Sha256,
                            "sha384" => AuthProtocol::Sha384,
                            "sha512" => AuthProtocol::Sha512,
                            _ => AuthProtocol::Sha1,
                        },
                        auth_password: d.auth_password.clone(),
                        privacy: match d.privacy_protocol.as_str() {
                            "none" => None,
                            "des" => Some((PrivProtocol::Des, d.privacy_password.clone())),
                            _ => Some((PrivProtocol::Aes128, d.privacy_password.clone())),
                        },
                    }
                } else {
                    SnmpAuth::V2c {
                        community: d.community.clone(),
                    }
                },
            })
            .collect()
    }

    /// The privacy policy for alert contents.
    pub fn privacy(&self) -> Result<crate::privacy::Privacy, Problem> {
        crate::policy::PrivacyPolicy {
            addresses: self.privacy.addresses.clone(),
            salt: self.privacy.salt.clone(),
        }
        .to_privacy()
        .map_err(|(key, msg)| Problem::new(&format!("privacy.{key}"), msg))
    }

    /// The node name: `node.name`, or the host name.
    pub fn node_name(&self) -> String {
        if !self.node.name.is_empty() {
            return self.node.name.clone();
        }
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "amoskys".to_owned())
    }
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// 32 bytes from 64 hex characters.
pub fn parse_key_hex(text: &str) -> Result<[u8; 32], String> {
    hex::decode(text)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| format!("{text:?} is not 64 hex characters (32 bytes)"))
}
