//! Federated rounds on one machine: wall time of a round with 10 sites
//! (local training from the base, then combining) for models of about 10K
//! and 100K parameters, bytes each site sends per round, and the time to
//! aggregate 100 updates with each rule.
//!
//! `cargo bench -p amoskys-learning --bench federated` (figures go to
//! docs/BENCHMARKS.md); under `cargo test` it runs one small round.

use std::time::{Duration, Instant};

use amoskys_learning::anomaly::{AnomalyModel, TrainConfig};
use amoskys_learning::federated::{Rule, SiteUpdate, Weighted, aggregate, combine, local_update};

const INPUTS: usize = 40;

fn rows(site: u64, n: usize) -> Vec<Vec<f32>> {
    let mut s = site.wrapping_mul(0x9E37_79B9_7F4A_7C15).max(1);
    (0..n)
        .map(|_| {
            (0..INPUTS)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    (s >> 40) as f32 / (1u64 << 24) as f32
                })
                .collect()
        })
        .collect()
}

fn round(hidden: usize, sites: u64, rows_per_site: usize, rounds: u64) {
    let cfg = TrainConfig {
        hidden,
        bottleneck: 3,
        members: 3,
        ..TrainConfig::default()
    };
    let data: Vec<Vec<Vec<f32>>> = (0..sites).map(|s| rows(s, rows_per_site)).collect();
    let mut model = AnomalyModel::untrained("bench@1", INPUTS, &cfg).expect("base");
    let params = model.parameters();
    let mut times = Vec::new();
    let mut bytes = 0usize;
    for r in 1..=rounds {
        let start = Instant::now();
        // Two sites train at a time (the machine has two cores).
        let mut updates: Vec<SiteUpdate> = Vec::new();
        for pair in data.chunks(2) {
            let base = &model;
            let got: Vec<SiteUpdate> = std::thread::scope(|scope| {
                let handles: Vec<_> = pair
                    .iter()
                    .enumerate()
                    .map(|(i, d)| {
                        scope.spawn(move || {
                            let refs: Vec<&[f32]> = d.iter().map(Vec::as_slice).collect();
                            local_update(base, r, &refs, 1, 7 + i as u64, None).expect("update")
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("site"))
                    .collect()
            });
            updates.extend(got);
        }
        bytes = serde_json::to_vec(&updates[0])
            .map(|b| b.len())
            .unwrap_or(0);
        model = combine(&model, &updates, Rule::FedAvg).expect("combine");
        times.push(start.elapsed());
    }
    times.sort();
    println!(
        "round, {sites} sites × {rows_per_site} rows, 1 local epoch, {params} parameters: median {:.0} ms (min {:.0}, max {:.0}); update {} bytes as JSON ({} values)",
        ms(times[times.len() / 2]),
        ms(times[0]),
        ms(times[times.len() - 1]),
        bytes,
        amoskys_learning::federated::layout(&model).len()
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn aggregation(n: usize, dim: usize) {
    let mut s = 7u64;
    let updates: Vec<Weighted> = (0..n)
        .map(|_| Weighted {
            values: (0..dim)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    (s >> 40) as f32 / (1u64 << 24) as f32
                })
                .collect(),
            samples: 1 + s % 1000,
        })
        .collect();
    for rule in [
        Rule::FedAvg,
        Rule::Median,
        Rule::TrimmedMean { trim: 0.1 },
        Rule::MultiKrum {
            byzantine: n / 10,
            select: n / 2,
        },
    ] {
        let start = Instant::now();
        let out = aggregate(rule, &updates).expect("aggregates");
        std::hint::black_box(out);
        println!(
            "aggregate {n} updates of {dim} values, {}: {:.1} ms",
            rule.name(),
            ms(start.elapsed())
        );
    }
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    if bench {
        round(40, 10, 1_000, 5);
        round(400, 10, 1_000, 3);
        aggregation(100, 10_000);
        aggregation(100, 100_000);
    } else {
        round(8, 4, 100, 1);
        aggregation(12, 1_000);
    }
}
