//! Network flows, captured with AF_PACKET (pnet) and aggregated on the host.
//!
//! One capture thread per interface reads frames from an AF_PACKET socket
//! (`capture`), parses the headers ([`parse`](mod@parse)), drops loopback's second copy
//! of each frame ([`dedup`]) and accounts each packet in a per-interface flow
//! table ([`table`]), which emits one bidirectional [`FlowRecord`](crate::FlowRecord)
//! per flow as NetFlow/IPFIX exporters do (idle, active, TCP end, forced),
//! and reports TCP connection attempts left half-open early.
//!
//! The sockets are not promiscuous: the sensor sees what this host sends and
//! receives, not other hosts' traffic on a shared segment. Frames are read up
//! to [`READ_BUFFER`] bytes (headers are all that is needed; byte counts come
//! from the IP headers). Timestamps are taken when a frame is read, and a
//! segmentation-offload super-packet counts as one packet, as with any capture
//! above the driver.

mod capture;
pub mod dedup;
pub mod parse;
mod slots;
pub mod synth;
pub mod table;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use pnet_datalink::{DataLinkReceiver, NetworkInterface};

pub use capture::{READ_TIMEOUT, REOPEN_INTERVAL};
pub use dedup::DuplicateFilter;
pub use parse::{PacketMeta, ParseError, parse};
pub use table::{FlowTable, TableConfig};

use crate::{EventSink, HealthState, Sensor, SensorError, SensorStats};
use capture::{Capture, HealthBoard};

pub(crate) const NAME: &str = "flows";
/// Bytes read of each frame.
pub const READ_BUFFER: usize = 4096;
/// Wait after TCP FIN both ways or RST before a connection's record is sent.
pub const TCP_END_GRACE: Duration = Duration::from_secs(1);
/// A TCP connection attempt still without an acknowledgement from its
/// initiator this long after its SYN is reported early (half-open), so that
/// SYN floods are seen at once: a handshake takes one round trip.
pub const HALF_OPEN_REPORT: Duration = Duration::from_millis(500);
/// Loopback copies further apart than this are two frames.
pub const LOOPBACK_DEDUP_WINDOW: Duration = Duration::from_millis(1);

/// Settings of the flow sensor.
#[derive(Debug, Clone)]
pub struct FlowConfig {
    /// Host id written into every event.
    pub host: String,
    /// Interfaces to capture on; empty: every interface that is up, loopback
    /// excluded (name `lo` to include it).
    pub interfaces: Vec<String>,
    /// A flow without a packet for this long is reported and forgotten.
    pub idle_timeout: Duration,
    /// A flow open this long is reported and continues in a new record.
    pub active_timeout: Duration,
    /// Flows tracked per interface; a new flow beyond it evicts the least
    /// recently seen one.
    pub max_flows: usize,
}

impl FlowConfig {
    /// Defaults: all up interfaces but loopback, 15 s idle, 60 s active,
    /// 65,536 flows per interface.
    pub fn new(host: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            interfaces: Vec::new(),
            idle_timeout: Duration::from_secs(15),
            active_timeout: Duration::from_secs(60),
            max_flows: 65_536,
        }
    }

    fn table(&self) -> TableConfig {
        TableConfig {
            idle_timeout: self.idle_timeout,
            active_timeout: self.active_timeout,
            end_grace: TCP_END_GRACE,
            half_open: HALF_OPEN_REPORT,
            max_flows: self.max_flows,
        }
    }
}

/// The network flow sensor.
#[derive(Debug)]
pub struct FlowSensor {
    config: FlowConfig,
    stats: Arc<SensorStats>,
    worker: Option<Worker>,
}

#[derive(Debug)]
struct Worker {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Worker {
    fn join(self) {
        self.stop.store(true, Ordering::Relaxed);
        for handle in self.threads {
            if handle.join().is_err() {
                tracing::error!(sensor = NAME, "capture thread panicked");
            }
        }
    }
}

impl FlowSensor {
    pub fn new(config: FlowConfig) -> Self {
        Self {
            config,
            stats: Arc::new(SensorStats::new(NAME)),
            worker: None,
        }
    }
}

impl Sensor for FlowSensor {
    fn name(&self) -> &'static str {
        NAME
    }

    /// Opens every socket before any thread starts, so a missing interface or
    /// a missing permission fails `start` itself.
    fn start(&mut self, sink: EventSink) -> Result<(), SensorError> {
        if self.worker.is_some() {
            return Err(SensorError::AlreadyStarted(NAME));
        }
        let chosen = select_interfaces(pnet_datalink::interfaces(), &self.config.interfaces);
        let chosen = chosen.inspect_err(|e| self.unhealthy(e))?;
        let mut opened = Vec::with_capacity(chosen.len());
        for interface in chosen {
            let rx = open_capture(&interface).inspect_err(|e| self.unhealthy(e))?;
            opened.push((interface, rx));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let board = Arc::new(HealthBoard::new(self.stats.clone()));
        self.stats.set_health(HealthState::Healthy, "");
        let mut worker = Worker {
            stop: stop.clone(),
            threads: Vec::with_capacity(opened.len()),
        };
        let table = self.config.table();
        for (interface, rx) in opened {
            let name = interface.name.clone();
            let dedup = interface
                .is_loopback()
                .then(|| DuplicateFilter::new(duration_ns(LOOPBACK_DEDUP_WINDOW)));
            let capture = Capture {
                table: FlowTable::new(name.clone(), &table),
                interface,
                rx: Some(rx),
                dedup,
                host: self.config.host.clone(),
                sink: sink.clone(),
                stop: stop.clone(),
                board: board.clone(),
                gone: false,
            };
            let spawned = std::thread::Builder::new()
                .name(format!("amoskys-fl-{name}"))
                .spawn(move || capture.run());
            match spawned {
                Ok(handle) => worker.threads.push(handle),
                Err(source) => {
                    worker.join();
                    let err = SensorError::Io {
                        sensor: NAME,
                        context: format!("cannot spawn the capture thread of {name}"),
                        source,
                    };
                    self.unhealthy(&err);
                    return Err(err);
                }
            }
        }
        self.worker = Some(worker);
        Ok(())
    }

    /// Stops every capture thread; each flushes its flows as `forced`.
    fn stop(&mut self) {
        if let Some(worker) = self.worker.take() {
            worker.join();
            self.stats.set_health(HealthState::Stopped, "");
        }
    }

    fn stats(&self) -> Arc<SensorStats> {
        self.stats.clone()
    }
}

impl FlowSensor {
    /// Marks the sensor unhealthy; the node logs the one warning.
    fn unhealthy(&self, err: &SensorError) {
        self.stats
            .set_health(HealthState::Unhealthy, err.to_string());
    }
}

impl Drop for FlowSensor {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The interfaces to capture on: the named ones (each must exist), or every
/// interface that is up except loopback.
pub fn select_interfaces(
    all: Vec<NetworkInterface>,
    wanted: &[String],
) -> Result<Vec<NetworkInterface>, SensorError> {
    if wanted.is_empty() {
        let up: Vec<_> = all
            .into_iter()
            .filter(|i| i.is_up() && !i.is_loopback())
            .collect();
        if up.is_empty() {
            return Err(SensorError::Unavailable {
                sensor: NAME,
                what: "flow capture".into(),
                reason: "no interface is up besides loopback (name interfaces to capture on)"
                    .into(),
            });
        }
        return Ok(up);
    }
    let mut chosen: Vec<NetworkInterface> = Vec::with_capacity(wanted.len());
    for name in wanted {
        if chosen.iter().any(|i| &i.name == name) {
            continue;
        }
        match all.iter().find(|i| &i.name == name) {
            Some(i) => chosen.push(i.clone()),
            None => {
                return Err(SensorError::Unavailable {
                    sensor: NAME,
                    what: format!("interface {name}"),
                    reason: "no such interface".into(),
                });
            }
        }
    }
    Ok(chosen)
}

/// Opens a non-promiscuous AF_PACKET capture on `interface`.
pub(crate) fn open_capture(
    interface: &NetworkInterface,
) -> Result<Box<dyn DataLinkReceiver>, SensorError> {
    let config = pnet_datalink::Config {
        read_buffer_size: READ_BUFFER,
        write_buffer_size: 0,
        read_timeout: Some(READ_TIMEOUT),
        promiscuous: false,
        ..pnet_datalink::Config::default()
    };
    match pnet_datalink::channel(interface, config) {
        Ok(pnet_datalink::Channel::Ethernet(_tx, rx)) => Ok(rx),
        Ok(_) => Err(SensorError::Unavailable {
            sensor: NAME,
            what: format!("AF_PACKET capture on {}", interface.name),
            reason: "pnet returned a channel that is not Ethernet".into(),
        }),
        Err(err) => Err(open_error(&interface.name, err)),
    }
}

/// Maps the error of opening a capture to what the operator must do.
pub fn open_error(interface: &str, err: std::io::Error) -> SensorError {
    const ENODEV: i32 = 19;
    if err.kind() == std::io::ErrorKind::PermissionDenied {
        return SensorError::Unavailable {
            sensor: NAME,
            what: format!("AF_PACKET capture on {interface}"),
            reason: "permission denied (needs root or CAP_NET_RAW)".into(),
        };
    }
    if err.raw_os_error() == Some(ENODEV) {
        return SensorError::Unavailable {
            sensor: NAME,
            what: format!("interface {interface}"),
            reason: "no such interface".into(),
        };
    }
    SensorError::Io {
        sensor: NAME,
        context: format!("cannot open AF_PACKET capture on {interface}"),
        source: err,
    }
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(name: &str, index: u32, flags: u32) -> NetworkInterface {
        NetworkInterface {
            name: name.into(),
            description: String::new(),
            index,
            mac: None,
            ips: Vec::new(),
            flags,
        }
    }

    const UP: u32 = 1;
    const LOOPBACK: u32 = 8;

    #[test]
    fn default_selection_is_up_non_loopback() {
        let all = vec![
            iface("lo", 1, UP | LOOPBACK),
            iface("eth0", 2, UP),
            iface("eth1", 3, 0),
        ];
        let names: Vec<_> = select_interfaces(all, &[])
            .expect("eth0 is up")
            .into_iter()
            .map(|i| i.name)
            .collect();
        assert_eq!(names, ["eth0"]);
        let err =
            select_interfaces(vec![iface("lo", 1, UP | LOOPBACK)], &[]).expect_err("only loopback");
        assert!(err.to_string().contains("no interface is up"), "{err}");
    }

    #[test]
    fn named_interfaces_must_exist_and_may_be_loopback() {
        let all = vec![iface("lo", 1, UP | LOOPBACK), iface("eth0", 2, UP)];
        let wanted = ["lo".to_string(), "eth0".into(), "lo".into()];
        let chosen = select_interfaces(all.clone(), &wanted).expect("both exist");
        assert_eq!(chosen.len(), 2, "duplicates collapse");
        let err = select_interfaces(all, &["wlan9".into()]).expect_err("missing");
        assert_eq!(
            err.to_string(),
            "flows: interface wlan9 is unavailable: no such interface"
        );
    }

    #[test]
    fn permission_errors_say_what_is_needed() {
        for errno in [1, 13] {
            let err = open_error("eth0", std::io::Error::from_raw_os_error(errno));
            assert_eq!(
                err.to_string(),
                "flows: AF_PACKET capture on eth0 is unavailable: \
                 permission denied (needs root or CAP_NET_RAW)"
            );
        }
        let other = open_error("eth0", std::io::Error::from_raw_os_error(12));
        assert!(matches!(other, SensorError::Io { .. }), "{other}");
    }
}
