//! Loads and attaches the BPF programs, then reads the ring buffer on the
//! sensor's own thread.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use aya::maps::{Array, MapData, RingBuf};
use aya::programs::TracePoint;
use aya::{Ebpf, include_bytes_aligned};
use rustix::event::{PollFd, PollFlags, Timespec, poll};

use super::{EbpfConfig, MAX_WATCH_PATH_LEN, MAX_WATCH_PATHS, NAME, body_of, records, unavailable};
use crate::worker::{StopSignal, Worker};
use crate::{Event, EventSink, SensorError, Sent, now_ns};

static OBJECT: &[u8] = include_bytes_aligned!(concat!(env!("OUT_DIR"), "/syscalls.bpf.o"));

/// (program, tracepoint category, tracepoint name).
const PROGRAMS: [(&str, &str, &str); 6] = [
    ("handle_exec", "sched", "sched_process_exec"),
    ("handle_connect", "syscalls", "sys_enter_connect"),
    ("handle_accept4_enter", "syscalls", "sys_enter_accept4"),
    ("handle_accept4_exit", "syscalls", "sys_exit_accept4"),
    ("handle_accept_enter", "syscalls", "sys_enter_accept"),
    ("handle_accept_exit", "syscalls", "sys_exit_accept"),
];
const OPEN_PROGRAM: (&str, &str, &str) = ("handle_openat", "syscalls", "sys_enter_openat");
/// Longest wait for the ring buffer before checking the stop signal.
const WAIT: Duration = Duration::from_millis(100);

/// Loads the programs on a new thread and returns once they are attached
/// (or with the reason they could not be).
pub(super) fn spawn(config: EbpfConfig, sink: EventSink) -> Result<Worker, SensorError> {
    preflight()?;
    let (ready_tx, ready_rx) = std_mpsc::channel::<Result<(), SensorError>>();
    let worker = Worker::spawn(NAME, None, move |stop| match load(&config) {
        Ok((bpf, ring)) => {
            let _ = ready_tx.send(Ok(()));
            read(bpf, ring, &config, &sink, &stop);
        }
        Err(e) => {
            let _ = ready_tx.send(Err(e));
        }
    })?;
    match ready_rx.recv_timeout(Duration::from_secs(30)) {
        Ok(Ok(())) => Ok(worker),
        Ok(Err(e)) => {
            worker.stop(NAME);
            Err(e)
        }
        Err(_) => {
            // Not joined: a load stuck in the kernel must not hold the node.
            drop(worker);
            Err(unavailable(
                "eBPF programs",
                "loading did not finish within 30 s",
            ))
        }
    }
}

/// Refusals that are clearer when named before trying.
fn preflight() -> Result<(), SensorError> {
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        return Err(unavailable(
            "kernel BTF",
            "/sys/kernel/btf/vmlinux is missing (CONFIG_DEBUG_INFO_BTF off)",
        ));
    }
    let tracing = Path::new("/sys/kernel/tracing/events");
    if tracing.exists() || Path::new("/sys/kernel/debug/tracing/events").exists() {
        return Ok(());
    }
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tracefs", "tracefs", "/sys/kernel/tracing"])
        .output();
    match mounted {
        Ok(out) if out.status.success() && tracing.exists() => {
            tracing::info!(
                sensor = NAME,
                path = "/sys/kernel/tracing",
                "mounted tracefs for tracepoints"
            );
            Ok(())
        }
        Ok(out) => Err(unavailable(
            "tracefs",
            format!(
                "not mounted and mounting it failed: {} (as root: mount -t tracefs tracefs /sys/kernel/tracing)",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        )),
        Err(e) => Err(unavailable(
            "tracefs",
            format!("not mounted, and `mount` could not run: {e}"),
        )),
    }
}

/// An aya error with its whole source chain (the OS error is at the end).
fn refused(what: &str, e: impl std::error::Error) -> SensorError {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    let hint =
        if text.contains("ermission") || text.contains("EPERM") || text.contains("not permitted") {
            " (needs root, or CAP_BPF and CAP_PERFMON)"
        } else {
            ""
        };
    unavailable(what, format!("{text}{hint}"))
}

fn load(config: &EbpfConfig) -> Result<(Ebpf, RingBuf<MapData>), SensorError> {
    let mut bpf = Ebpf::load(OBJECT).map_err(|e| refused("eBPF object syscalls.bpf.o", e))?;
    {
        let map = bpf
            .map_mut("watch")
            .ok_or_else(|| unavailable("map watch", "missing from the object"))?;
        let mut watch: Array<_, [u8; MAX_WATCH_PATH_LEN + 1]> =
            Array::try_from(map).map_err(|e| refused("map watch", e))?;
        for (i, path) in config.watch_paths.iter().take(MAX_WATCH_PATHS).enumerate() {
            let mut value = [0u8; MAX_WATCH_PATH_LEN + 1];
            let bytes = path.as_bytes();
            let n = bytes.len().min(MAX_WATCH_PATH_LEN);
            value[..n].copy_from_slice(&bytes[..n]);
            watch
                .set(i as u32, value, 0)
                .map_err(|e| refused("map watch", e))?;
        }
    }
    let mut programs = PROGRAMS.to_vec();
    if !config.watch_paths.is_empty() {
        programs.push(OPEN_PROGRAM);
    }
    for (name, category, tracepoint) in programs {
        let what = format!("tracepoint {category}/{tracepoint}");
        let program: &mut TracePoint = bpf
            .program_mut(name)
            .ok_or_else(|| unavailable(&what, format!("program {name} missing from the object")))?
            .try_into()
            .map_err(|e| refused(&what, e))?;
        program.load().map_err(|e| refused(&what, e))?;
        program
            .attach(category, tracepoint)
            .map_err(|e| refused(&what, e))?;
    }
    let events = bpf
        .take_map("events")
        .ok_or_else(|| unavailable("map events", "missing from the object"))?;
    let ring = RingBuf::try_from(events).map_err(|e| refused("map events", e))?;
    tracing::info!(
        sensor = NAME,
        watch_paths = config.watch_paths.len(),
        "ebpf programs attached"
    );
    Ok((bpf, ring))
}

/// Drains the ring buffer until stopped. `_bpf` keeps the programs attached.
fn read(
    _bpf: Ebpf,
    mut ring: RingBuf<MapData>,
    config: &EbpfConfig,
    sink: &EventSink,
    stop: &StopSignal,
) {
    let stats = sink.stats();
    let timeout = Timespec {
        tv_sec: 0,
        tv_nsec: WAIT.as_nanos() as _,
    };
    loop {
        while let Some(item) = ring.next() {
            match records::parse(&item) {
                Ok(record) => {
                    let event = Event::new(now_ns(), &config.host, NAME, body_of(record));
                    if sink.send(event) == Sent::Closed {
                        return;
                    }
                }
                Err(e) => {
                    stats.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(sensor = NAME, error = %e, "skipped a ring buffer record");
                }
            }
        }
        stats.last_pass_ns.store(now_ns(), Ordering::Relaxed);
        if !matches!(stop.try_recv(), Err(std_mpsc::TryRecvError::Empty)) {
            return;
        }
        let polled = {
            let mut fds = [PollFd::new(&ring, PollFlags::IN)];
            poll(&mut fds, Some(&timeout))
        };
        if let Err(e) = polled
            && e != rustix::io::Errno::INTR
        {
            stats.errors.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(WAIT);
        }
    }
}
