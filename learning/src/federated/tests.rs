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

/// Pearson correlation of two equally long vectors.
pub(super) fn correlation(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len() as f64;
    let mean = |v: &[f32]| v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
    let (ma, mb) = (mean(a), mean(b));
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x) - ma, f64::from(y) - mb);
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    ab / (aa * bb).sqrt()
}

const DP: DpConfig = DpConfig {
    clip: 1.0,
    noise_multiplier: 1.0,
    delta: 1e-5,
};

/// A site's real change from the base in round `round` (no privacy yet).
fn site_delta(base: &AnomalyModel, site: u64, round: u64, seed: u64) -> Vec<f32> {
    let rows = site_rows(site, 200);
    let refs: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
    let u = local_update(base, round, &refs, 1, seed, None).expect("update");
    u.vector
        .iter()
        .zip(flatten(base))
        .map(|(v, s)| v - s)
        .collect()
}

/// The noise a site added: what it sent minus its clipped change.
fn noise_of(delta: &[f32], source: NoiseSource) -> Vec<f32> {
    let mut sent = delta.to_vec();
    dp::privatize(&mut sent, &DP, source).expect("privatized");
    let mut clipped = delta.to_vec();
    dp::clip(&mut clipped, DP.clip);
    sent.iter().zip(&clipped).map(|(s, c)| s - c).collect()
}

/// The noise of the former generator (xorshift and Box–Muller, seeded with
/// `seed ^ round ^ 0x5eed`), which an aggregator could regenerate.
fn xorshift_noise(len: usize, sigma: f64, seed: u64) -> Vec<f32> {
    let mut state = seed.max(1);
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ((state >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    };
    let mut out = Vec::with_capacity(len + 1);
    while out.len() < len {
        let (u1, u2) = (uniform(), uniform());
        let (r, t) = ((-2.0 * u1.ln()).sqrt(), std::f64::consts::TAU * u2);
        out.extend([(r * t.cos() * sigma) as f32, (r * t.sin() * sigma) as f32]);
    }
    out.truncate(len);
    out
}

#[test]
fn two_sites_with_the_same_inputs_add_different_noise() {
    let base = AnomalyModel::untrained("test@1", 4, &cfg()).expect("base");
    let rows = site_rows(1, 200);
    let refs: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
    let dp = Some(SiteDp {
        config: DP,
        noise: NoiseSource::Os,
    });
    // Same base, rows, round, training seed and settings: only the noise
    // can tell the two updates apart.
    let a = local_update(&base, 3, &refs, 1, 42 ^ 3, dp).expect("update");
    let b = local_update(&base, 3, &refs, 1, 42 ^ 3, dp).expect("update");
    assert_eq!(
        (a.round, a.samples, a.delta_norm),
        (b.round, b.samples, b.delta_norm)
    );
    assert_ne!(a.vector, b.vector);

    let delta = site_delta(&base, 1, 3, 42 ^ 3);
    let (na, nb) = (
        noise_of(&delta, NoiseSource::Os),
        noise_of(&delta, NoiseSource::Os),
    );
    assert!(
        correlation(&na, &nb).abs() < 0.2,
        "{}",
        correlation(&na, &nb)
    );
}

#[test]
fn the_aggregator_cannot_regenerate_a_site_noise() {
    let base = AnomalyModel::untrained("test@1", 4, &cfg()).expect("base");
    let (site, round, default_seed) = (4u64, 3u64, 42u64);
    let delta = site_delta(&base, site, round, default_seed ^ round);
    let sent = noise_of(&delta, NoiseSource::Os);
    let sigma = DP.clip * DP.noise_multiplier;
    // Every seed the aggregator could know or guess: the default seed, the
    // update's round, the site's index, the training seed and their mixes.
    let mut known = vec![0, 1, default_seed, round, site, default_seed ^ round];
    for k in known.clone() {
        known.extend([k ^ 0x5eed, k ^ site, k ^ (round << 20) ^ site, 7 + k]);
    }
    let best_guess = |target: &[f32]| {
        known
            .iter()
            .flat_map(|&seed| {
                [
                    noise_of(&delta, NoiseSource::Seeded(seed)),
                    xorshift_noise(delta.len(), sigma, seed),
                ]
            })
            .map(|guess| correlation(&guess, target).abs())
            .fold(0.0, f64::max)
    };
    // Independent draws of this length correlate below 0.2 (the standard
    // error is under 0.05); a regenerated noise correlates 1.
    assert!(delta.len() > 400, "{}", delta.len());
    let best = best_guess(&sent);
    assert!(best < 0.2, "a guessed seed reproduces the noise: {best}");

    // The same guesses find the noise of the former generator (seeded with
    // the training seed ^ 0x5eed) and of a seeded source.
    let former = xorshift_noise(delta.len(), sigma, (default_seed ^ round) ^ 0x5eed);
    assert!(best_guess(&former) > 0.999);
    let seeded = noise_of(&delta, NoiseSource::Seeded(default_seed ^ round));
    assert!(best_guess(&seeded) > 0.999);
}
