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
        check(self.rule_policy().map(drop));
        check(self.privacy().map(drop));
        check(range(
            "detection.suppress_secs",
            self.detection.suppress_secs,
            0,
            86_400,
        ));
        check(range(
            "api.max_connections",
            self.api.max_connections as u64,
            1,
            10_000,
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
        check(range(
            "sensors.procfs.interval_ms",
            self.sensors.procfs.interval_ms,
            10,
            600_000,
        ));
        out
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

fn host_port(key: &str, value: &str) -> Result<(), Problem> {
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

fn range(key: &str, value: u64, min: u64, max: u64) -> Result<(), Problem> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(Problem::new(
            key,
            format!("{value} is out of range (expected {min} to {max})"),
        ))
    }
}
