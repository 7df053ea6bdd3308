//! The bounded path from a sensor to the node, and each sensor's counters.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use tokio::sync::mpsc;

use crate::Event;

/// Creates the bounded channel all sensors of a node share.
pub fn event_channel(capacity: usize) -> (mpsc::Sender<Event>, mpsc::Receiver<Event>) {
    mpsc::channel(capacity.max(1))
}

/// A sensor's handle on the node's event channel. Sending never blocks: when
/// the channel is full the event is dropped and counted.
#[derive(Debug, Clone)]
pub struct EventSink {
    tx: mpsc::Sender<Event>,
    stats: Arc<SensorStats>,
}

/// Outcome of [`EventSink::send`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    Queued,
    /// The channel was full; the event was dropped and counted.
    Dropped,
    /// The node has stopped reading; the sensor should stop.
    Closed,
}

impl EventSink {
    pub fn new(tx: mpsc::Sender<Event>, stats: Arc<SensorStats>) -> Self {
        Self { tx, stats }
    }

    /// Queues an event without blocking.
    pub fn send(&self, event: Event) -> Sent {
        match self.tx.try_send(event) {
            Ok(()) => {
                self.stats.events.fetch_add(1, Ordering::Relaxed);
                Sent::Queued
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.stats.drops.fetch_add(1, Ordering::Relaxed);
                Sent::Dropped
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Sent::Closed,
        }
    }

    /// The counters of the sensor that owns this sink.
    pub fn stats(&self) -> &SensorStats {
        &self.stats
    }
}

/// Whether a sensor is doing its job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthState {
    /// Configured but not started.
    Stopped,
    /// Running and producing what it should.
    Healthy,
    /// Running, but some reads fail (see the message).
    Degraded,
    /// Not running: the kernel, permissions or configuration refused it.
    Unhealthy,
}

/// Health with the reason, as shown in `/api/v1/node`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Health {
    pub state: HealthState,
    /// Why the sensor is not healthy; empty when it is.
    pub message: String,
}

/// Counters and health of one sensor, shared between the sensor thread and
/// whoever reports on it (API, metrics). All counters only grow.
#[derive(Debug)]
pub struct SensorStats {
    name: &'static str,
    /// Events queued to the node.
    pub events: AtomicU64,
    /// Events dropped because the channel was full.
    pub drops: AtomicU64,
    /// Failed reads or parses.
    pub errors: AtomicU64,
    /// Time of the last completed collection pass, ns since the epoch.
    pub last_pass_ns: AtomicU64,
    health: Mutex<Health>,
}

impl SensorStats {
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            events: AtomicU64::new(0),
            drops: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            last_pass_ns: AtomicU64::new(0),
            health: Mutex::new(Health {
                state: HealthState::Stopped,
                message: String::new(),
            }),
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn health(&self) -> Health {
        match self.health.lock() {
            Ok(h) => h.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn set_health(&self, state: HealthState, message: impl Into<String>) {
        let health = Health {
            state,
            message: message.into(),
        };
        match self.health.lock() {
            Ok(mut h) => *h = health,
            Err(poisoned) => *poisoned.into_inner() = health,
        }
    }

    /// A snapshot of the counters: (events, drops, errors).
    pub fn counts(&self) -> (u64, u64, u64) {
        (
            self.events.load(Ordering::Relaxed),
            self.drops.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventBody, ProcessActivity, ProcessInfo, event::ProcessActivityKind};

    fn ev() -> Event {
        Event::new(
            1,
            "h",
            "t",
            EventBody::ProcessActivity(ProcessActivity {
                activity: ProcessActivityKind::Launch,
                process: ProcessInfo {
                    pid: 1,
                    ppid: 0,
                    name: String::new(),
                    exe: String::new(),
                    cmdline: vec![],
                    uid: 0,
                    start_time_ns: 0,
                    cwd: String::new(),
                },
                lineage: vec![],
            }),
        )
    }

    #[test]
    fn full_channel_drops_and_counts_instead_of_blocking() {
        let (tx, mut rx) = event_channel(2);
        let stats = Arc::new(SensorStats::new("t"));
        let sink = EventSink::new(tx, stats.clone());
        assert_eq!(sink.send(ev()), Sent::Queued);
        assert_eq!(sink.send(ev()), Sent::Queued);
        assert_eq!(sink.send(ev()), Sent::Dropped);
        assert_eq!(stats.counts(), (2, 1, 0));
        assert!(rx.try_recv().is_ok());
        drop(rx);
        assert_eq!(sink.send(ev()), Sent::Closed);
    }
}
