//! Device telemetry from an MQTT broker (3.1.1 or 5, plain TCP or TLS,
//! optionally with a username and password).
//!
//! The sensor subscribes to the configured topic filters; each message on a
//! matching topic becomes one `device_metrics` event for the device its topic
//! names ([`mapping`]), with the metrics read from its JSON payload and the
//! payload's size, from which the feature windows count each device's message
//! rate and payload size. A malformed or oversized payload is counted and
//! dropped, and the last one is kept with its topic in the [`MqttStatus`].
//! A lost connection is retried with exponential backoff; every reconnection
//! subscribes again.

mod client;
pub mod mapping;

use std::sync::atomic::Ordering;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::event::DeviceMetrics;
use crate::worker::{StopSignal, Worker};
use crate::{Event, EventBody, EventSink, HealthState, Sensor, SensorError, SensorStats, Sent};
use client::{Session, Step};
pub use mapping::{MappingError, TopicMapping};

const NAME: &str = "mqtt";
/// How long one wait for the broker lasts before the stop signal is checked.
const TICK: Duration = Duration::from_millis(200);
const FIRST_BACKOFF: Duration = Duration::from_millis(250);

/// The MQTT protocol version spoken to the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Protocol {
    /// MQTT 3.1.1.
    V311,
    /// MQTT 5.
    V5,
}

/// Settings of the MQTT sensor.
#[derive(Debug, Clone)]
pub struct MqttConfig {
    /// The node, as events name it.
    pub host: String,
    /// HOST:PORT of the broker.
    pub broker: String,
    pub protocol: Protocol,
    pub client_id: String,
    /// Username and password, when the broker asks for them.
    pub credentials: Option<(String, String)>,
    /// TLS towards the broker, trusting what this client configuration trusts.
    pub tls: Option<Arc<rumqttc::tokio_rustls::rustls::ClientConfig>>,
    pub keep_alive_secs: u64,
    /// Subscription QoS: 0 (at most once) or 1 (at least once).
    pub qos: u8,
    /// Larger payloads are dropped and counted.
    pub max_payload_bytes: usize,
    /// The longest wait between two connection attempts.
    pub max_backoff: Duration,
    pub topics: Vec<TopicMapping>,
}

impl MqttConfig {
    /// The broker's host and port (IPv6 in brackets); the port defaults to
    /// 1883, or 8883 with TLS.
    fn host_port(&self) -> (String, u16) {
        let default = if self.tls.is_some() { 8883 } else { 1883 };
        match self.broker.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok() => (
                h.trim_start_matches('[').trim_end_matches(']').to_string(),
                p.parse().unwrap_or(default),
            ),
            _ => (self.broker.clone(), default),
        }
    }
}

/// Where the connection to the broker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BrokerState {
    Connecting,
    Connected,
    /// Lost or refused; retried after a backoff.
    Disconnected,
}

/// The broker connection and what came through it, for the API.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MqttStatus {
    pub broker: String,
    pub state: BrokerState,
    /// Why the connection is down, or which subscriptions were refused.
    pub message: String,
    /// Successful connections (the first one and every reconnection).
    pub connects: u64,
    /// Messages turned into events.
    pub messages: u64,
    /// Payloads that were not JSON or lacked the mapped metrics.
    pub malformed: u64,
    pub oversized: u64,
    /// Messages on a topic that no mapping matches.
    pub unmatched: u64,
    /// The last malformed or oversized message: its topic and why.
    pub last_dropped: String,
}

/// The MQTT subscriber.
#[derive(Debug)]
pub struct MqttSensor {
    config: MqttConfig,
    stats: Arc<SensorStats>,
    status: Arc<Mutex<MqttStatus>>,
    worker: Option<Worker>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl MqttSensor {
    pub fn new(config: MqttConfig) -> Self {
        let status = MqttStatus {
            broker: config.broker.clone(),
            state: BrokerState::Connecting,
            message: String::new(),
            connects: 0,
            messages: 0,
            malformed: 0,
            oversized: 0,
            unmatched: 0,
            last_dropped: String::new(),
        };
        Self {
            config,
            stats: Arc::new(SensorStats::new(NAME)),
            status: Arc::new(Mutex::new(status)),
            worker: None,
        }
    }

    /// A shared view of the broker's status.
    pub fn status(&self) -> Arc<Mutex<MqttStatus>> {
        self.status.clone()
    }
}

impl Sensor for MqttSensor {
    fn name(&self) -> &'static str {
        NAME
    }

    fn start(&mut self, sink: EventSink) -> Result<(), SensorError> {
        if self.worker.is_some() {
            return Err(SensorError::AlreadyStarted(NAME));
        }
        let config = self.config.clone();
        let status = self.status.clone();
        self.stats
            .set_health(HealthState::Degraded, "connecting to the broker");
        self.worker = Some(Worker::spawn(NAME, None, move |stop| {
            run(&config, &status, &sink, &stop)
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

impl Drop for MqttSensor {
    fn drop(&mut self) {
        self.stop();
    }
}

/// True once the sensor must stop.
fn stopping(stop: &StopSignal, wait: Duration) -> bool {
    !matches!(
        stop.recv_timeout(wait),
        Err(std_mpsc::RecvTimeoutError::Timeout)
    )
}

fn run(config: &MqttConfig, status: &Mutex<MqttStatus>, sink: &EventSink, stop: &StopSignal) {
    let stats = sink.stats();
    let mut session = Session::open(config);
    let filters: Vec<String> = config.topics.iter().map(|t| t.filter.clone()).collect();
    let mut backoff = FIRST_BACKOFF;
    while !stopping(stop, Duration::ZERO) {
        let step = session.next(TICK, &filters);
        stats.last_pass_ns.store(crate::now_ns(), Ordering::Relaxed);
        match step {
            Step::Idle => {}
            Step::Connected => {
                backoff = FIRST_BACKOFF;
                let subscribed = session.subscribe(&filters, config.qos);
                let mut st = lock(status);
                st.connects += 1;
                st.state = BrokerState::Connected;
                st.message = subscribed.err().unwrap_or_default();
                if st.message.is_empty() {
                    stats.set_health(HealthState::Healthy, "");
                } else {
                    stats.set_health(HealthState::Degraded, st.message.clone());
                }
                tracing::info!(sensor = NAME, broker = %config.broker, "connected to the broker");
            }
            Step::Refused(refused) => {
                let why = format!(
                    "the broker refused the subscription to {}",
                    refused.join(", ")
                );
                tracing::warn!(sensor = NAME, broker = %config.broker, "{why}");
                stats.set_health(HealthState::Degraded, why.clone());
                lock(status).message = why;
            }
            Step::Message { topic, payload } => {
                if let Some(event) = reading(config, status, &topic, &payload) {
                    if sink.send(event) == Sent::Closed {
                        break;
                    }
                } else {
                    stats.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            Step::Failed(why) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                let message = format!("broker {}: {why}", config.broker);
                {
                    let mut st = lock(status);
                    if st.state == BrokerState::Connected || st.message != message {
                        tracing::warn!(sensor = NAME, broker = %config.broker, error = %why, retry_ms = backoff.as_millis() as u64, "broker connection failed");
                    }
                    st.state = BrokerState::Disconnected;
                    st.message = message.clone();
                }
                stats.set_health(HealthState::Degraded, message);
                if stopping(stop, backoff) {
                    break;
                }
                backoff = (backoff * 2).min(config.max_backoff.max(FIRST_BACKOFF));
                lock(status).state = BrokerState::Connecting;
            }
        }
    }
    session.disconnect();
}

/// The event a message makes, or `None` when it is dropped (counted in the
/// status, and logged once per distinct reason).
fn reading(
    config: &MqttConfig,
    status: &Mutex<MqttStatus>,
    topic: &str,
    payload: &[u8],
) -> Option<Event> {
    let drop = |why: String, oversized: bool| {
        let mut st = lock(status);
        if oversized {
            st.oversized += 1;
        } else {
            st.malformed += 1;
        }
        let last = format!("{topic}: {why}");
        if st.last_dropped != last {
            tracing::warn!(sensor = NAME, topic, reason = %why, "message dropped");
            st.last_dropped = last;
        }
    };
    if payload.len() > config.max_payload_bytes {
        drop(
            format!(
                "payload of {} bytes is over max_payload_bytes ({})",
                payload.len(),
                config.max_payload_bytes
            ),
            true,
        );
        return None;
    }
    let Some(mapping) = config
        .topics
        .iter()
        .find(|t| mapping::matches(&t.filter, topic))
    else {
        lock(status).unmatched += 1;
        return None;
    };
    match mapping.read(topic, payload) {
        Ok(r) => {
            lock(status).messages += 1;
            Some(Event::new(
                crate::now_ns(),
                &config.host,
                NAME,
                EventBody::DeviceMetrics(DeviceMetrics {
                    device: r.device,
                    address: format!("mqtt://{}/{topic}", config.broker),
                    metrics: r.metrics,
                    payload_bytes: Some(payload.len() as u64),
                    ..DeviceMetrics::default()
                }),
            ))
        }
        Err(e) => {
            drop(e.to_string(), false);
            None
        }
    }
}
