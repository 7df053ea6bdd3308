//! Alert outputs: the node's alerts, as they happen, sent to the tools a SOC
//! runs — syslog collectors over UDP, TCP or TLS ([`syslog`]), HTTP webhooks ([`webhook`]) and
//! JSON-lines files ([`file`]); docs/OUTPUTS.md.
//!
//! Each `[[outputs]]` entry runs two tasks. The intake follows the node's
//! alert broadcast (what the live stream shows), keeps the alerts its filter
//! passes and appends them to the output's [`Spool`] on disk; it never waits
//! on the receiver, so a slow or absent collector never holds detection.
//! The sender delivers the spool's oldest alert, removes it once delivered,
//! and on a failure retries it with exponential backoff: alerts arrive once
//! and in order, across a collector's outage and the node's restarts.

pub mod file;
pub mod format;
pub mod spool;
pub mod syslog;
pub mod webhook;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use amoskys_mesh::Alert;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, broadcast, watch};

use crate::config::{Config, OutputSection, Problem};
pub use format::Format;
pub use spool::Spool;

/// Why one delivery failed.
#[derive(Debug)]
pub enum DeliveryError {
    /// Worth retrying: the receiver is down, slow or busy.
    Transient(String),
    /// The receiver refused this alert for good (an HTTP 4xx): it is
    /// dropped and counted as failed.
    Permanent(String),
}

/// Counters and state of one output, shared with metrics and the API.
#[derive(Debug)]
pub struct OutputStats {
    pub name: String,
    pub kind: String,
    /// Where it sends: an address, a URL or a path.
    pub target: String,
    sent: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
    dropped: AtomicU64,
    spooled: AtomicU64,
    state: Mutex<(&'static str, String)>,
}

/// One output in `GET /api/v1/node` and `amoskys status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutputStatus {
    pub name: String,
    pub kind: String,
    pub target: String,
    /// `ok`, `retrying` (the last delivery failed; `message` says why) or
    /// `error` (the spool cannot be read or written).
    pub state: String,
    pub message: String,
    /// Alerts delivered.
    pub sent: u64,
    /// Alerts the receiver refused for good.
    pub failed: u64,
    /// Deliveries tried again after a transient failure.
    pub retried: u64,
    /// Alerts waiting in the spool now.
    pub spooled: u64,
    /// Alerts never spooled: the spool was full or the intake lagged.
    pub dropped: u64,
}

impl OutputStats {
    fn new(o: &OutputSection) -> Self {
        let target = match o.kind.as_str() {
            "syslog" => format!("{}://{}", o.transport, o.address),
            "webhook" => o.url.clone(),
            _ => o.path.clone(),
        };
        Self {
            name: o.name.clone(),
            kind: o.kind.clone(),
            target,
            sent: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            spooled: AtomicU64::new(0),
            state: Mutex::new(("ok", String::new())),
        }
    }

    fn set_state(&self, state: &'static str, message: String) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        *s = (state, message);
    }

    /// The output as the API shows it.
    pub fn status(&self) -> OutputStatus {
        let (state, message) = self
            .state
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone());
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        OutputStatus {
            name: self.name.clone(),
            kind: self.kind.clone(),
            target: self.target.clone(),
            state: state.to_owned(),
            message,
            sent: read(&self.sent),
            failed: read(&self.failed),
            retried: read(&self.retried),
            spooled: read(&self.spooled),
            dropped: read(&self.dropped),
        }
    }
}

/// Which alerts an output takes.
#[derive(Debug, Clone)]
pub struct Filter {
    /// Index in [`amoskys_mesh::alert::SEVERITIES`].
    min_severity: usize,
    rules: Vec<String>,
    /// Only alerts of this origin (the node's own id), when set.
    origin: Option<String>,
}

impl Filter {
    pub fn new(min_severity: &str, rules: &[String], origin: Option<String>) -> Self {
        Self {
            min_severity: severity_rank(min_severity).unwrap_or(0),
            rules: rules.to_vec(),
            origin,
        }
    }

    pub fn passes(&self, alert: &Alert) -> bool {
        severity_rank(&alert.body.severity).is_some_and(|r| r >= self.min_severity)
            && (self.rules.is_empty() || self.rules.contains(&alert.body.rule))
            && self.origin.as_ref().is_none_or(|o| *o == alert.origin)
    }
}

fn severity_rank(s: &str) -> Option<usize> {
    amoskys_mesh::alert::SEVERITIES.iter().position(|x| *x == s)
}

/// The delivering end of one output.
#[derive(Debug)]
pub enum Sink {
    Syslog(syslog::SyslogSink),
    Webhook(webhook::WebhookSink),
    File(file::FileSink),
}

impl Sink {
    async fn deliver(&mut self, alert: &Alert) -> Result<(), DeliveryError> {
        match self {
            Sink::Syslog(s) => s.deliver(alert).await,
            Sink::Webhook(s) => s.deliver(alert).await,
            Sink::File(s) => s.deliver(alert),
        }
    }
}

/// The running outputs.
#[derive(Debug, Default)]
pub struct Outputs {
    pub stats: Vec<Arc<OutputStats>>,
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Outputs {
    /// Opens each output's spool under `<data_dir>/outputs/<name>` and
    /// starts its tasks; `own` is the node's id (`origin = "local"`). A
    /// problem names the output's key.
    pub fn start(
        config: &Config,
        own: &str,
        data_dir: &Path,
        alerts: &broadcast::Sender<Alert>,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<Outputs, Vec<Problem>> {
        let mut out = Outputs::default();
        let mut problems = Vec::new();
        let host = config.node_name();
        for (i, o) in config.outputs.iter().enumerate() {
            let key = |k: &str| format!("outputs[{i}].{k}");
            let sink = match o.kind.as_str() {
                "syslog" => syslog::SyslogSink::new(o, &host).map(Sink::Syslog),
                "webhook" => webhook::WebhookSink::new(o).map(Sink::Webhook),
                _ => Ok(Sink::File(file::FileSink::new(o))),
            };
            let sink = match sink {
                Ok(s) => s,
                Err((k, msg)) => {
                    problems.push(Problem::new(&key(k), msg));
                    continue;
                }
            };
            let dir = data_dir.join("outputs").join(&o.name);
            let spool = match Spool::open(&dir, o.spool_max_kib.saturating_mul(1024)) {
                Ok(s) => Arc::new(Mutex::new(s)),
                Err(e) => {
                    problems.push(Problem::new(
                        &key("name"),
                        format!("cannot open the spool {}: {e}", dir.display()),
                    ));
                    continue;
                }
            };
            let stats = Arc::new(OutputStats::new(o));
            stats
                .spooled
                .store(lock(&spool).records(), Ordering::Relaxed);
            let ready = Arc::new(Notify::new());
            ready.notify_one();
            out.tasks.push(tokio::spawn(intake(
                alerts.subscribe(),
                Filter::new(
                    &o.min_severity,
                    &o.rules,
                    (o.origin == "local").then(|| own.to_owned()),
                ),
                spool.clone(),
                stats.clone(),
                ready.clone(),
                shutdown.clone(),
            )));
            let backoff = Backoff::new(
                Duration::from_millis(o.retry_min_ms),
                Duration::from_millis(o.retry_max_ms),
            );
            out.tasks.push(tokio::spawn(send(
                sink,
                spool,
                stats.clone(),
                ready,
                backoff,
                shutdown.clone(),
            )));
            tracing::info!(output = %o.name, kind = %o.kind, target = %stats.target, spooled = stats.spooled.load(Ordering::Relaxed), "alert output started");
            out.stats.push(stats);
        }
        if problems.is_empty() {
            Ok(out)
        } else {
            for t in &out.tasks {
                t.abort();
            }
            Err(problems)
        }
    }
}

fn lock(spool: &Mutex<Spool>) -> std::sync::MutexGuard<'_, Spool> {
    spool.lock().unwrap_or_else(|p| p.into_inner())
}

/// Follows the alert broadcast into the spool.
async fn intake(
    mut rx: broadcast::Receiver<Alert>,
    filter: Filter,
    spool: Arc<Mutex<Spool>>,
    stats: Arc<OutputStats>,
    ready: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let alert = tokio::select! {
            r = rx.recv() => r,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        let alert = match alert {
            Ok(a) => a,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                stats.dropped.fetch_add(n, Ordering::Relaxed);
                tracing::warn!(output = %stats.name, missed = n, "alert output fell behind the alert stream; alerts dropped");
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if !filter.passes(&alert) {
            continue;
        }
        // One short append to the page cache.
        let pushed = {
            let mut s = lock(&spool);
            let r = s.push(&alert.encode());
            stats.spooled.store(s.records(), Ordering::Relaxed);
            r
        };
        match pushed {
            Ok(true) => ready.notify_one(),
            Ok(false) => {
                stats.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(output = %stats.name, alert = %alert.id, "alert output spool full; alert dropped");
            }
            Err(e) => {
                stats.dropped.fetch_add(1, Ordering::Relaxed);
                stats.set_state("error", format!("cannot write the spool: {e}"));
                tracing::warn!(output = %stats.name, error = %e, "cannot write the alert output spool; alert dropped");
            }
        }
    }
}

/// Delivers the spool's alerts, oldest first.
async fn send(
    mut sink: Sink,
    spool: Arc<Mutex<Spool>>,
    stats: Arc<OutputStats>,
    ready: Arc<Notify>,
    mut backoff: Backoff,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        let head = lock(&spool).peek();
        let record = match head {
            Ok(Some(r)) => r,
            Ok(None) => {
                tokio::select! {
                    () = ready.notified() => continue,
                    _ = shutdown.wait_for(|s| *s) => return,
                }
            }
            Err(e) => {
                stats.set_state("error", format!("cannot read the spool: {e}"));
                tracing::warn!(output = %stats.name, error = %e, "cannot read the alert output spool");
                if pause(backoff.wait(), &mut shutdown).await {
                    return;
                }
                continue;
            }
        };
        let outcome = match Alert::parse(&record) {
            Ok(alert) => tokio::select! {
                r = sink.deliver(&alert) => r,
                _ = shutdown.wait_for(|s| *s) => return,
            },
            Err(e) => Err(DeliveryError::Permanent(format!(
                "a spooled record is not an alert: {e}"
            ))),
        };
        let done = match outcome {
            Ok(()) => {
                stats.sent.fetch_add(1, Ordering::Relaxed);
                stats.set_state("ok", String::new());
                backoff.reset();
                true
            }
            Err(DeliveryError::Permanent(why)) => {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(output = %stats.name, reason = %why, "alert refused by the output's receiver; dropped");
                true
            }
            Err(DeliveryError::Transient(why)) => {
                stats.retried.fetch_add(1, Ordering::Relaxed);
                let wait = backoff.wait();
                tracing::debug!(output = %stats.name, reason = %why, retry_in_ms = wait.as_millis() as u64, "alert delivery failed; retrying");
                stats.set_state("retrying", why);
                if pause(wait, &mut shutdown).await {
                    return;
                }
                false
            }
        };
        if done {
            let mut s = lock(&spool);
            if let Err(e) = s.pop(record.len()) {
                stats.set_state("error", format!("cannot update the spool: {e}"));
            }
            stats.spooled.store(s.records(), Ordering::Relaxed);
        }
    }
}

/// Sleeps `wait`; `true` when the node shuts down meanwhile.
async fn pause(wait: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(wait) => false,
        _ = shutdown.wait_for(|s| *s) => true,
    }
}

/// Exponential backoff: `min`, doubling, at most `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            next: min,
        }
    }

    pub fn wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        wait
    }

    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

/// The outputs' counters, as `amoskys_output_*` families labelled by
/// output name.
pub fn encode_metrics(
    encoder: &mut DescriptorEncoder,
    outputs: &[Arc<OutputStats>],
) -> Result<(), std::fmt::Error> {
    let statuses: Vec<OutputStatus> = outputs.iter().map(|o| o.status()).collect();
    type Read = fn(&OutputStatus) -> u64;
    let counters: [(&str, &str, Read); 4] = [
        (
            "amoskys_output_alerts_sent",
            "Alerts an output delivered",
            |s| s.sent,
        ),
        (
            "amoskys_output_alerts_failed",
            "Alerts an output's receiver refused for good",
            |s| s.failed,
        ),
        (
            "amoskys_output_deliveries_retried",
            "Deliveries an output tried again after a transient failure",
            |s| s.retried,
        ),
        (
            "amoskys_output_alerts_dropped",
            "Alerts an output never spooled (spool full, or the intake lagged)",
            |s| s.dropped,
        ),
    ];
    for (name, help, read) in counters {
        let mut family =
            encoder.encode_descriptor(name, help, None, ConstCounter::new(0u64).metric_type())?;
        for s in &statuses {
            ConstCounter::new(read(s)).encode(
                family.encode_family(&[("output", s.name.as_str()), ("kind", s.kind.as_str())])?,
            )?;
        }
    }
    let mut family = encoder.encode_descriptor(
        "amoskys_output_alerts_spooled",
        "Alerts waiting in an output's spool",
        None,
        ConstGauge::new(0i64).metric_type(),
    )?;
    for s in &statuses {
        ConstGauge::new(s.spooled as i64).encode(
            family.encode_family(&[("output", s.name.as_str()), ("kind", s.kind.as_str())])?,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let waits: Vec<u128> = (0..4).map(|_| b.wait().as_millis()).collect();
        assert_eq!(waits, [100, 200, 350, 350]);
        b.reset();
        assert_eq!(b.wait().as_millis(), 100);
    }

    #[test]
    fn the_filter_takes_severity_and_rules() {
        let alert = |sev: &str, rule: &str| {
            let mut a = Alert::sign(
                amoskys_mesh::AlertBody {
                    seq: 1,
                    time_ns: 1,
                    severity: sev.into(),
                    category: "c".into(),
                    technique: "T1".into(),
                    rule: rule.into(),
                    score: 0.5,
                    subject: "s".into(),
                    evidence: Vec::new(),
                },
                &ed25519_dalek::SigningKey::from_bytes(&[1; 32]),
            );
            a.body.severity = sev.into();
            a
        };
        let f = Filter::new("medium", &["port_scan_vertical".into()], None);
        assert!(f.passes(&alert("high", "port_scan_vertical")));
        assert!(!f.passes(&alert("low", "port_scan_vertical")));
        assert!(!f.passes(&alert("critical", "brute_force")));
        assert!(Filter::new("low", &[], None).passes(&alert("low", "anything")));
        let own = alert("low", "r").origin;
        assert!(Filter::new("low", &[], Some(own)).passes(&alert("low", "r")));
        let other = Some("12D3KooWanotherpeer".to_owned());
        assert!(!Filter::new("low", &[], other).passes(&alert("low", "r")));
    }
}
