//! The one event schema every sensor emits.
//!
//! Events are serialised as JSON with a `class` tag named after the OCSF class
//! they correspond to. [`SCHEMA_VERSION`] changes whenever a field changes
//! meaning or is removed; adding an optional field does not change it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Version of the event schema written into every event.
pub const SCHEMA_VERSION: u16 = 1;

/// One observation made on this host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Schema version ([`SCHEMA_VERSION`] when written by this build).
    pub schema: u16,
    /// When the sensor observed it, nanoseconds since the Unix epoch.
    pub time_ns: u64,
    /// Id of the node (host) that observed it.
    pub host: String,
    /// Name of the sensor that produced it.
    pub sensor: String,
    /// What was observed.
    #[serde(flatten)]
    pub body: EventBody,
}

impl Event {
    /// A new event of the current schema.
    pub fn new(time_ns: u64, host: &str, sensor: &str, body: EventBody) -> Self {
        Self {
            schema: SCHEMA_VERSION,
            time_ns,
            host: host.to_owned(),
            sensor: sensor.to_owned(),
            body,
        }
    }

    /// The class of the body.
    pub fn class(&self) -> EventClass {
        self.body.class()
    }
}

/// Event payloads, tagged by OCSF class name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "class", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventBody {
    /// OCSF "Process Activity" (class 1007): procfs scans, eBPF exec.
    ProcessActivity(ProcessActivity),
    /// OCSF "Network Activity" (class 4001): one bidirectional flow record.
    NetworkActivity(FlowRecord),
    /// A socket and the process that owns it (procfs scan, eBPF connect/accept).
    SocketActivity(SocketActivity),
    /// OCSF "File System Activity" (class 1001): opens under watched paths.
    FileActivity(FileActivity),
    /// Metrics polled from a device over SNMP.
    DeviceMetrics(DeviceMetrics),
}

impl EventBody {
    /// The class of this payload.
    pub fn class(&self) -> EventClass {
        match self {
            EventBody::ProcessActivity(_) => EventClass::ProcessActivity,
            EventBody::NetworkActivity(_) => EventClass::NetworkActivity,
            EventBody::SocketActivity(_) => EventClass::SocketActivity,
            EventBody::FileActivity(_) => EventClass::FileActivity,
            EventBody::DeviceMetrics(_) => EventClass::DeviceMetrics,
        }
    }
}

/// Event classes, for filtering (`GET /api/v1/events?kind=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventClass {
    ProcessActivity,
    NetworkActivity,
    SocketActivity,
    FileActivity,
    DeviceMetrics,
}

impl EventClass {
    /// Every class, in a stable order.
    pub const ALL: &'static [EventClass] = &[
        EventClass::ProcessActivity,
        EventClass::NetworkActivity,
        EventClass::SocketActivity,
        EventClass::FileActivity,
        EventClass::DeviceMetrics,
    ];

    /// The class name as used in JSON and in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            EventClass::ProcessActivity => "process_activity",
            EventClass::NetworkActivity => "network_activity",
            EventClass::SocketActivity => "socket_activity",
            EventClass::FileActivity => "file_activity",
            EventClass::DeviceMetrics => "device_metrics",
        }
    }
}

impl std::str::FromStr for EventClass {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventClass::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = EventClass::ALL.iter().map(|c| c.as_str()).collect();
                format!(
                    "unknown event class {s:?} (expected one of: {})",
                    names.join(", ")
                )
            })
    }
}

/// A process started or exited (OCSF activity ids: 1 Launch, 2 Terminate).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessActivity {
    pub activity: ProcessActivityKind,
    pub process: ProcessInfo,
    /// Ancestors from the parent up to the root (pid 1 or the first unknown),
    /// nearest first.
    pub lineage: Vec<LineageEntry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessActivityKind {
    Launch,
    Terminate,
}

/// What is known of one process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessInfo {
    pub pid: i32,
    pub ppid: i32,
    /// Short name from `/proc/<pid>/stat`.
    pub name: String,
    /// Executable path; empty when the kernel hides it (kernel threads, or no
    /// permission).
    pub exe: String,
    pub cmdline: Vec<String>,
    pub uid: u32,
    /// Process start time, nanoseconds since the Unix epoch.
    pub start_time_ns: u64,
    /// Working directory (/proc/PID/cwd); empty when unknown (an optional
    /// field: absent in events written before it existed).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cwd: String,
}

/// One ancestor in a lineage chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineageEntry {
    pub pid: i32,
    pub name: String,
    pub exe: String,
}

/// Transport protocol of a socket or flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    Tcp,
    Udp,
    Icmp,
    Icmpv6,
    /// Any other IP protocol, by its IANA number.
    Other(u8),
}

/// Why a flow record was emitted (as NetFlow/IPFIX exporters report it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowEnd {
    /// No packet for the idle timeout.
    Idle,
    /// Open longer than the active timeout; the flow continues in a new record.
    Active,
    /// TCP FIN seen in both directions, or RST.
    End,
    /// A TCP connection attempt whose initiator acknowledged nothing shortly
    /// after its SYN (reported once, early); the flow continues in a new
    /// record.
    HalfOpen,
    /// The sensor stopped or the flow table was full.
    Forced,
}

/// One direction's counters of a flow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowCounters {
    pub packets: u64,
    pub bytes: u64,
}

/// TCP flag counts of a flow, both directions together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpFlagCounts {
    pub syn: u32,
    /// SYN without ACK: connection attempts.
    pub syn_no_ack: u32,
    pub syn_ack: u32,
    pub fin: u32,
    pub rst: u32,
}

/// A bidirectional flow. The initiator is the side that sent the first
/// packet seen (for TCP, the SYN without ACK when one was seen).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowRecord {
    pub interface: String,
    pub transport: Transport,
    pub src: std::net::IpAddr,
    pub src_port: u16,
    pub dst: std::net::IpAddr,
    pub dst_port: u16,
    pub first_ns: u64,
    pub last_ns: u64,
    /// From `src` to `dst`.
    pub forward: FlowCounters,
    /// From `dst` to `src`.
    pub reverse: FlowCounters,
    pub tcp_flags: TcpFlagCounts,
    pub end: FlowEnd,
}

/// A socket opened, closed, or seen listening, with its owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocketActivity {
    pub activity: SocketActivityKind,
    pub transport: Transport,
    pub local: std::net::SocketAddr,
    /// None for a listening socket.
    pub remote: Option<std::net::SocketAddr>,
    /// The owning process, when it could be found.
    pub process: Option<ProcessRef>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SocketActivityKind {
    /// Started listening (TCP) or bound without a peer (UDP).
    Listen,
    /// An outbound connection.
    Connect,
    /// An inbound connection accepted.
    Accept,
    /// The socket went away.
    Close,
}

/// A short reference to a process, for events about something it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRef {
    pub pid: i32,
    pub name: String,
    pub exe: String,
    pub uid: u32,
}

/// A file opened under a watched path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileActivity {
    pub activity: FileActivityKind,
    pub path: String,
    /// `open(2)` flags.
    pub flags: u32,
    pub process: ProcessRef,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileActivityKind {
    Open,
}

/// One reading of a device: an SNMP poll, or an MQTT message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceMetrics {
    /// Device name from the configuration.
    pub device: String,
    /// Agent address polled.
    pub address: String,
    /// sysUpTime in hundredths of a second.
    pub uptime_ticks: u32,
    pub description: String,
    /// True when sysUpTime went backwards since the last poll.
    pub rebooted: bool,
    /// 1, 5 and 15 minute load (UCD laLoad), when the agent has it.
    pub load: Option<[f64; 3]>,
    /// hrProcessorLoad of each processor, percent.
    pub cpu_percent: Vec<u8>,
    /// Total and available real memory in KiB (UCD memTotalReal, memAvailReal).
    pub memory_total_kib: Option<u64>,
    pub memory_available_kib: Option<u64>,
    pub interfaces: Vec<InterfaceRates>,
    /// Named readings from an MQTT payload (metric name → value).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, f64>,
    /// Size of the MQTT payload the reading came in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_bytes: Option<u64>,
}

/// Rates of one interface between two polls (none on the first poll, after a
/// reboot, or when a counter went backwards without a wrap).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InterfaceRates {
    pub index: u32,
    pub name: String,
    pub in_bytes_per_sec: Option<f64>,
    pub out_bytes_per_sec: Option<f64>,
    pub in_packets_per_sec: Option<f64>,
    pub out_packets_per_sec: Option<f64>,
    pub in_errors_per_sec: Option<f64>,
    pub out_errors_per_sec: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_keeps_class_tag() {
        let ev = Event::new(
            42,
            "host-a",
            "procfs",
            EventBody::ProcessActivity(ProcessActivity {
                activity: ProcessActivityKind::Launch,
                process: ProcessInfo {
                    pid: 10,
                    ppid: 1,
                    name: "true".into(),
                    exe: "/bin/true".into(),
                    cmdline: vec!["/bin/true".into()],
                    uid: 0,
                    start_time_ns: 41,
                    cwd: String::new(),
                },
                lineage: vec![],
            }),
        );
        let json = serde_json::to_string(&ev).expect("serialise");
        assert!(json.contains(r#""class":"process_activity""#), "{json}");
        let back: Event = serde_json::from_str(&json).expect("deserialise");
        assert_eq!(back, ev);
    }

    #[test]
    fn class_names_parse_back() {
        for c in EventClass::ALL {
            assert_eq!(c.as_str().parse::<EventClass>(), Ok(*c));
        }
        assert!("nope".parse::<EventClass>().is_err());
    }
}
