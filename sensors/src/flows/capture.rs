//! The capture thread of one interface: AF_PACKET frames → flow table → sink.
//!
//! All I/O of the flow sensor is here. The socket has a read timeout, so the
//! loop checks the stop flag and runs the table's expiry at least every
//! [`READ_TIMEOUT`], with or without traffic. When the capture fails (the
//! interface was deleted or went down), the socket is closed, the sensor is
//! marked degraded with the reason, and the thread tries to reopen it every
//! [`REOPEN_INTERVAL`]; a deleted interface's flows are flushed as `forced`.
//!
//! The table runs on a monotonic clock, so a step of the wall clock neither
//! stalls nor rushes expiry; record times are converted to wall-clock time
//! when the record is sent.

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pnet_datalink::{DataLinkReceiver, NetworkInterface};

use super::dedup::DuplicateFilter;
use super::parse::parse;
use super::table::FlowTable;
use super::{NAME, open_capture};
use crate::{Event, EventBody, EventSink, FlowRecord, HealthState, SensorStats, Sent, now_ns};

/// Longest wait for a frame before the loop does its housekeeping.
pub const READ_TIMEOUT: Duration = Duration::from_millis(100);
/// Time between attempts to reopen a failed capture.
pub const REOPEN_INTERVAL: Duration = Duration::from_secs(1);
/// Time between two expiry passes over the table.
const EXPIRE_EVERY_NS: u64 = 100_000_000;
/// Time between two "table full" warnings of one interface.
const EVICTION_LOG_EVERY_NS: u64 = 10_000_000_000;

/// The sensor's health, built from the problems of each interface.
#[derive(Debug)]
pub(super) struct HealthBoard {
    stats: Arc<SensorStats>,
    problems: Mutex<BTreeMap<String, String>>,
}

impl HealthBoard {
    pub(super) fn new(stats: Arc<SensorStats>) -> Self {
        Self {
            stats,
            problems: Mutex::new(BTreeMap::new()),
        }
    }

    /// Records (`Some`) or clears (`None`) the problem of one interface.
    fn set(&self, interface: &str, problem: Option<String>) {
        let mut problems = self.problems.lock().unwrap_or_else(|p| p.into_inner());
        match problem {
            Some(p) => problems.insert(interface.to_owned(), p),
            None => problems.remove(interface),
        };
        if problems.is_empty() {
            self.stats.set_health(HealthState::Healthy, "");
        } else {
            let all: Vec<&str> = problems.values().map(String::as_str).collect();
            self.stats.set_health(HealthState::Degraded, all.join("; "));
        }
    }
}

/// Everything one capture thread owns.
pub(super) struct Capture {
    pub(super) interface: NetworkInterface,
    pub(super) rx: Option<Box<dyn DataLinkReceiver>>,
    pub(super) table: FlowTable,
    /// Only on loopback interfaces.
    pub(super) dedup: Option<DuplicateFilter>,
    pub(super) host: String,
    pub(super) sink: EventSink,
    pub(super) stop: Arc<AtomicBool>,
    pub(super) board: Arc<HealthBoard>,
    /// The interface was deleted and its flows flushed.
    pub(super) gone: bool,
}

impl Capture {
    pub(super) fn run(mut self) {
        let name = self.interface.name.clone();
        let mut out: Vec<FlowRecord> = Vec::new();
        let clock = Instant::now();
        let mono = || u64::try_from(clock.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let mut next_expire = 0u64;
        let mut next_reopen = 0u64;
        let mut evictions_logged = 0u64;
        let mut next_eviction_log = 0u64;
        tracing::info!(sensor = NAME, interface = %name, "flow capture started");
        while !self.stop.load(Ordering::Relaxed) {
            match self.rx.as_mut().map(|rx| rx.next()) {
                Some(Ok(frame)) => {
                    let ts = mono();
                    let dup = self
                        .dedup
                        .as_mut()
                        .is_some_and(|d| d.is_duplicate(frame, ts));
                    if !dup {
                        match parse(frame) {
                            Ok(meta) => self.table.update(&meta, ts, &mut out),
                            Err(e) if e.is_error() => {
                                self.sink.stats().errors.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(_) => {}
                        }
                    }
                }
                Some(Err(e))
                    if matches!(
                        e.kind(),
                        io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
                    ) => {}
                Some(Err(e)) => {
                    self.failed(&e, &mut out);
                    next_reopen = mono().saturating_add(nanos(REOPEN_INTERVAL));
                }
                None => {
                    std::thread::sleep(READ_TIMEOUT);
                    let now = mono();
                    if now >= next_reopen {
                        self.reopen(&mut out);
                        next_reopen = now.saturating_add(nanos(REOPEN_INTERVAL));
                    }
                }
            }
            let now = mono();
            if now >= next_expire {
                self.table.expire(now, &mut out);
                next_expire = now.saturating_add(EXPIRE_EVERY_NS);
                self.sink
                    .stats()
                    .last_pass_ns
                    .store(now_ns(), Ordering::Relaxed);
                let evictions = self.table.evictions();
                if evictions > evictions_logged && now >= next_eviction_log {
                    tracing::warn!(
                        sensor = NAME,
                        interface = %name,
                        evicted = evictions - evictions_logged,
                        tracked = self.table.len(),
                        "flow table full, evicted least recently seen flows"
                    );
                    evictions_logged = evictions;
                    next_eviction_log = now.saturating_add(EVICTION_LOG_EVERY_NS);
                }
            }
            if !self.send(&mut out, now) {
                tracing::info!(sensor = NAME, interface = %name, "event channel closed, capture ends");
                return;
            }
        }
        let open = self.table.len();
        self.table.flush(&mut out);
        self.send(&mut out, mono());
        tracing::info!(sensor = NAME, interface = %name, flushed = open, "flow capture stopped");
    }

    /// Closes a failed capture and reports why.
    fn failed(&mut self, err: &io::Error, out: &mut Vec<FlowRecord>) {
        self.rx = None;
        self.sink.stats().errors.fetch_add(1, Ordering::Relaxed);
        let name = self.interface.name.clone();
        let problem = match find(&name) {
            Some(now) if now.index == self.interface.index && !now.is_up() => {
                format!("interface {name} is down")
            }
            Some(now) if now.index == self.interface.index => {
                format!("capture on {name} failed: {err}")
            }
            // Gone, or replaced by a new interface of the same name.
            _ => self.disappeared(out),
        };
        tracing::warn!(sensor = NAME, interface = %name, error = %err, problem = %problem, "flow capture interrupted");
        self.board.set(&name, Some(problem));
    }

    /// Flushes the flows of an interface that is gone; returns the problem.
    fn disappeared(&mut self, out: &mut Vec<FlowRecord>) -> String {
        self.gone = true;
        let flushed = self.table.len();
        self.table.flush(out);
        format!(
            "interface {} disappeared ({flushed} open flows flushed)",
            self.interface.name
        )
    }

    /// Reopens the capture once the interface exists and is up.
    fn reopen(&mut self, out: &mut Vec<FlowRecord>) {
        let found = find(&self.interface.name);
        // Deletion shows as "down" first when the error comes before the unregister.
        if found.is_none() && !self.gone {
            let problem = self.disappeared(out);
            tracing::warn!(sensor = NAME, interface = %self.interface.name, "flow capture interface disappeared");
            self.board.set(&self.interface.name, Some(problem));
        }
        let Some(now) = found.filter(NetworkInterface::is_up) else {
            return;
        };
        match open_capture(&now) {
            Ok(rx) => {
                if now.index != self.interface.index {
                    tracing::info!(sensor = NAME, interface = %now.name, index = now.index, "interface came back with a new index");
                }
                self.interface = now;
                self.rx = Some(rx);
                self.gone = false;
                self.board.set(&self.interface.name, None);
                tracing::info!(sensor = NAME, interface = %self.interface.name, "flow capture reopened");
            }
            Err(err) => {
                tracing::debug!(sensor = NAME, interface = %now.name, error = %err, "flow capture reopen failed");
            }
        }
    }

    /// Sends and clears `out`, with times moved from the monotonic clock
    /// (`mono_now`) to wall-clock time; false when the node stopped reading.
    fn send(&self, out: &mut Vec<FlowRecord>, mono_now: u64) -> bool {
        if out.is_empty() {
            return true;
        }
        let wall_now = now_ns();
        let wall = |mono: u64| wall_now.saturating_sub(mono_now.saturating_sub(mono));
        for mut record in out.drain(..) {
            record.first_ns = wall(record.first_ns);
            record.last_ns = wall(record.last_ns);
            let event = Event::new(
                wall_now,
                &self.host,
                NAME,
                EventBody::NetworkActivity(record),
            );
            if self.sink.send(event) == Sent::Closed {
                return false;
            }
        }
        true
    }
}

/// The interface called `name` in this thread's network namespace.
fn find(name: &str) -> Option<NetworkInterface> {
    pnet_datalink::interfaces()
        .into_iter()
        .find(|i| i.name == name)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
