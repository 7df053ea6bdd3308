//! Cost of the anomaly path: events into feature windows, training a model
//! on baseline windows, and scoring closed windows.
//!
//! `cargo bench -p amoskys-learning --bench anomaly`: 1,000,000 flow events
//! from 2,000 sources into 60 s windows; each model kind trained on 20,000
//! source windows with the default settings and scoring 100,000 windows in
//! batches of 1,000. Under `cargo test`: a smoke pass.

use std::time::Instant;

use amoskys_learning::anomaly::{AnomalyModel, ModelKind, TrainConfig};
use amoskys_learning::features::{EntityKind, FeatureExtractor};
use amoskys_sensors::event::{FlowCounters, FlowEnd, FlowRecord, TcpFlagCounts, Transport};
use amoskys_sensors::{Event, EventBody};

const S: u64 = 1_000_000_000;

fn flow(t: u64, i: u64) -> Event {
    let src = i % 2_000;
    Event::new(
        t,
        "bench",
        "flows",
        EventBody::NetworkActivity(FlowRecord {
            interface: "eth0".into(),
            transport: Transport::Tcp,
            src: std::net::IpAddr::from([10, 0, (src / 256) as u8, (src % 256) as u8]),
            src_port: 40_000,
            dst: std::net::IpAddr::from([10, 1, 0, (i % 7) as u8]),
            dst_port: [443, 80, 22, 53][(i % 4) as usize],
            first_ns: t,
            last_ns: t + S,
            forward: FlowCounters {
                packets: 3 + i % 5,
                bytes: 300 + (i * 37) % 5_000,
            },
            reverse: FlowCounters {
                packets: 2 + i % 3,
                bytes: 200 + (i * 91) % 20_000,
            },
            tcp_flags: TcpFlagCounts {
                syn: 1,
                syn_no_ack: 1,
                syn_ack: u32::from(!i.is_multiple_of(11)),
                ..Default::default()
            },
            end: FlowEnd::End,
        }),
    )
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (events, train_rows, score_rows) = if full {
        (1_000_000u64, 20_000usize, 100_000usize)
    } else {
        (20_000, 500, 2_000)
    };

    // Events → windows: 100 events/s of trace time, so 6,000 per window.
    let mut fx = FeatureExtractor::new(60 * S, 10_000);
    let mut windows = Vec::new();
    let started = Instant::now();
    for i in 0..events {
        windows.extend(fx.push(&flow(i * S / 100, i)));
    }
    windows.extend(fx.close());
    let secs = started.elapsed().as_secs_f64();
    println!(
        "features: {events} flow events -> {} windows in {secs:.2} s = {:.0} events/s",
        windows.len(),
        events as f64 / secs
    );

    let rows: Vec<Vec<f32>> = windows
        .iter()
        .filter(|w| w.kind == EntityKind::Source)
        .map(|w| w.values.clone())
        .cycle()
        .take(train_rows.max(score_rows))
        .collect();
    let train: Vec<&[f32]> = rows.iter().take(train_rows).map(Vec::as_slice).collect();
    let score: Vec<&[f32]> = rows.iter().take(score_rows).map(Vec::as_slice).collect();
    for kind in [
        ModelKind::Tails,
        ModelKind::Autoencoder,
        ModelKind::Combined,
    ] {
        let cfg = TrainConfig {
            kind,
            epochs: if full { 20 } else { 2 },
            ..TrainConfig::default()
        };
        let started = Instant::now();
        let model = AnomalyModel::train("source@1", &train, &cfg).expect("trains");
        let train_secs = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let mut scored = 0;
        for batch in score.chunks(1_000) {
            scored += model.score(batch).len();
        }
        let score_secs = started.elapsed().as_secs_f64();
        println!(
            "{kind:?}: trained on {} windows in {train_secs:.3} s ({} parameters, {} bytes stored); \
             scored {scored} windows in {score_secs:.3} s = {:.0} windows/s",
            train.len(),
            model.parameters(),
            model.to_bytes().len(),
            scored as f64 / score_secs
        );
    }
}
