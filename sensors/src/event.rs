//! The one event schema every sensor emits.
//!
//! Events are serialised as JSON with a `class` tag named after the OCSF class
//! they correspond to. [`SCHEMA_VERSION`] changes whenever a field changes
//! meaning or is removed; adding an optional field does not change it.

use serde::{Deserialize, Serialize};

/// Version of the event schema written into every event.
pub const SCHEMA_VERSION: u16 = 1;

/// One observation made on this host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "class", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventBody {
    /// OCSF "Process Activity" (class 1007).
    ProcessActivity(ProcessActivity),
}

impl EventBody {
    /// The class of this payload.
    pub fn class(&self) -> EventClass {
        match self {
            EventBody::ProcessActivity(_) => EventClass::ProcessActivity,
        }
    }
}

/// Event classes, for filtering (`GET /api/v1/events?kind=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventClass {
    ProcessActivity,
}

impl EventClass {
    /// Every class, in a stable order.
    pub const ALL: &'static [EventClass] = &[EventClass::ProcessActivity];

    /// The class name as used in JSON and in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            EventClass::ProcessActivity => "process_activity",
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
}

/// One ancestor in a lineage chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineageEntry {
    pub pid: i32,
    pub name: String,
    pub exe: String,
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
