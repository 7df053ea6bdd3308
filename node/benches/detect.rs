//! Event → signed alert latency on one node: events enter the bounded
//! channel with their observation time, go through the writer (store),
//! the rule engine, the privacy filter, ed25519 signing and the alert store,
//! and the alert is taken from the live-stream broadcast.
//!
//! `cargo bench -p amoskys-node --bench detect`: 2,000 alerts among 20,000
//! ordinary events, paced at 10,000 events/s. Under `cargo test`: a smoke pass.

use std::sync::Arc;
use std::time::{Duration, Instant};

use amoskys_learning::RulePolicy;
use amoskys_node::detect::Detector;
use amoskys_node::ingest::spawn_writer;
use amoskys_node::metrics::Metrics;
use amoskys_node::privacy::{Addresses, Privacy};
use amoskys_node::storage::Store;
use amoskys_sensors::event::{LineageEntry, ProcessActivityKind};
use amoskys_sensors::{Event, EventBody, ProcessActivity, ProcessInfo, event_channel, now_ns};
use ed25519_dalek::SigningKey;
use tokio::sync::broadcast;

fn launch(pid: i32, name: &str, parent: &str) -> Event {
    Event::new(
        now_ns(),
        "bench",
        "procfs",
        EventBody::ProcessActivity(ProcessActivity {
            activity: ProcessActivityKind::Launch,
            process: ProcessInfo {
                pid,
                ppid: 100,
                name: name.into(),
                exe: format!("/usr/bin/{name}"),
                cmdline: vec![name.into()],
                uid: 33,
                start_time_ns: 0,
                cwd: String::new(),
            },
            lineage: vec![LineageEntry {
                pid: 100,
                name: parent.into(),
                exe: format!("/usr/sbin/{parent}"),
            }],
        }),
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let alerts_wanted: i32 = if full { 2_000 } else { 50 };
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Store::open(dir.path()).expect("store"));
    let (announce, mut rx) = broadcast::channel(65_536);
    let detector = Detector::new(
        RulePolicy::default(),
        Privacy {
            addresses: Addresses::Keep,
        },
        SigningKey::from_bytes(&[1u8; 32]),
        300,
        announce,
    );
    let (tx, events) = event_channel(65_536);
    let writer = spawn_writer(
        store,
        Arc::new(Metrics::new("bench", vec![], None)),
        events,
        Some(detector),
    )
    .expect("writer");

    // Consumer: the alert's detection time is the event's observation time.
    let consumer = std::thread::spawn(move || {
        let mut lat = Vec::new();
        while let Ok(alert) = rx.blocking_recv() {
            lat.push(Duration::from_nanos(
                now_ns().saturating_sub(alert.body.time_ns),
            ));
            if lat.len() == alerts_wanted as usize {
                break;
            }
        }
        lat
    });
    let started = Instant::now();
    for i in 0..alerts_wanted {
        for j in 0..9 {
            tx.blocking_send(launch(1_000_000 + i * 10 + j, "ls", "bash"))
                .expect("send");
        }
        // A shell under a web server: one alert, a new subject every time.
        tx.blocking_send(launch(i, "sh", "nginx")).expect("send");
        // Pace: 10 events per millisecond.
        let due = started + Duration::from_millis(i as u64 + 1);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let mut lat = consumer.join().expect("consumer");
    drop(tx);
    writer.join().expect("writer");
    lat.sort_unstable();
    println!(
        "event -> signed alert: {} alerts among {} events at 10,000 events/s",
        lat.len(),
        alerts_wanted * 10
    );
    println!(
        "  p50 {:?}  p95 {:?}  p99 {:?}  max {:?}",
        percentile(&lat, 0.5),
        percentile(&lat, 0.95),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or_default()
    );
}
