//! Semantic checks: every problem is reported with its key and the form that
//! was expected, and the node refuses to start while any remains.

use std::fmt;
use std::net::SocketAddr;

use super::{Config, LogFormat};

/// One thing wrong with a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key, with `[i]` for list items, e.g. `mesh.listen[1]`.
    pub key: String,
    pub message: String,
}

impl Problem {
    pub fn new(key: &str, message: String) -> Self {
        Self {
            key: key.to_owned(),
            message,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

impl std::error::Error for Problem {}

impl Config {
    /// Every problem in the configuration; empty when it is valid.
    pub fn validate(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut check = |r: Result<(), Problem>| {
            if let Err(p) = r {
                out.push(p);
            }
        };
        check(range(
            "node.event_queue",
            self.node.event_queue as u64,
            1,
            10_000_000,
        ));
        if self.node.data_dir.contains('\0') {
            check(Err(Problem::new(
                "node.data_dir",
                "contains a NUL byte".into(),
            )));
        }
        check(log_format(&self.log.format).map(drop));
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            check(Err(Problem::new(
                "log.level",
                format!(
                    "{:?} is not a log filter ({e}); expected a level such as \"info\" or directives such as \"info,amoskys_node=debug\"",
                    self.log.level
                ),
            )));
        }
        check(socket_addr("api.listen", &self.api.listen).map(drop));
        for p in api_tls(&self.api) {
            check(Err(p));
        }
        check(self.rule_policy().map(drop));
        check(self.privacy().map(drop));
        check(range(
            "detection.suppress_secs",
            self.detection.suppress_secs,
            0,
            86_400,
        ));
        let l = &self.learning;
        check(range("learning.window_secs", l.window_secs, 1, 86_400));
        check(range(
            "learning.baseline_hours",
            l.baseline_hours,
            1,
            24 * 365 * 10,
        ));
        check(range(
            "learning.retrain_hours",
            l.retrain_hours,
            0,
            24 * 365,
        ));
        check(range(
            "learning.min_windows",
            l.min_windows as u64,
            2,
            10_000_000,
        ));
        check(range(
            "learning.max_windows",
            l.max_windows as u64,
            l.min_windows.max(2) as u64,
            10_000_000,
        ));
        check(range("learning.epochs", l.epochs as u64, 1, 10_000));
        check(range("learning.members", l.members as u64, 1, 32));
        if let Err(e) = l.model.parse::<amoskys_learning::anomaly::ModelKind>() {
            check(Err(Problem::new("learning.model", e)));
        }
        check(range(
            "api.max_connections",
            self.api.max_connections as u64,
            1,
            10_000,
        ));
        if self.api.max_connections >= 1 {
            // Less than max_connections: reads always keep a slot.
            check(range(
                "api.write_reserve",
                self.api.write_reserve as u64,
                0,
                self.api.max_connections as u64 - 1,
            ));
        }
        check(range(
            "api.max_connections_per_source",
            self.api.max_connections_per_source as u64,
            1,
            10_000,
        ));
        check(range(
            "api.header_timeout_ms",
            self.api.header_timeout_ms,
            100,
            600_000,
        ));
        check(range(
            "api.body_timeout_ms",
            self.api.body_timeout_ms,
            100,
            600_000,
        ));
        check(range(
            "storage.event_retention_hours",
            self.storage.event_retention_hours,
            1,
            24 * 365 * 10,
        ));
        if self.mesh.listen.is_empty() {
            check(Err(Problem::new(
                "mesh.listen",
                "is empty; expected at least one IP:PORT".into(),
            )));
        }
        for (i, addr) in self.mesh.listen.iter().enumerate() {
            check(socket_addr(&format!("mesh.listen[{i}]"), addr).map(drop));
        }
        for (i, addr) in self.mesh.bootstrap.iter().enumerate() {
            check(host_port(&format!("mesh.bootstrap[{i}]"), addr));
        }
        for (i, key) in self.mesh.admitted.iter().enumerate() {
            if let Err(e) = super::parse_key_hex(key) {
                check(Err(Problem::new(&format!("mesh.admitted[{i}]"), e)));
            }
        }
        check(self.mesh_network_key().map(drop));
        let c = &self.cluster;
        if c.init != "auto" && c.init != "manual" {
            check(Err(Problem::new(
                "cluster.init",
                format!("{:?} is not \"auto\" or \"manual\"", c.init),
            )));
        }
        check(range("cluster.heartbeat_ms", c.heartbeat_ms, 10, 10_000));
        let (lo, hi) = (c.election_min_ms, c.election_max_ms);
        if lo <= c.heartbeat_ms.saturating_mul(2) || hi <= lo || hi > 60_000 {
            check(Err(Problem::new(
                "cluster.election_min_ms",
                format!(
                    "{lo}..{hi} (election_min_ms..election_max_ms) is not a range above twice the heartbeat ({} ms) and at most 60000",
                    c.heartbeat_ms
                ),
            )));
        }
        check(range(
            "cluster.snapshot_every",
            c.snapshot_every,
            10,
            10_000_000,
        ));
        let w = &self.workspace;
        check(range(
            "workspace.sync_every_ms",
            w.sync_every_ms,
            100,
            3_600_000,
        ));
        check(range(
            "workspace.retention_days",
            w.retention_days,
            1,
            3_650,
        ));
        check(range(
            "workspace.compact_above_kib",
            w.compact_above_kib,
            16,
            1 << 20,
        ));
        check(range(
            "mesh.alert_window_secs",
            self.mesh.alert_window_secs,
            10,
            7 * 86_400,
        ));
        check(range(
            "sensors.procfs.interval_ms",
            self.sensors.procfs.interval_ms,
            10,
            600_000,
        ));
        self.validate_sensors(&mut out);
        out.extend(super::outputs::validate(&self.outputs));
        out.extend(self.sensors.mqtt.validate());
        out
    }

    fn validate_sensors(&self, out: &mut Vec<Problem>) {
        let mut check = |r: Result<(), Problem>| {
            if let Err(p) = r {
                out.push(p);
            }
        };
        let flows = &self.sensors.flows;
        for (i, name) in flows.interfaces.iter().enumerate() {
            if name.is_empty() || name.len() > 15 || name.contains(['/', ' ']) {
                check(Err(Problem::new(
                    &format!("sensors.flows.interfaces[{i}]"),
                    format!(
                        "{name:?} is not an interface name (expected e.g. \"eth0\", at most 15 characters)"
                    ),
                )));
            }
        }
        check(range(
            "sensors.flows.idle_timeout_ms",
            flows.idle_timeout_ms,
            100,
            3_600_000,
        ));
        check(range(
            "sensors.flows.active_timeout_ms",
            flows.active_timeout_ms,
            1_000,
            86_400_000,
        ));
        if flows.active_timeout_ms < flows.idle_timeout_ms {
            check(Err(Problem::new(
                "sensors.flows.active_timeout_ms",
                format!(
                    "{} is shorter than sensors.flows.idle_timeout_ms ({}); expected at least as long",
                    flows.active_timeout_ms, flows.idle_timeout_ms
                ),
            )));
        }
        check(range(
            "sensors.flows.max_flows",
            flows.max_flows as u64,
            16,
            10_000_000,
        ));

        let snmp = &self.sensors.snmp;
        check(range(
            "sensors.snmp.interval_ms",
            snmp.interval_ms,
            100,
            86_400_000,
        ));
        check(range(
            "sensors.snmp.timeout_ms",
            snmp.timeout_ms,
            10,
            60_000,
        ));
        if snmp.timeout_ms >= snmp.interval_ms {
            check(Err(Problem::new(
                "sensors.snmp.timeout_ms",
                format!(
                    "{} is not shorter than sensors.snmp.interval_ms ({})",
                    snmp.timeout_ms, snmp.interval_ms
                ),
            )));
        }
        let mut names = std::collections::HashSet::new();
        for (i, d) in snmp.devices.iter().enumerate() {
            let key = |k: &str| format!("sensors.snmp.devices[{i}].{k}");
            if d.name.is_empty() {
                check(Err(Problem::new(
                    &key("name"),
                    "is empty; expected a unique device name".into(),
                )));
            } else if !names.insert(d.name.as_str()) {
                check(Err(Problem::new(
                    &key("name"),
                    format!("{:?} is used by another device", d.name),
                )));
            }
            check(host_port(&key("address"), &d.address));
            let secret = |k: &str, v: &str| {
                if v.len() < 8 {
                    Err(Problem::new(
                        &key(k),
                        "expected at least 8 characters".into(),
                    ))
                } else {
                    Ok(())
                }
            };
            match d.version.as_str() {
                "v2c" if d.community.is_empty() => check(Err(Problem::new(
                    &key("community"),
                    "is empty; v2c needs a community".into(),
                ))),
                "v2c" => {}
                "v3" => {
                    if d.user.is_empty() {
                        check(Err(Problem::new(
                            &key("user"),
                            "is empty; v3 needs a user".into(),
                        )));
                    }
                    if !["md5", "sha", "sha224", "sha256", "sha384", "sha512"]
                        .contains(&d.auth_protocol.as_str())
                    {
                        check(Err(Problem::new(
                            &key("auth_protocol"),
                            format!(
                                "{:?} is not one of md5, sha, sha224, sha256, sha384, sha512",
                                d.auth_protocol
                            ),
                        )));
                    }
                    check(secret("auth_password", &d.auth_password));
                    match d.privacy_protocol.as_str() {
                        "none" => {}
                        "des" | "aes" => check(secret("privacy_password", &d.privacy_password)),
                        other => check(Err(Problem::new(
                            &key("privacy_protocol"),
                            format!("{other:?} is not one of none, des, aes"),
                        ))),
                    }
                }
                other => check(Err(Problem::new(
                    &key("version"),
                    format!("{other:?} is not \"v2c\" or \"v3\""),
                ))),
            }
        }

        use amoskys_sensors::ebpf::{MAX_WATCH_PATH_LEN, MAX_WATCH_PATHS};
        let watch = &self.sensors.ebpf.watch_paths;
        if watch.len() > MAX_WATCH_PATHS {
            check(Err(Problem::new(
                "sensors.ebpf.watch_paths",
                format!(
                    "has {} paths; the kernel filter takes at most {MAX_WATCH_PATHS}",
                    watch.len()
                ),
            )));
        }
        for (i, path) in watch.iter().enumerate() {
            if !path.starts_with('/') || path.len() > MAX_WATCH_PATH_LEN {
                check(Err(Problem::new(
                    &format!("sensors.ebpf.watch_paths[{i}]"),
                    format!(
                        "{path:?} is not an absolute path of at most {MAX_WATCH_PATH_LEN} bytes"
                    ),
                )));
            }
        }
    }
}

pub(super) fn socket_addr(key: &str, value: &str) -> Result<SocketAddr, Problem> {
    value.parse().map_err(|_| {
        Problem::new(
            key,
            format!("{value:?} is not a socket address (expected IP:PORT, e.g. 127.0.0.1:7300 or [::1]:7300)"),
        )
    })
}

/// Most extra names of a self-signed API certificate (`api.tls.names`).
const MAX_TLS_NAMES: usize = 32;

/// `[api.tls]`, and the rule that a non-loopback `api.listen` needs TLS.
fn api_tls(api: &super::ApiSection) -> Vec<Problem> {
    let tls = &api.tls;
    let mut out = Vec::new();
    if let Ok(addr) = api.listen.parse::<SocketAddr>()
        && !addr.ip().is_loopback()
        && !tls.enabled
    {
        out.push(Problem::new(
            "api.listen",
            format!(
                "{} is not a loopback address and api.tls.enabled is false: requests and \
                 credentials would cross the network in clear text; set api.tls.enabled = true \
                 (a self-signed certificate, or api.tls.cert_file and api.tls.key_file), or \
                 listen on 127.0.0.1",
                api.listen
            ),
        ));
    }
    if tls.cert_file.is_empty() != tls.key_file.is_empty() {
        let (set, unset) = if tls.cert_file.is_empty() {
            ("api.tls.key_file", "api.tls.cert_file")
        } else {
            ("api.tls.cert_file", "api.tls.key_file")
        };
        out.push(Problem::new(
            unset,
            format!(
                "is empty while {set} is set; give both (a certificate chain and its key) \
                 or neither (a self-signed certificate)"
            ),
        ));
    }
    if tls.names.len() > MAX_TLS_NAMES {
        out.push(Problem::new(
            "api.tls.names",
            format!("has {} names; at most {MAX_TLS_NAMES}", tls.names.len()),
        ));
    }
    for (i, name) in tls.names.iter().enumerate() {
        if name.parse::<std::net::IpAddr>().is_err() && !is_dns_name(name) {
            out.push(Problem::new(
                &format!("api.tls.names[{i}]"),
                format!(
                    "{name:?} is neither an IP address nor a DNS name (letters, digits, \
                     '-' and '.', at most 253 characters)"
                ),
            ));
        }
    }
    out
}

/// A DNS name a certificate can carry: labels of letters, digits and `-`.
pub(crate) fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && name.parse::<std::net::IpAddr>().is_err()
}

pub(super) fn log_format(value: &str) -> Result<LogFormat, Problem> {
    match value {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        other => Err(Problem::new(
            "log.format",
            format!("{other:?} is not a log format (expected \"text\" or \"json\")"),
        )),
    }
}

pub(crate) fn host_port(key: &str, value: &str) -> Result<(), Problem> {
    if value.parse::<SocketAddr>().is_ok() {
        return Ok(());
    }
    let bad = || {
        Problem::new(
            key,
            format!(
                "{value:?} is not a peer address (expected HOST:PORT, e.g. 192.0.2.7:7301 or node-3.site:7301)"
            ),
        )
    };
    let (host, port) = value.rsplit_once(':').ok_or_else(bad)?;
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    match port.parse::<u16>() {
        Ok(p) if p > 0 && host_ok => Ok(()),
        _ => Err(bad()),
    }
}

pub(super) fn range(key: &str, value: u64, min: u64, max: u64) -> Result<(), Problem> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(Problem::new(
            key,
            format!("{value} is out of range (expected {min} to {max})"),
        ))
    }
}
