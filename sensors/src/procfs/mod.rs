//! Process start and exit, with lineage, and socket ownership, from `/proc`.
//!
//! A dedicated thread lists `/proc` every `interval`. A pid seen for the first
//! time is read once (stat, exe, cmdline, uid) and reported as a launch; a pid
//! that disappeared is reported as a terminate. Processes alive when the sensor
//! starts seed the table without events, so lineage of later children resolves.
//! Polling misses processes that live shorter than one interval; the eBPF exec
//! sensor covers those. Kernel threads are not reported. Sockets are diffed
//! the same way in [`sockets`]. [`usage`] reads this process's own
//! resource use.

pub mod sockets;
pub mod usage;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc as std_mpsc;

use crate::worker::{StopSignal, Worker};
use std::time::Duration;

use crate::event::{LineageEntry, ProcessActivityKind, ProcessRef};
use crate::{
    Event, EventBody, EventSink, HealthState, ProcessActivity, ProcessInfo, Sensor, SensorError,
    SensorStats, Sent, now_ns,
};
use sockets::SocketTable;

const NAME: &str = "procfs";
/// Longest lineage chain reported; also guards against ppid cycles.
const MAX_LINEAGE: usize = 64;
/// `PF_KTHREAD` in `/proc/<pid>/stat` flags.
const PF_KTHREAD: u32 = 0x0020_0000;

/// Settings of the procfs sensor.
#[derive(Debug, Clone)]
pub struct ProcfsConfig {
    /// Time between two scans of `/proc`.
    pub interval: Duration,
    /// Host id written into every event.
    pub host: String,
    /// Also report which process listens, connects or accepts where.
    pub sockets: bool,
}

/// The procfs process sensor.
#[derive(Debug)]
pub struct ProcfsSensor {
    config: ProcfsConfig,
    stats: Arc<SensorStats>,
    worker: Option<Worker>,
}

impl ProcfsSensor {
    pub fn new(config: ProcfsConfig) -> Self {
        Self {
            config,
            stats: Arc::new(SensorStats::new(NAME)),
            worker: None,
        }
    }
}

impl Sensor for ProcfsSensor {
    fn name(&self) -> &'static str {
        NAME
    }

    fn start(&mut self, sink: EventSink) -> Result<(), SensorError> {
        if self.worker.is_some() {
            return Err(SensorError::AlreadyStarted(NAME));
        }
        let pids = list_pids().map_err(|source| SensorError::Io {
            sensor: NAME,
            context: "cannot list /proc".into(),
            source,
        })?;
        let mut table = ProcessTable::default();
        table.pass(&pids, read_process);
        let mut socket_table = SocketTable::default();
        if self.config.sockets {
            // Seed: sockets open at start are not reported.
            let entries = sockets::read_tables().map_err(|source| SensorError::Io {
                sensor: NAME,
                context: "cannot read /proc/net socket tables".into(),
                source,
            })?;
            socket_table.pass(entries, |new| sockets::find_owners(new, table.refs()));
        }
        let config = self.config.clone();
        self.stats.set_health(HealthState::Healthy, "");
        self.worker = Some(Worker::spawn(NAME, None, move |stop| {
            run(config, table, socket_table, sink, stop)
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

impl Drop for ProcfsSensor {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(
    config: ProcfsConfig,
    mut table: ProcessTable,
    mut socket_table: SocketTable,
    sink: EventSink,
    stop: StopSignal,
) {
    let stats = sink.stats();
    // A closed or signalled stop channel ends the loop; only a timeout scans.
    while let Err(std_mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(config.interval) {
        let pids = match list_pids() {
            Ok(pids) => pids,
            Err(err) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                stats.set_health(HealthState::Unhealthy, format!("cannot list /proc: {err}"));
                continue;
            }
        };
        let now = now_ns();
        let mut bodies: Vec<EventBody> = table
            .pass(&pids, read_process)
            .into_iter()
            .map(EventBody::ProcessActivity)
            .collect();
        if config.sockets {
            match sockets::read_tables() {
                Ok(entries) => bodies.extend(
                    socket_table
                        .pass(entries, |new| sockets::find_owners(new, table.refs()))
                        .into_iter()
                        .map(EventBody::SocketActivity),
                ),
                Err(err) => {
                    stats.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(error = %err, "cannot read socket tables");
                }
            }
        }
        for body in bodies {
            if sink.send(Event::new(now, &config.host, NAME, body)) == Sent::Closed {
                return;
            }
        }
        stats.last_pass_ns.store(now, Ordering::Relaxed);
        if stats.health().state != HealthState::Healthy {
            stats.set_health(HealthState::Healthy, "");
        }
    }
}

/// The processes known from the previous pass. Pure: the caller lists pids
/// and supplies a reader, so the diffing is testable without `/proc`.
#[derive(Debug, Default)]
pub struct ProcessTable {
    procs: HashMap<i32, ProcessInfo>,
}

impl ProcessTable {
    /// Applies one listing: reads pids not seen before, forgets pids that are
    /// gone, and returns the launches and terminations, launches first.
    /// `read` returns `None` for a pid that vanished or is a kernel thread.
    pub fn pass(
        &mut self,
        pids: &[i32],
        mut read: impl FnMut(i32) -> Option<ProcessInfo>,
    ) -> Vec<ProcessActivity> {
        let mut launched = Vec::new();
        for &pid in pids {
            if !self.procs.contains_key(&pid)
                && let Some(info) = read(pid)
            {
                self.procs.insert(pid, info);
                launched.push(pid);
            }
        }
        let alive: std::collections::HashSet<i32> = pids.iter().copied().collect();
        let gone: Vec<i32> = self
            .procs
            .keys()
            .copied()
            .filter(|pid| !alive.contains(pid))
            .collect();

        let mut out = Vec::with_capacity(launched.len() + gone.len());
        for pid in launched {
            if let Some(info) = self.procs.get(&pid) {
                out.push(self.activity(ProcessActivityKind::Launch, info.clone()));
            }
        }
        // Lineage of exited processes is taken before any of them is removed.
        let terminated: Vec<_> = gone
            .iter()
            .filter_map(|pid| self.procs.get(pid).cloned())
            .map(|info| self.activity(ProcessActivityKind::Terminate, info))
            .collect();
        for pid in &gone {
            self.procs.remove(pid);
        }
        out.extend(terminated);
        out
    }

    /// Ancestors of `pid`, nearest first, as far as the table knows them.
    pub fn lineage(&self, pid: i32) -> Vec<LineageEntry> {
        let mut chain = Vec::new();
        let mut next = self.procs.get(&pid).map(|p| p.ppid);
        while let Some(ppid) = next {
            if ppid <= 0 || chain.len() >= MAX_LINEAGE {
                break;
            }
            match self.procs.get(&ppid) {
                Some(parent) => {
                    chain.push(LineageEntry {
                        pid: parent.pid,
                        name: parent.name.clone(),
                        exe: parent.exe.clone(),
                    });
                    next = Some(parent.ppid);
                }
                None => {
                    chain.push(LineageEntry {
                        pid: ppid,
                        name: String::new(),
                        exe: String::new(),
                    });
                    break;
                }
            }
        }
        chain
    }

    /// Every tracked process as a short reference, for socket owner lookup.
    pub fn refs(&self) -> impl Iterator<Item = (i32, ProcessRef)> + '_ {
        self.procs.values().map(|p| {
            (
                p.pid,
                ProcessRef {
                    pid: p.pid,
                    name: p.name.clone(),
                    exe: p.exe.clone(),
                    uid: p.uid,
                },
            )
        })
    }

    /// Number of processes currently tracked.
    pub fn len(&self) -> usize {
        self.procs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.procs.is_empty()
    }

    fn activity(&self, activity: ProcessActivityKind, process: ProcessInfo) -> ProcessActivity {
        ProcessActivity {
            activity,
            lineage: self.lineage(process.pid),
            process,
        }
    }
}

fn list_pids() -> std::io::Result<Vec<i32>> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let entry = entry?;
        if let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) {
            pids.push(pid);
        }
    }
    Ok(pids)
}

/// Reads one process; `None` when it is gone or a kernel thread.
fn read_process(pid: i32) -> Option<ProcessInfo> {
    let proc = procfs::process::Process::new(pid).ok()?;
    let stat = proc.stat().ok()?;
    if stat.flags & PF_KTHREAD != 0 {
        return None;
    }
    let exe = proc
        .exe()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let cmdline = proc.cmdline().unwrap_or_default();
    let uid = proc.uid().unwrap_or(u32::MAX);
    Some(ProcessInfo {
        pid,
        ppid: stat.ppid,
        name: stat.comm,
        exe,
        cmdline,
        uid,
        start_time_ns: start_time_ns(stat.starttime),
        cwd: proc
            .cwd()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default(),
    })
}

fn start_time_ns(ticks_since_boot: u64) -> u64 {
    let boot_ns = procfs::boot_time_secs()
        .unwrap_or(0)
        .saturating_mul(1_000_000_000);
    let tps = procfs::ticks_per_second().max(1);
    boot_ns.saturating_add(ticks_since_boot.saturating_mul(1_000_000_000) / tps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(pid: i32, ppid: i32, name: &str) -> ProcessInfo {
        ProcessInfo {
            pid,
            ppid,
            name: name.into(),
            exe: format!("/bin/{name}"),
            cmdline: vec![name.into()],
            uid: 0,
            start_time_ns: 0,
            cwd: String::new(),
        }
    }

    fn reader(all: &[ProcessInfo]) -> impl FnMut(i32) -> Option<ProcessInfo> + '_ {
        move |pid| all.iter().find(|p| p.pid == pid).cloned()
    }

    #[test]
    fn launches_and_terminations_with_lineage() {
        let all = [
            info(1, 0, "init"),
            info(10, 1, "sshd"),
            info(20, 10, "bash"),
        ];
        let mut table = ProcessTable::default();
        assert_eq!(table.pass(&[1, 10], reader(&all)).len(), 2);

        let out = table.pass(&[1, 10, 20], reader(&all));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].activity, ProcessActivityKind::Launch);
        assert_eq!(out[0].process.pid, 20);
        let chain: Vec<_> = out[0].lineage.iter().map(|l| l.pid).collect();
        assert_eq!(chain, vec![10, 1]);

        // Parent and child exit together: both keep their lineage.
        let out = table.pass(&[1], reader(&all));
        assert_eq!(out.len(), 2);
        assert!(
            out.iter()
                .all(|a| a.activity == ProcessActivityKind::Terminate)
        );
        let bash = out.iter().find(|a| a.process.pid == 20).expect("bash");
        assert_eq!(bash.lineage[0].name, "sshd");
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn unreadable_pids_are_retried_and_cycles_end() {
        let mut table = ProcessTable::default();
        assert!(table.pass(&[5], |_| None).is_empty());
        let cyc = [info(5, 6, "a"), info(6, 5, "b")];
        let out = table.pass(&[5, 6], reader(&cyc));
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|a| a.lineage.len() <= MAX_LINEAGE));
    }

    #[test]
    fn reads_this_process() {
        let me = read_process(std::process::id() as i32).expect("own process");
        assert_eq!(me.pid, std::process::id() as i32);
        assert!(!me.exe.is_empty());
        assert!(me.start_time_ns > 0);
    }
}
