//! Per-entity feature windows: the anomaly model's input.
//!
//! Events are counted into tumbling windows of a fixed width, aligned to
//! multiples of it, one accumulator per entity: a flow's source address, the
//! host, a program (by executable), an SNMP device. When an event falls past
//! the open window, or [`FeatureExtractor::flush`] is called with a later
//! time, every entity's window closes into a [`FeatureWindow`] whose values
//! are scaled to [0, 1]: counts on a log scale up to a stated ceiling,
//! ratios as they are. The names and order of the values are the feature
//! schema, versioned per kind by [`EntityKind::version`]; a model records the
//! schema it was trained on and is never fed another.
//!
//! Three pieces of state outlive a window: the parent→child pairs seen so
//! far (for "rare lineage"), per-interface moving averages of SNMP rates and
//! per-metric moving averages of MQTT readings (for z-scores). All are
//! bounded.

use std::collections::HashMap;
use std::net::IpAddr;

use amoskys_sensors::event::{
    DeviceMetrics, Event, EventBody, FlowRecord, ProcessActivity, ProcessActivityKind,
    SocketActivity, SocketActivityKind,
};

use crate::Subject;

mod accumulators;
use accumulators::{DeviceAcc, Ewma, HostAcc, ProcessAcc, SourceAcc};

/// The newest version of any schema below. Each kind's own version
/// ([`EntityKind::version`]) is bumped when one of its features is added,
/// removed, reordered or rescaled.
pub const FEATURE_SCHEMA_VERSION: u32 = 2;
/// Parent→child pairs remembered for the rarity of a launch.
const MAX_PAIRS: usize = 65_536;
/// Interfaces with a moving average of their rates; so many device metrics
/// too.
const MAX_INTERFACES: usize = 4_096;
/// Weight of the newest window in an interface's moving average.
const EWMA_ALPHA: f64 = 0.1;
/// A pair seen fewer times than this before a launch makes it rare.
const RARE_PAIR: u32 = 2;
const SHELLS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ksh", "mksh", "fish", "csh", "tcsh", "busybox",
];

/// What a window is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntityKind {
    /// A flow's source address.
    Source,
    /// The node's own host.
    Host,
    /// A program, by executable path.
    Process,
    /// A device: polled by SNMP or publishing over MQTT.
    Device,
}

impl EntityKind {
    pub const ALL: [EntityKind; 4] = [Self::Source, Self::Host, Self::Process, Self::Device];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Source => "source",
            Self::Host => "host",
            Self::Process => "process",
            Self::Device => "device",
        }
    }

    /// The version of this kind's features: 2 for devices (message rate,
    /// payload size and metric z-score added), 1 for the others.
    pub fn version(self) -> u32 {
        match self {
            Self::Device => FEATURE_SCHEMA_VERSION,
            Self::Source | Self::Host | Self::Process => 1,
        }
    }

    /// The feature schema, e.g. `source@1`.
    pub fn schema(self) -> String {
        format!("{}@{}", self.as_str(), self.version())
    }

    /// Names of the features, in order.
    pub fn features(self) -> &'static [&'static str] {
        match self {
            Self::Source => &[
                "flows",
                "distinct_dst_ports",
                "distinct_dst_hosts",
                "syn_without_ack_ratio",
                "failed_tcp_ratio",
                "completed_tcp_ratio",
                "bytes_out",
                "bytes_in",
                "packets_out",
                "packets_in",
                "bytes_out_per_flow",
                "udp_ratio",
                "icmp_ratio",
            ],
            Self::Host => &[
                "launches",
                "distinct_programs",
                "rare_parent_child",
                "shell_launches",
                "root_launch_ratio",
                "exits",
                "listens",
                "connects",
                "accepts",
                "distinct_remotes",
                "file_opens",
                "distinct_files",
            ],
            Self::Process => &[
                "launches",
                "children",
                "distinct_children",
                "shell_children",
                "connects",
                "accepts",
                "listens",
                "distinct_remotes",
                "distinct_remote_ports",
                "file_opens",
                "distinct_files",
            ],
            Self::Device => &[
                "cpu",
                "load_1m",
                "memory_used_ratio",
                "in_bytes_rate",
                "out_bytes_rate",
                "in_packets_rate",
                "out_packets_rate",
                "error_rate",
                "max_rate_zscore",
                "rebooted",
                "messages",
                "payload_bytes",
                "max_metric_zscore",
            ],
        }
    }
}

impl std::str::FromStr for EntityKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown entity kind {s:?} (source, host, process, device)"))
    }
}

/// One entity's closed window.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureWindow {
    pub kind: EntityKind,
    pub subject: Subject,
    pub start_ns: u64,
    pub end_ns: u64,
    /// In [0, 1], named by [`EntityKind::features`].
    pub values: Vec<f32>,
}

/// `ln(1 + x) / ln(1 + ceiling)`, clamped to [0, 1].
pub fn log_scale(x: f64, ceiling: f64) -> f32 {
    if x.is_nan() || x <= 0.0 {
        return 0.0;
    }
    ((x.ln_1p() / ceiling.ln_1p()) as f32).min(1.0)
}

fn ratio(part: u64, whole: u64) -> f32 {
    if whole == 0 {
        0.0
    } else {
        (part as f64 / whole as f64) as f32
    }
}

fn is_shell(exe: &str) -> bool {
    let name = exe.rsplit('/').next().unwrap_or(exe);
    SHELLS.contains(&name)
}

/// Turns a stream of events into closed feature windows.
#[derive(Debug)]
pub struct FeatureExtractor {
    width_ns: u64,
    max_entities: usize,
    /// Start of the open window; none before the first event.
    open: Option<u64>,
    sources: HashMap<IpAddr, SourceAcc>,
    host: Option<HostAcc>,
    processes: HashMap<String, ProcessAcc>,
    devices: HashMap<String, DeviceAcc>,
    pairs: HashMap<(String, String), u32>,
    rates: HashMap<(String, u32), Ewma>,
    /// Per (device, metric) of MQTT readings.
    readings: HashMap<(String, String), Ewma>,
}

impl FeatureExtractor {
    /// Windows of `width_ns`; at most `max_entities` sources, programs and
    /// devices each per window (events of further ones are not counted).
    pub fn new(width_ns: u64, max_entities: usize) -> Self {
        Self {
            width_ns: width_ns.max(1),
            max_entities: max_entities.max(1),
            open: None,
            sources: HashMap::new(),
            host: None,
            processes: HashMap::new(),
            devices: HashMap::new(),
            pairs: HashMap::new(),
            rates: HashMap::new(),
            readings: HashMap::new(),
        }
    }

    pub fn width_ns(&self) -> u64 {
        self.width_ns
    }

    /// Counts `event`, first closing the open window when the event lies
    /// past it. Events older than the open window count into it.
    pub fn push(&mut self, event: &Event) -> Vec<FeatureWindow> {
        let closed = self.flush(event.time_ns);
        let start = event.time_ns - event.time_ns % self.width_ns;
        self.open.get_or_insert(start);
        match &event.body {
            EventBody::NetworkActivity(f) => self.flow(f),
            EventBody::ProcessActivity(p) => self.process(p),
            EventBody::SocketActivity(s) => self.socket(s),
            EventBody::FileActivity(f) => {
                let h = self.host.get_or_insert_with(HostAcc::default);
                h.opens += 1;
                h.files.insert(f.path.clone());
                if let Some(p) = self.program(&f.process.exe) {
                    p.opens += 1;
                    p.files.insert(f.path.clone());
                }
            }
            EventBody::DeviceMetrics(d) => self.device(d),
            _ => {}
        }
        closed
    }

    /// Closes the open window if `now_ns` lies past its end.
    pub fn flush(&mut self, now_ns: u64) -> Vec<FeatureWindow> {
        match self.open {
            Some(start) if now_ns >= start.saturating_add(self.width_ns) => self.close(),
            _ => Vec::new(),
        }
    }

    /// Closes the open window whatever the time (at shutdown, or at the end
    /// of a replay).
    pub fn close(&mut self) -> Vec<FeatureWindow> {
        let Some(start_ns) = self.open.take() else {
            return Vec::new();
        };
        let end_ns = start_ns.saturating_add(self.width_ns);
        let window = |kind, subject, values| FeatureWindow {
            kind,
            subject,
            start_ns,
            end_ns,
            values,
        };
        let mut out = Vec::new();
        let mut sources: Vec<_> = self.sources.drain().collect();
        sources.sort_by_key(|(ip, _)| *ip);
        for (ip, acc) in sources {
            out.push(window(
                EntityKind::Source,
                Subject::SourceIp(ip),
                acc.values(),
            ));
        }
        if let Some(h) = self.host.take() {
            out.push(window(EntityKind::Host, Subject::Host, h.values()));
        }
        let mut processes: Vec<_> = self.processes.drain().collect();
        processes.sort_by(|a, b| a.0.cmp(&b.0));
        for (exe, acc) in processes {
            out.push(window(
                EntityKind::Process,
                Subject::Process { pid: 0, exe },
                acc.values(),
            ));
        }
        let mut devices: Vec<_> = self.devices.drain().collect();
        devices.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, acc) in devices {
            out.push(window(
                EntityKind::Device,
                Subject::Device(name),
                acc.values(),
            ));
        }
        out
    }

    fn program(&mut self, exe: &str) -> Option<&mut ProcessAcc> {
        if exe.is_empty() {
            return None;
        }
        if !self.processes.contains_key(exe) && self.processes.len() >= self.max_entities {
            return None;
        }
        Some(self.processes.entry(exe.to_owned()).or_default())
    }

    fn flow(&mut self, f: &FlowRecord) {
        let full = self.sources.len() >= self.max_entities;
        if full && !self.sources.contains_key(&f.src) {
            return;
        }
        self.sources.entry(f.src).or_default().add(f);
    }

    fn process(&mut self, p: &ProcessActivity) {
        let h = self.host.get_or_insert_with(HostAcc::default);
        if p.activity == ProcessActivityKind::Terminate {
            h.exits += 1;
            return;
        }
        let exe = p.process.exe.as_str();
        let parent = p.lineage.first().map(|l| l.exe.as_str()).unwrap_or("");
        h.launches += 1;
        h.programs.insert(exe.to_owned());
        h.shells += u64::from(is_shell(exe));
        h.root_launches += u64::from(p.process.uid == 0);
        let key = (parent.to_owned(), exe.to_owned());
        let seen = self.pairs.get(&key).copied().unwrap_or(0);
        if seen < RARE_PAIR {
            h.rare_pairs += 1;
        }
        if seen > 0 || self.pairs.len() < MAX_PAIRS {
            *self.pairs.entry(key).or_insert(0) += 1;
        }
        if let Some(acc) = self.program(exe) {
            acc.launches += 1;
        }
        if let Some(acc) = self.program(parent) {
            acc.children += 1;
            acc.child_programs.insert(exe.to_owned());
            acc.shell_children += u64::from(is_shell(exe));
        }
    }

    fn socket(&mut self, s: &SocketActivity) {
        let h = self.host.get_or_insert_with(HostAcc::default);
        match s.activity {
            SocketActivityKind::Listen => h.listens += 1,
            SocketActivityKind::Connect => h.connects += 1,
            SocketActivityKind::Accept => h.accepts += 1,
            SocketActivityKind::Close => return,
        }
        if let Some(r) = s.remote {
            h.remotes.insert(r.ip());
        }
        let Some(exe) = s.process.as_ref().map(|p| p.exe.as_str()) else {
            return;
        };
        if let Some(acc) = self.program(exe) {
            match s.activity {
                SocketActivityKind::Listen => acc.listens += 1,
                SocketActivityKind::Connect => acc.connects += 1,
                SocketActivityKind::Accept => acc.accepts += 1,
                SocketActivityKind::Close => {}
            }
            if let Some(r) = s.remote {
                acc.remotes.insert(r.ip());
                acc.remote_ports.insert(r.port());
            }
        }
    }

    fn device(&mut self, d: &DeviceMetrics) {
        let full = self.devices.len() >= self.max_entities;
        if full && !self.devices.contains_key(&d.device) {
            return;
        }
        let mut max_z = 0f64;
        let (mut in_b, mut out_b, mut in_p, mut out_p, mut errors) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for i in &d.interfaces {
            let ib = i.in_bytes_per_sec.unwrap_or(0.0);
            let ob = i.out_bytes_per_sec.unwrap_or(0.0);
            in_b += ib;
            out_b += ob;
            in_p += i.in_packets_per_sec.unwrap_or(0.0);
            out_p += i.out_packets_per_sec.unwrap_or(0.0);
            errors += i.in_errors_per_sec.unwrap_or(0.0) + i.out_errors_per_sec.unwrap_or(0.0);
            if i.in_bytes_per_sec.is_none() && i.out_bytes_per_sec.is_none() {
                continue;
            }
            let key = (d.device.clone(), i.index);
            if !self.rates.contains_key(&key) && self.rates.len() >= MAX_INTERFACES {
                continue;
            }
            let ewma = self.rates.entry(key).or_insert(Ewma {
                mean: 0.0,
                var: 0.0,
                seen: 0,
            });
            max_z = max_z.max(ewma.observe((ib + ob).max(0.0).ln_1p()));
        }
        let mut max_metric_z = 0f64;
        for (metric, value) in &d.metrics {
            let key = (d.device.clone(), metric.clone());
            if !self.readings.contains_key(&key) && self.readings.len() >= MAX_INTERFACES {
                continue;
            }
            let ewma = self.readings.entry(key).or_insert(Ewma {
                mean: 0.0,
                var: 0.0,
                seen: 0,
            });
            max_metric_z = max_metric_z.max(ewma.observe(*value));
        }
        let acc = self.devices.entry(d.device.clone()).or_default();
        acc.polls += 1;
        acc.payload_bytes += d.payload_bytes.unwrap_or(0) as f64;
        acc.max_metric_z = acc.max_metric_z.max(max_metric_z);
        if !d.cpu_percent.is_empty() {
            let sum: f64 = d.cpu_percent.iter().map(|c| f64::from(*c)).sum();
            acc.cpu += sum / d.cpu_percent.len() as f64;
        }
        acc.load += d.load.map_or(0.0, |l| l[0].max(0.0));
        if let (Some(total), Some(avail)) = (d.memory_total_kib, d.memory_available_kib) {
            acc.memory_used += 1.0 - ratio(avail.min(total), total) as f64;
        }
        acc.in_bytes += in_b;
        acc.out_bytes += out_b;
        acc.in_packets += in_p;
        acc.out_packets += out_p;
        acc.errors += errors;
        acc.max_z = acc.max_z.max(max_z);
        acc.rebooted |= d.rebooted;
    }
}

#[cfg(test)]
mod tests;
