//! Device metrics from SNMP agents (v2c, or v3 with authentication and
//! privacy), polled on the sensor's own thread.
//!
//! Each poll reads sysUpTime, sysDescr, the interface tables (64-bit ifXTable
//! counters where the agent has them, else ifTable's 32-bit ones), UCD laLoad
//! and memory, and hrProcessorLoad, and emits one `device_metrics` event with
//! interface rates ([`rates`]). Every request has a timeout; a device that
//! does not answer, or refuses the credentials, is marked so in its
//! [`DeviceStatus`] and never delays the others by more than its timeouts.

mod poll;
pub mod rates;

use std::sync::atomic::Ordering;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use poll::PollError;
pub(crate) use poll::read_answer;
pub use snmp2::v3::AuthProtocol;

use crate::event::{DeviceMetrics, InterfaceRates};
use crate::worker::{StopSignal, Worker};
use crate::{
    Event, EventBody, EventSink, HealthState, Sensor, SensorError, SensorStats, Sent, now_ns,
};
use poll::Poller;
use rates::RateTracker;

const NAME: &str = "snmp";

/// SNMPv3 privacy protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrivProtocol {
    Des,
    Aes128,
}

/// Credentials of one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnmpAuth {
    V2c {
        community: String,
    },
    V3 {
        user: String,
        auth_protocol: AuthProtocol,
        auth_password: String,
        /// None: authentication without privacy.
        privacy: Option<(PrivProtocol, String)>,
    },
}

/// One polled device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnmpDevice {
    pub name: String,
    /// HOST:PORT of the agent.
    pub address: String,
    pub auth: SnmpAuth,
}

/// Settings of the SNMP sensor.
#[derive(Debug, Clone)]
pub struct SnmpConfig {
    pub host: String,
    pub interval: Duration,
    /// Per request.
    pub timeout: Duration,
    pub devices: Vec<SnmpDevice>,
}

/// How a device answered its last poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceState {
    /// Not polled yet.
    Pending,
    Ok,
    Unreachable,
    AuthFailed,
    Error,
}

/// Status of one device, for the API and metrics.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceStatus {
    pub name: String,
    pub address: String,
    pub state: DeviceState,
    pub message: String,
    /// Time of the last good poll, ns since the epoch (0: never).
    pub last_success_ns: u64,
    pub polls: u64,
    pub failures: u64,
}

/// Every device's status, shared between the poller and its readers.
pub type DeviceStatuses = Arc<Mutex<Vec<DeviceStatus>>>;

/// The SNMP poller.
#[derive(Debug)]
pub struct SnmpSensor {
    config: SnmpConfig,
    stats: Arc<SensorStats>,
    devices: Arc<Mutex<Vec<DeviceStatus>>>,
    worker: Option<Worker>,
}

impl SnmpSensor {
    pub fn new(config: SnmpConfig) -> Self {
        let devices = config
            .devices
            .iter()
            .map(|d| DeviceStatus {
                name: d.name.clone(),
                address: d.address.clone(),
                state: DeviceState::Pending,
                message: String::new(),
                last_success_ns: 0,
                polls: 0,
                failures: 0,
            })
            .collect();
        Self {
            config,
            stats: Arc::new(SensorStats::new(NAME)),
            devices: Arc::new(Mutex::new(devices)),
            worker: None,
        }
    }

    /// A shared view of every device's status.
    pub fn device_status(&self) -> Arc<Mutex<Vec<DeviceStatus>>> {
        self.devices.clone()
    }

    /// A copy of every device's status.
    pub fn devices(&self) -> Vec<DeviceStatus> {
        lock(&self.devices).clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Sensor for SnmpSensor {
    fn name(&self) -> &'static str {
        NAME
    }

    fn start(&mut self, sink: EventSink) -> Result<(), SensorError> {
        if self.worker.is_some() {
            return Err(SensorError::AlreadyStarted(NAME));
        }
        let config = self.config.clone();
        let devices = self.devices.clone();
        self.stats.set_health(HealthState::Healthy, "");
        // snmp2 sessions keep large buffers, moved by value when built.
        self.worker = Some(Worker::spawn(NAME, Some(8 << 20), move |stop| {
            run(config, devices, sink, stop)
        })?);
        Ok(())
    }

    fn stop(&mut self) {
        if let Some(worker) = self.worker.take() {
            worker.stop(NAME);
            self.stats.set_health(HealthState::Stopped, "");
        }
    }

    fn stats(&self) -> Arc<SensorStats> {
        self.stats.clone()
    }
}

impl Drop for SnmpSensor {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(
    config: SnmpConfig,
    devices: Arc<Mutex<Vec<DeviceStatus>>>,
    sink: EventSink,
    stop: StopSignal,
) {
    let stats = sink.stats();
    let mut pollers: Vec<(Poller, RateTracker)> = config
        .devices
        .iter()
        .map(|d| {
            (
                Poller::new(d.clone(), config.timeout),
                RateTracker::default(),
            )
        })
        .collect();
    let mut wait = Duration::ZERO;
    while let Err(std_mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(wait) {
        let started = Instant::now();
        let mut failing = Vec::new();
        for (i, (poller, tracker)) in pollers.iter_mut().enumerate() {
            let result = poller.poll();
            let now = now_ns();
            let Some(device) = config.devices.get(i) else {
                continue;
            };
            let mut status = lock(&devices);
            let Some(st) = status.get_mut(i) else {
                continue;
            };
            st.polls += 1;
            match result {
                Ok(reading) => {
                    st.state = DeviceState::Ok;
                    st.message.clear();
                    st.last_success_ns = now;
                    drop(status);
                    let event = metrics_event(&config.host, device, reading, tracker, now);
                    if sink.send(event) == Sent::Closed {
                        return;
                    }
                }
                Err(e) => {
                    st.failures += 1;
                    st.state = match e {
                        PollError::Unreachable(_) => DeviceState::Unreachable,
                        PollError::Auth(_) => DeviceState::AuthFailed,
                        PollError::Other(_) => DeviceState::Error,
                    };
                    if st.message != e.to_string() {
                        tracing::warn!(sensor = NAME, device = %device.name, address = %device.address, error = %e, "device poll failed");
                    }
                    st.message = e.to_string();
                    stats.errors.fetch_add(1, Ordering::Relaxed);
                    failing.push(format!("{}: {e}", device.name));
                }
            }
        }
        stats.last_pass_ns.store(now_ns(), Ordering::Relaxed);
        if failing.is_empty() {
            stats.set_health(HealthState::Healthy, "");
        } else {
            stats.set_health(HealthState::Degraded, failing.join("; "));
        }
        wait = config.interval.saturating_sub(started.elapsed());
    }
}

fn metrics_event(
    host: &str,
    device: &SnmpDevice,
    r: poll::Reading,
    tracker: &mut RateTracker,
    now: u64,
) -> Event {
    let names: Vec<(u32, String)> = r
        .sample
        .interfaces
        .iter()
        .map(|(i, c)| (*i, c.name.clone()))
        .collect();
    let uptime = r.sample.uptime_ticks;
    let rates = tracker.update(r.sample);
    let mut interfaces: Vec<InterfaceRates> = names
        .into_iter()
        .map(|(index, name)| {
            let rate = rates.interfaces.get(&index).cloned().unwrap_or_default();
            InterfaceRates {
                index,
                name,
                in_bytes_per_sec: rate.in_octets,
                out_bytes_per_sec: rate.out_octets,
                in_packets_per_sec: rate.in_packets,
                out_packets_per_sec: rate.out_packets,
                in_errors_per_sec: rate.in_errors,
                out_errors_per_sec: rate.out_errors,
            }
        })
        .collect();
    interfaces.sort_by_key(|i| i.index);
    Event::new(
        now,
        host,
        NAME,
        EventBody::DeviceMetrics(DeviceMetrics {
            device: device.name.clone(),
            address: device.address.clone(),
            uptime_ticks: uptime,
            description: r.description,
            rebooted: rates.rebooted,
            load: r.load,
            cpu_percent: r.cpu_percent,
            memory_total_kib: r.memory_total_kib,
            memory_available_kib: r.memory_available_kib,
            interfaces,
            ..DeviceMetrics::default()
        }),
    )
}
