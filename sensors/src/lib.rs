//! Host telemetry for the AMOSKYS node.
//!
//! Every source implements one [`Sensor`] trait: it is started with an
//! [`EventSink`], runs on its own thread (never on the async runtime), and
//! reports its [`Health`]. The sink is a bounded channel: when the node cannot
//! keep up, an event is dropped and counted rather than blocking the host or
//! growing a queue without limit.
//!
//! All sources emit one versioned [`Event`] schema whose classes follow OCSF
//! names where one fits (`process_activity`, ...). Raw events never leave the
//! node that collected them; only the detectors in `amoskys-learning` read them.
//!
//! Sources:
//! - [`procfs`]: process start and exit with lineage, read from `/proc`.
//! - [`snmp`]: device metrics polled from SNMP agents (v2c and v3).
//! - [`mqtt`]: device readings published to an MQTT broker (3.1.1 and 5).
//! - [`flows`]: bidirectional network flow records from AF_PACKET capture.
//! - [`ebpf`]: exec, connect/accept and watched-file opens from eBPF programs.
//!
//! [`fuzzing`] holds one entry per decoder of outside input, for the fuzz
//! targets of `sensors/fuzz/` and the corpus replay in `tests/`.

pub mod ebpf;
pub mod event;
pub mod flows;
pub mod fuzzing;
pub mod mqtt;
pub mod procfs;
mod sink;
pub mod snmp;
pub mod worker;

pub use event::{
    DeviceMetrics, Event, EventBody, EventClass, FileActivity, FlowRecord, InterfaceRates,
    ProcessActivity, ProcessInfo, ProcessRef, SCHEMA_VERSION, SocketActivity, Transport,
};
pub use sink::{EventSink, Health, HealthState, SensorStats, Sent, event_channel};

use std::sync::Arc;

/// A telemetry source.
///
/// `start` spawns whatever the source needs (a thread, a capture loop) and
/// returns at once; `stop` ends it and waits until no more events will be sent.
pub trait Sensor: Send + std::fmt::Debug {
    /// Stable short name, used in config keys, metrics labels and the API.
    fn name(&self) -> &'static str;
    /// Starts emitting into `sink`. An error leaves the sensor stopped and
    /// unhealthy; the node keeps running without it.
    fn start(&mut self, sink: EventSink) -> Result<(), SensorError>;
    /// Stops the source and joins its thread. Idempotent.
    fn stop(&mut self);
    /// Counters and health, shared with whoever reports them.
    fn stats(&self) -> Arc<SensorStats>;
}

/// Why a sensor could not start or keep running.
#[derive(Debug, thiserror::Error)]
pub enum SensorError {
    /// The kernel or the permissions refuse what the sensor needs.
    #[error("{sensor}: {what} is unavailable: {reason}")]
    Unavailable {
        sensor: &'static str,
        what: String,
        reason: String,
    },
    /// An I/O error while setting the sensor up.
    #[error("{sensor}: {context}: {source}")]
    Io {
        sensor: &'static str,
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// `start` was called twice.
    #[error("{0}: already started")]
    AlreadyStarted(&'static str),
}

/// Current wall-clock time in nanoseconds since the Unix epoch.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
