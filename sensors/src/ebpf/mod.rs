//! Syscalls through eBPF (aya): exec with parent and argv, TCP/UDP connect
//! and accept with the peer address, and opens of files under watched path
//! prefixes (filtered in the kernel, so ordinary opens cost no ring-buffer
//! traffic).
//!
//! The programs (ebpf/syscalls.bpf.c) attach to tracepoints and read kernel
//! structs with CO-RE; build.rs compiles them with clang. Loading needs root
//! (or CAP_BPF + CAP_PERFMON), kernel BTF and a mounted tracefs (mounted
//! here when missing and running as root). When the kernel or permissions
//! refuse, [`Sensor::start`] returns [`SensorError::Unavailable`] with the
//! reason; the node marks the sensor unhealthy and runs on.

#[cfg(feature = "ebpf")]
mod loader;
pub mod records;

use std::sync::Arc;

use crate::event::{FileActivityKind, LineageEntry, ProcessActivityKind, SocketActivityKind};
use crate::{
    EventBody, FileActivity, ProcessActivity, ProcessInfo, ProcessRef, Sensor, SensorError,
    SensorStats, SocketActivity, Transport,
};
use records::{Header, Record};

const NAME: &str = "ebpf";
/// Most path prefixes the kernel side matches.
pub const MAX_WATCH_PATHS: usize = 8;
/// Longest path prefix, bytes (NUL excluded).
pub const MAX_WATCH_PATH_LEN: usize = 63;
/// Ancestors looked up in /proc for an exec's lineage.
const LINEAGE_DEPTH: usize = 8;

/// Settings of the eBPF sensor.
#[derive(Debug, Clone)]
pub struct EbpfConfig {
    pub host: String,
    /// Path prefixes whose opens are reported (at most 8, each < 64 bytes).
    pub watch_paths: Vec<String>,
}

/// The eBPF syscall sensor.
#[derive(Debug)]
pub struct EbpfSensor {
    #[cfg_attr(not(feature = "ebpf"), allow(dead_code))]
    config: EbpfConfig,
    stats: Arc<SensorStats>,
    #[cfg(feature = "ebpf")]
    worker: Option<crate::worker::Worker>,
}

impl EbpfSensor {
    pub fn new(config: EbpfConfig) -> Self {
        Self {
            config,
            stats: Arc::new(SensorStats::new(NAME)),
            #[cfg(feature = "ebpf")]
            worker: None,
        }
    }
}

impl Sensor for EbpfSensor {
    fn name(&self) -> &'static str {
        NAME
    }

    #[cfg(feature = "ebpf")]
    fn start(&mut self, sink: crate::EventSink) -> Result<(), SensorError> {
        if self.worker.is_some() {
            return Err(SensorError::AlreadyStarted(NAME));
        }
        self.worker = Some(loader::spawn(self.config.clone(), sink)?);
        self.stats.set_health(crate::HealthState::Healthy, "");
        Ok(())
    }

    #[cfg(not(feature = "ebpf"))]
    fn start(&mut self, _sink: crate::EventSink) -> Result<(), SensorError> {
        Err(unavailable(
            "eBPF programs",
            "built without the ebpf feature",
        ))
    }

    fn stop(&mut self) {
        #[cfg(feature = "ebpf")]
        if let Some(worker) = self.worker.take() {
            worker.stop(NAME);
            self.stats.set_health(crate::HealthState::Stopped, "");
        }
    }

    fn stats(&self) -> Arc<SensorStats> {
        self.stats.clone()
    }
}

impl Drop for EbpfSensor {
    fn drop(&mut self) {
        self.stop();
    }
}

fn unavailable(what: &str, reason: impl Into<String>) -> SensorError {
    SensorError::Unavailable {
        sensor: NAME,
        what: what.into(),
        reason: reason.into(),
    }
}

/// Turns a record into an event body, with lineage and exe from /proc.
pub fn body_of(record: Record) -> EventBody {
    match record {
        Record::Exec {
            header,
            filename,
            argv,
        } => EventBody::ProcessActivity(ProcessActivity {
            activity: ProcessActivityKind::Launch,
            lineage: lineage(header.ppid as i32),
            process: ProcessInfo {
                pid: header.pid as i32,
                ppid: header.ppid as i32,
                name: header.comm,
                exe: filename,
                cmdline: argv,
                uid: header.uid,
                start_time_ns: crate::now_ns(),
                // Read right after the exec; empty if it already exited.
                cwd: std::fs::read_link(format!("/proc/{}/cwd", header.pid))
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            },
        }),
        Record::Connect { header, remote } => socket(SocketActivityKind::Connect, header, remote),
        Record::Accept { header, remote } => socket(SocketActivityKind::Accept, header, remote),
        Record::Open {
            header,
            flags,
            path,
        } => EventBody::FileActivity(FileActivity {
            activity: FileActivityKind::Open,
            path,
            flags,
            process: process_ref(&header),
        }),
    }
}

fn socket(
    activity: SocketActivityKind,
    header: Header,
    remote: Option<std::net::SocketAddr>,
) -> EventBody {
    // The tracepoints see the peer only; the local end is left unspecified.
    let local = match remote {
        Some(std::net::SocketAddr::V6(_)) => std::net::SocketAddr::from(([0u16; 8], 0)),
        _ => std::net::SocketAddr::from(([0u8; 4], 0)),
    };
    EventBody::SocketActivity(SocketActivity {
        activity,
        transport: Transport::Tcp,
        local,
        remote,
        process: Some(process_ref(&header)),
    })
}

fn process_ref(h: &Header) -> ProcessRef {
    ProcessRef {
        pid: h.pid as i32,
        name: h.comm.clone(),
        exe: exe_of(h.pid as i32),
        uid: h.uid,
    }
}

fn exe_of(pid: i32) -> String {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn lineage(ppid: i32) -> Vec<LineageEntry> {
    let mut out = Vec::new();
    let mut pid = ppid;
    while pid > 0 && out.len() < LINEAGE_DEPTH {
        let Ok(stat) = procfs::process::Process::new(pid).and_then(|p| p.stat()) else {
            out.push(LineageEntry {
                pid,
                name: String::new(),
                exe: String::new(),
            });
            break;
        };
        out.push(LineageEntry {
            pid,
            name: stat.comm.clone(),
            exe: exe_of(pid),
        });
        pid = stat.ppid;
    }
    out
}
