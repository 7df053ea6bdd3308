//! Prometheus metrics of the node, named `amoskys_<area>_<what>_<unit>`.
//!
//! Counters owned by the node live in [`Metrics`]; sensor counters and
//! uptime are read at scrape time by a collector, so sensors need no
//! dependency on the metrics library. So are the Raft member's state
//! ([`raft`]), the federation's counters and the process's own resource
//! use ([`process`]).

mod process;
mod raft;

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use amoskys_mesh::{MeshStats, Reject};

use crate::outputs::OutputStats;
use crate::workspace::Workspace;

use amoskys_sensors::snmp::{DeviceState, DeviceStatuses};
use amoskys_sensors::{HealthState, SensorStats};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// Content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The node's metrics registry and the counters the node itself updates.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Events written to the store.
    pub store_events: Counter,
    /// Failed batch writes.
    pub store_write_errors: Counter,
    /// Time to write one batch.
    pub store_batch_seconds: Histogram,
    /// Alerts raised by this node.
    pub alerts_raised: Counter,
    /// From an alert's time at its origin to its storage here.
    pub mesh_propagation_seconds: Histogram,
    sensor_lag: Family<Vec<(String, String)>, Gauge<f64, AtomicU64>>,
    auth_failures: Family<Vec<(String, String)>, Counter>,
    tls_refused: Family<Vec<(String, String)>, Counter>,
    mesh: Arc<OnceLock<Arc<MeshStats>>>,
    workspace: Arc<OnceLock<Arc<Workspace>>>,
    outputs: Arc<OnceLock<Vec<Arc<OutputStats>>>>,
    response: Arc<OnceLock<Arc<crate::response::Response>>>,
    cluster: Arc<OnceLock<Arc<amoskys_consensus::Cluster>>>,
    federation: Arc<OnceLock<Arc<crate::federation::FederationStats>>>,
}

impl Metrics {
    pub fn new(
        version: &'static str,
        sensors: Vec<Arc<SensorStats>>,
        snmp: Option<DeviceStatuses>,
    ) -> Self {
        let mut registry = Registry::default();
        let store_events = Counter::default();
        let store_write_errors = Counter::default();
        let store_batch_seconds = Histogram::new(exponential_buckets(1e-5, 4.0, 10));
        registry.register(
            "amoskys_store_events_written",
            "Events written to the event store",
            store_events.clone(),
        );
        registry.register(
            "amoskys_store_write_errors",
            "Event batches that failed to write",
            store_write_errors.clone(),
        );
        registry.register(
            "amoskys_store_batch_write_seconds",
            "Time to write one event batch",
            store_batch_seconds.clone(),
        );
        let alerts_raised = Counter::default();
        registry.register(
            "amoskys_detection_alerts_raised",
            "Alerts raised by this node",
            alerts_raised.clone(),
        );
        let mesh_propagation_seconds = Histogram::new(exponential_buckets(1e-3, 2.0, 16));
        registry.register(
            "amoskys_mesh_propagation_seconds",
            "Time from a peer's alert (its detection time) to its storage on this node",
            mesh_propagation_seconds.clone(),
        );
        let sensor_lag = Family::<Vec<(String, String)>, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "amoskys_sensor_lag_seconds",
            "Age of a sensor's newest event when it was written to the store",
            sensor_lag.clone(),
        );
        let auth_failures = Family::<Vec<(String, String)>, Counter>::default();
        registry.register(
            "amoskys_api_auth_failures",
            "API requests refused by authentication or authorisation, by reason",
            auth_failures.clone(),
        );
        let tls_refused = Family::<Vec<(String, String)>, Counter>::default();
        registry.register(
            "amoskys_api_tls_refused",
            "API connections closed before a TLS session, by reason",
            tls_refused.clone(),
        );
        let mesh = Arc::new(OnceLock::new());
        let workspace = Arc::new(OnceLock::new());
        let outputs = Arc::new(OnceLock::new());
        let response = Arc::new(OnceLock::new());
        let cluster = Arc::new(OnceLock::new());
        let federation = Arc::new(OnceLock::new());
        registry.register_collector(Box::new(NodeCollector {
            mesh: mesh.clone(),
            workspace: workspace.clone(),
            outputs: outputs.clone(),
            response: response.clone(),
            cluster: cluster.clone(),
            federation: federation.clone(),
            version,
            started: Instant::now(),
            sensors,
            snmp,
        }));
        Self {
            registry,
            store_events,
            store_write_errors,
            store_batch_seconds,
            alerts_raised,
            mesh_propagation_seconds,
            sensor_lag,
            auth_failures,
            tls_refused,
            mesh,
            workspace,
            outputs,
            response,
            cluster,
            federation,
        }
    }

    /// Reports the Raft member's state and the federation's counters from
    /// now on.
    pub fn set_cluster(
        &self,
        cluster: Arc<amoskys_consensus::Cluster>,
        federation: Arc<crate::federation::FederationStats>,
    ) {
        let _ = self.cluster.set(cluster);
        let _ = self.federation.set(federation);
    }

    /// Reports the alert outputs' counters from now on.
    pub fn set_outputs(&self, outputs: Vec<Arc<OutputStats>>) {
        let _ = self.outputs.set(outputs);
    }

    /// Counts one API request refused for `reason` (`missing`,
    /// `bad_signature`, `forbidden`, `rate_limited`, …).
    pub fn auth_failure(&self, reason: &str) {
        self.auth_failures
            .get_or_create(&vec![("reason".to_owned(), reason.to_owned())])
            .inc();
    }

    /// Counts one API connection closed before a TLS session for `reason`
    /// (`timeout`, `plain_http`, `handshake`).
    pub fn tls_refused(&self, reason: &str) {
        self.tls_refused
            .get_or_create(&vec![("reason".to_owned(), reason.to_owned())])
            .inc();
    }

    /// Reports the bouncer's state from now on.
    pub fn set_response(&self, response: Arc<crate::response::Response>) {
        let _ = self.response.set(response);
    }

    /// Reports the workspace's sync counters from now on.
    pub fn set_workspace(&self, workspace: Arc<Workspace>) {
        let _ = self.workspace.set(workspace);
    }

    /// Reports the mesh's counters from now on.
    pub fn set_mesh(&self, stats: Arc<MeshStats>) {
        let _ = self.mesh.set(stats);
    }

    /// Records how old a sensor's newest event was when it was stored.
    pub fn set_sensor_lag(&self, sensor: &str, seconds: f64) {
        self.sensor_lag
            .get_or_create(&vec![("sensor".to_owned(), sensor.to_owned())])
            .set(seconds);
    }

    /// The metrics in OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        out
    }
}

#[derive(Debug)]
struct NodeCollector {
    mesh: Arc<OnceLock<Arc<MeshStats>>>,
    workspace: Arc<OnceLock<Arc<Workspace>>>,
    outputs: Arc<OnceLock<Vec<Arc<OutputStats>>>>,
    response: Arc<OnceLock<Arc<crate::response::Response>>>,
    cluster: Arc<OnceLock<Arc<amoskys_consensus::Cluster>>>,
    federation: Arc<OnceLock<Arc<crate::federation::FederationStats>>>,
    version: &'static str,
    started: Instant,
    sensors: Vec<Arc<SensorStats>>,
    snmp: Option<DeviceStatuses>,
}

impl Collector for NodeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let uptime = ConstGauge::new(self.started.elapsed().as_secs_f64());
        uptime.encode(encoder.encode_descriptor(
            "amoskys_node_uptime_seconds",
            "Seconds since the node started",
            None,
            uptime.metric_type(),
        )?)?;
        let info = ConstGauge::new(1i64);
        let mut family = encoder.encode_descriptor(
            "amoskys_node_build_info",
            "Build of the running node (always 1)",
            None,
            info.metric_type(),
        )?;
        info.encode(family.encode_family(&[("version", self.version)])?)?;

        type Read = fn(&SensorStats) -> u64;
        let counters: [(&str, &str, Read); 3] = [
            ("amoskys_sensor_events", "Events queued by a sensor", |s| {
                s.counts().0
            }),
            (
                "amoskys_sensor_dropped_events",
                "Events dropped because the event queue was full",
                |s| s.counts().1,
            ),
            (
                "amoskys_sensor_errors",
                "Failed reads or parses in a sensor",
                |s| s.counts().2,
            ),
        ];
        for (name, help, read) in counters {
            let mut family = encoder.encode_descriptor(
                name,
                help,
                None,
                ConstCounter::new(0u64).metric_type(),
            )?;
            for s in &self.sensors {
                ConstCounter::new(read(s))
                    .encode(family.encode_family(&[("sensor", s.name())])?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "amoskys_sensor_healthy",
            "1 when a sensor is running and healthy, else 0",
            None,
            ConstGauge::new(0i64).metric_type(),
        )?;
        for s in &self.sensors {
            let healthy = i64::from(s.health().state == HealthState::Healthy);
            ConstGauge::new(healthy).encode(family.encode_family(&[("sensor", s.name())])?)?;
        }
        if let Some(m) = self.mesh.get() {
            let read = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
            let peers = ConstGauge::new(read(&m.connected_peers) as i64);
            peers.encode(encoder.encode_descriptor(
                "amoskys_mesh_peers",
                "Connected mesh peers",
                None,
                peers.metric_type(),
            )?)?;
            for (name, help, value) in [
                (
                    "amoskys_mesh_alerts_published",
                    "Own alerts gossiped",
                    read(&m.published),
                ),
                (
                    "amoskys_mesh_alerts_received",
                    "Peers' alerts received and verified",
                    read(&m.received),
                ),
            ] {
                let c = ConstCounter::new(value);
                c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)?;
            }
            let mut rejected = encoder.encode_descriptor(
                "amoskys_mesh_messages_rejected",
                "Gossip messages refused, by reason",
                None,
                ConstCounter::new(0u64).metric_type(),
            )?;
            for r in Reject::ALL {
                ConstCounter::new(m.rejected(r))
                    .encode(rejected.encode_family(&[("reason", r.as_str())])?)?;
            }
        }
        if let Some(snmp) = &self.snmp {
            let devices = snmp
                .lock()
                .map(|d| d.clone())
                .unwrap_or_else(|p| p.into_inner().clone());
            let mut up = encoder.encode_descriptor(
                "amoskys_snmp_device_up",
                "1 when the device's last poll succeeded, else 0 (label state says why)",
                None,
                ConstGauge::new(0i64).metric_type(),
            )?;
            for d in &devices {
                let state = serde_json::to_value(d.state)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                let value = i64::from(d.state == DeviceState::Ok);
                ConstGauge::new(value).encode(
                    up.encode_family(&[("device", d.name.as_str()), ("state", state.as_str())])?,
                )?;
            }
            let mut failures = encoder.encode_descriptor(
                "amoskys_snmp_device_poll_failures",
                "Failed polls of a device",
                None,
                ConstCounter::new(0u64).metric_type(),
            )?;
            for d in &devices {
                ConstCounter::new(d.failures)
                    .encode(failures.encode_family(&[("device", d.name.as_str())])?)?;
            }
        }
        if let Some(w) = self.workspace.get() {
            let s = w.sync_stats();
            for (name, help, value) in [
                (
                    "amoskys_workspace_sync_sent_bytes",
                    "Workspace sync bytes sent to peers",
                    s.sent_bytes,
                ),
                (
                    "amoskys_workspace_sync_received_bytes",
                    "Workspace sync bytes accepted from peers",
                    s.received_bytes,
                ),
                (
                    "amoskys_workspace_changes_applied",
                    "Peers' workspace changes verified and applied",
                    s.applied_changes,
                ),
            ] {
                let c = ConstCounter::new(value);
                c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)?;
            }
            let mut rejected = encoder.encode_descriptor(
                "amoskys_workspace_sync_rejected",
                "Workspace sync messages refused, by reason",
                None,
                ConstCounter::new(0u64).metric_type(),
            )?;
            for (reason, n) in &s.rejected {
                ConstCounter::new(*n)
                    .encode(rejected.encode_family(&[("reason", reason.as_str())])?)?;
            }
        }
        if let Some(outputs) = self.outputs.get() {
            crate::outputs::encode_metrics(&mut encoder, outputs)?;
        }
        if let Some(r) = self.response.get() {
            crate::response::metrics::encode_metrics(&mut encoder, r)?;
        }
        if let Some(c) = self.cluster.get() {
            raft::encode(&mut encoder, c)?;
        }
        if let Some(f) = self.federation.get() {
            f.encode_metrics(&mut encoder)?;
        }
        process::encode(&mut encoder)
    }
}
