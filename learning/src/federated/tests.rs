//! Federated rounds on synthetic sites: the combined model is a working
//! model, FedAvg of equal sites matches their data, a robust rule survives
//! poisoned updates, and updates carry only the model's numbers.

use super::*;
use crate::anomaly::TrainConfig;

/// Normal rows near a line, seeded per site.
fn site_rows(site: u64, n: usize) -> Vec<Vec<f32>> {
    let mut s = site.wrapping_mul(0x9E37_79B9_7F4A_7C15).max(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let t = (s >> 40) as f32 / (1u64 << 24) as f32;
            vec![t, 1.0 - t, 0.5 * t, 0.2]
        })
        .collect()
}

fn cfg() -> TrainConfig {
    TrainConfig {
        epochs: 2,
        members: 2,
        hidden: 4,
        bottleneck: 2,
        bins: 16,
        ..TrainConfig::default()
    }
}

fn rounds(rule: Rule, poisoned: usize, n_rounds: u64) -> AnomalyModel {
    let mut model = AnomalyModel::untrained("test@1", 4, &cfg()).expect("base");
    for r in 1..=n_rounds {
        let mut updates = Vec::new();
        for site in 0..6u64 {
            let rows = site_rows(site, 200);
            let refs: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
            let mut u = local_update(&model, r, &refs, 2, 7 + site, None).expect("update");
            if (site as usize) < poisoned {
                for v in &mut u.vector {
                    *v *= -50.0;
                }
                u.samples = 10_000;
            }
            updates.push(u);
        }
        model = combine(&model, &updates, rule).expect("combine");
    }
    model
}

#[test]
fn rounds_make_a_model_that_ranks_anomalies_above_normal_rows() {
    let model = rounds(Rule::FedAvg, 0, 3);
    assert_eq!(model.train_rows(), 1200);
    let normal = site_rows(99, 50);
    let odd: Vec<Vec<f32>> = (0..50)
        .map(|i| vec![0.9, 0.9, 0.0, 0.8 + i as f32 * 0.001])
        .collect();
    let score = |rows: &[Vec<f32>]| {
        let refs: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
        model.score(&refs)
    };
    let worst_normal = score(&normal).into_iter().fold(f64::MIN, f64::max);
    let best_odd = score(&odd).into_iter().fold(f64::MAX, f64::min);
    assert!(best_odd > worst_normal, "{best_odd} <= {worst_normal}");
    // The combined model survives its stored form.
    let back = AnomalyModel::from_bytes(&model.to_bytes()).expect("reads back");
    assert_eq!(back.score(&[&normal[0]]), model.score(&[&normal[0]]));
}

#[test]
fn a_robust_rule_keeps_two_poisoned_sites_out() {
    let clean = rounds(Rule::FedAvg, 0, 2);
    let robust = rounds(Rule::Median, 2, 2);
    let naive = rounds(Rule::FedAvg, 2, 2);
    let rows = site_rows(5, 100);
    let refs: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
    let mean = |m: &AnomalyModel| m.score(&refs).iter().sum::<f64>() / refs.len() as f64;
    let (c, r, n) = (mean(&clean), mean(&robust), mean(&naive));
    assert!(
        (r - c).abs() < (n - c).abs(),
        "clean {c}, robust {r}, fedavg {n}"
    );
}

#[test]
fn updates_of_the_wrong_size_are_refused() {
    let base = AnomalyModel::untrained("test@1", 4, &cfg()).expect("base");
    let bad = SiteUpdate {
        round: 1,
        samples: 1,
        vector: vec![0.0; 3],
        delta_norm: 0.0,
    };
    let err = combine(&base, &[bad], Rule::FedAvg).expect_err("refused");
    assert!(err.to_string().contains("has 3 values"), "{err}");
}

#[test]
fn counts_keep_their_total() {
    assert_eq!(counts_of(&[0.5, 0.25, 0.25], 7).iter().sum::<u64>(), 7);
    assert_eq!(counts_of(&[-1.0, 0.0], 3), vec![3, 0]);
}
