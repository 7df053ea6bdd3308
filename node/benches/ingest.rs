//! Events/s from the sensor channel into the durable RocksDB event store.
//!
//! `cargo bench -p amoskys-node --bench ingest` measures 2,000,000 events;
//! under `cargo test` (no `--bench` argument) it runs a small smoke pass.
//! Figures go to docs/BENCHMARKS.md.

use std::sync::Arc;
use std::time::Instant;

use amoskys_node::ingest::spawn_writer;
use amoskys_node::metrics::Metrics;
use amoskys_node::storage::Store;
use amoskys_sensors::event::{LineageEntry, ProcessActivityKind};
use amoskys_sensors::{Event, EventBody, ProcessActivity, ProcessInfo, event_channel};

fn sample() -> Event {
    Event::new(
        0,
        "12D3KooWBenchBenchBenchBenchBenchBenchBenchBench",
        "procfs",
        EventBody::ProcessActivity(ProcessActivity {
            activity: ProcessActivityKind::Launch,
            process: ProcessInfo {
                pid: 4242,
                ppid: 1200,
                name: "curl".into(),
                exe: "/usr/bin/curl".into(),
                cmdline: vec!["curl".into(), "-s".into(), "https://example.org/".into()],
                uid: 1000,
                start_time_ns: 1_700_000_000_000_000_000,
                cwd: String::new(),
            },
            lineage: vec![
                LineageEntry {
                    pid: 1200,
                    name: "bash".into(),
                    exe: "/usr/bin/bash".into(),
                },
                LineageEntry {
                    pid: 1,
                    name: "systemd".into(),
                    exe: "/usr/lib/systemd/systemd".into(),
                },
            ],
        }),
    )
}

/// CPU seconds used by this process so far (user + system).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    ticks as f64 / 100.0
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let n: u64 = if full { 2_000_000 } else { 20_000 };
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Store::open(dir.path()).expect("open store"));
    let metrics = Arc::new(Metrics::new("bench", vec![], None));
    let (tx, rx) = event_channel(65_536);
    let writer = spawn_writer(store.clone(), metrics, rx, None).expect("writer");
    let template = sample();
    let bytes = serde_json::to_vec(&template).expect("encode").len();

    let cpu0 = cpu_seconds();
    let start = Instant::now();
    for i in 0..n {
        let mut ev = template.clone();
        ev.time_ns = 1_700_000_000_000_000_000 + i;
        tx.blocking_send(ev).expect("writer alive");
    }
    drop(tx);
    writer.join().expect("writer thread");
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    assert_eq!(store.events_written(), n, "every event stored");

    // Where the time goes: clone + encoding alone, on this thread.
    let t = Instant::now();
    let mut buf = Vec::with_capacity(1024);
    for i in 0..n {
        let mut ev = template.clone();
        ev.time_ns = i;
        buf.clear();
        serde_json::to_writer(&mut buf, &ev).expect("encode");
    }
    let encode = t.elapsed().as_secs_f64();

    println!(
        "ingest: {n} events of {bytes} bytes (JSON) through the bounded channel into RocksDB (WAL on)"
    );
    println!(
        "  wall      {wall:.2} s  -> {:>10.0} events/s",
        n as f64 / wall
    );
    println!(
        "  cpu       {cpu:.2} s (producer + writer + RocksDB threads) -> {:>10.0} events per CPU-second",
        n as f64 / cpu.max(1e-9)
    );
    println!(
        "  of which clone + JSON encoding alone: {:>10.0} events/s on one core",
        n as f64 / encode
    );
}
