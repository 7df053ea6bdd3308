//! Federated against centralized against local-only training of the same
//! anomaly model, on sites made from a labelled data set, with and without
//! poisoned sites. Pure: data in, figures out; `progress` is told each step.
//!
//! Splits of the training rows across sites, both seeded:
//! - [`Split::Dirichlet`]: each class (normal, attack) is shared across the
//!   sites by proportions drawn from Dirichlet(α), so sites differ in size
//!   and attack share;
//! - [`Split::AttacksInTwo`]: normal rows dealt evenly, every attack row in
//!   the first two sites.
//!
//! A poisoned site trains honestly, then sends its change from the base
//! reversed and scaled (`base - s·(local - base)`) and claims many samples.
//!
//! With `Plan::dp`, sites clip and noise their updates with noise seeded
//! from the plan's seed, so a run replays exactly; such noise is not
//! private (see [`NoiseSource`]), the report says so.

use serde::Serialize;

use super::kdd::Dataset;
use super::{average_precision, roc_auc};
use crate::anomaly::{AnomalyModel, TrainConfig, TrainError};
use crate::federated::{
    DpConfig, FederatedError, NoiseSource, Rule, SiteDp, SiteUpdate, combine, local_update,
};

/// How training rows are shared across sites.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "split", rename_all = "snake_case")]
pub enum Split {
    Dirichlet { alpha: f64 },
    AttacksInTwo,
}

/// One experiment's settings.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub sites: usize,
    pub rounds: u64,
    /// Local epochs per round.
    pub local_epochs: usize,
    pub seed: u64,
    pub train: TrainConfig,
    pub poisoned: usize,
    /// Scale of a poisoned site's reversed change.
    pub poison_scale: f32,
    /// Differential privacy of every site's update. The noise is seeded
    /// (the run replays), so it shows the cost in quality and protects
    /// nothing.
    pub dp: Option<DpConfig>,
}

/// Ranking quality on the test rows.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Quality {
    pub roc_auc: f64,
    pub pr_auc: f64,
}

/// A federated run: quality after each round.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub label: String,
    pub rule: String,
    pub poisoned: usize,
    pub per_round: Vec<Quality>,
    pub seconds: f64,
}

impl Run {
    pub fn last(&self) -> Option<Quality> {
        self.per_round.last().copied()
    }
}

/// Everything measured on one split.
#[derive(Debug, Clone, Serialize)]
pub struct SplitReport {
    pub split: Split,
    /// Training rows and attack rows of each site.
    pub sites: Vec<(usize, usize)>,
    pub centralized: Quality,
    /// Each site's model trained on its own rows only.
    pub local_only: Vec<Quality>,
    pub runs: Vec<Run>,
}

/// Shares `train` across `sites` by `split`; each site gets row indices.
pub fn split_sites(train: &Dataset, sites: usize, split: Split, seed: u64) -> Vec<Vec<usize>> {
    split_labels(&train.labels, sites, split, seed)
}

/// Shares rows labelled `labels` (true: attack) across `sites` by `split`.
pub fn split_labels(labels: &[bool], sites: usize, split: Split, seed: u64) -> Vec<Vec<usize>> {
    let mut rng = Rng::new(seed);
    let mut out = vec![Vec::new(); sites.max(1)];
    let normal: Vec<usize> = (0..labels.len()).filter(|&i| !labels[i]).collect();
    let attacks: Vec<usize> = (0..labels.len()).filter(|&i| labels[i]).collect();
    match split {
        Split::Dirichlet { alpha } => {
            for class in [normal, attacks] {
                let shares: Vec<f64> = (0..out.len()).map(|_| rng.gamma(alpha)).collect();
                let total: f64 = shares.iter().sum();
                let mut cum = 0.0;
                let bounds: Vec<f64> = shares
                    .iter()
                    .map(|s| {
                        cum += s / total;
                        cum
                    })
                    .collect();
                for i in class {
                    let u = rng.unit();
                    let site = bounds.iter().position(|b| u < *b).unwrap_or(out.len() - 1);
                    out[site].push(i);
                }
            }
        }
        Split::AttacksInTwo => {
            let n = out.len();
            for (k, i) in normal.into_iter().enumerate() {
                out[k % n].push(i);
            }
            let holders = out.len().min(2);
            for (k, i) in attacks.into_iter().enumerate() {
                out[k % holders].push(i);
            }
        }
    }
    for s in &mut out {
        s.sort_unstable();
    }
    out
}

fn rows<'a>(data: &'a Dataset, idx: &[usize]) -> Vec<&'a [f32]> {
    idx.iter().map(|&i| data.features[i].as_slice()).collect()
}

fn quality(model: &AnomalyModel, test: &Dataset) -> Quality {
    let test_rows: Vec<&[f32]> = test.features.iter().map(|f| f.as_slice()).collect();
    let scores = model.score(&test_rows);
    Quality {
        roc_auc: roc_auc(&scores, &test.labels).unwrap_or(f64::NAN),
        pr_auc: average_precision(&scores, &test.labels).unwrap_or(f64::NAN),
    }
}

/// Runs `rounds` federated rounds with `rule`; the first `poisoned` sites
/// send poisoned updates.
pub fn federated(
    train: &Dataset,
    test: &Dataset,
    sites: &[Vec<usize>],
    plan: &Plan,
    rule: Rule,
    poisoned: usize,
    progress: &mut dyn FnMut(&str),
) -> Result<Run, FederatedError> {
    let started = std::time::Instant::now();
    let mut model = AnomalyModel::untrained("kdd99", super::kdd::FEATURES, &plan.train)?;
    let mut per_round = Vec::new();
    for round in 1..=plan.rounds {
        let mut updates: Vec<SiteUpdate> = Vec::new();
        for (s, idx) in sites.iter().enumerate() {
            if idx.is_empty() {
                continue;
            }
            let seed = plan.seed ^ (round << 20) ^ s as u64;
            let dp = plan.dp.map(|config| SiteDp {
                config,
                noise: NoiseSource::Seeded(seed ^ 0x5eed),
            });
            let mut u = local_update(
                &model,
                round,
                &rows(train, idx),
                plan.local_epochs,
                seed,
                dp,
            )?;
            if s < poisoned {
                let base = crate::federated::flatten(&model);
                for (v, b) in u.vector.iter_mut().zip(&base) {
                    *v = b - plan.poison_scale * (*v - b);
                }
                u.samples = u.samples.saturating_mul(10);
            }
            updates.push(u);
        }
        model = combine(&model, &updates, rule)?;
        let q = quality(&model, test);
        progress(&format!(
            "{} round {round}/{}: ROC-AUC {:.4} PR-AUC {:.4}",
            rule.name(),
            plan.rounds,
            q.roc_auc,
            q.pr_auc
        ));
        per_round.push(q);
    }
    Ok(Run {
        label: if poisoned > 0 {
            format!("federated, {} ({poisoned} poisoned)", rule.name())
        } else {
            format!("federated, {}", rule.name())
        },
        rule: rule.name(),
        poisoned,
        per_round,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Centralized, local-only and federated (clean, and with `plan.poisoned`
/// sites under FedAvg and each robust rule) on one split.
pub fn compare(
    train: &Dataset,
    test: &Dataset,
    split: Split,
    plan: &Plan,
    robust: &[Rule],
    progress: &mut dyn FnMut(&str),
) -> Result<SplitReport, FederatedError> {
    let sites = split_sites(train, plan.sites, split, plan.seed);
    let all: Vec<usize> = (0..train.len()).collect();
    let total_epochs = plan.local_epochs * plan.rounds as usize;
    let central_cfg = TrainConfig {
        epochs: total_epochs,
        ..plan.train.clone()
    };
    let central = AnomalyModel::train("kdd99", &rows(train, &all), &central_cfg)?;
    let centralized = quality(&central, test);
    progress(&format!(
        "centralized: ROC-AUC {:.4} PR-AUC {:.4}",
        centralized.roc_auc, centralized.pr_auc
    ));
    let mut local_only = Vec::new();
    for (s, idx) in sites.iter().enumerate() {
        let q = match AnomalyModel::train("kdd99", &rows(train, idx), &central_cfg) {
            Ok(m) => quality(&m, test),
            Err(TrainError::Empty) => Quality {
                roc_auc: f64::NAN,
                pr_auc: f64::NAN,
            },
            Err(e) => return Err(e.into()),
        };
        progress(&format!("local-only site {s}: ROC-AUC {:.4}", q.roc_auc));
        local_only.push(q);
    }
    let mut runs = vec![federated(
        train,
        test,
        &sites,
        plan,
        Rule::FedAvg,
        0,
        progress,
    )?];
    if plan.poisoned > 0 {
        runs.push(federated(
            train,
            test,
            &sites,
            plan,
            Rule::FedAvg,
            plan.poisoned,
            progress,
        )?);
        for &rule in robust {
            runs.push(federated(train, test, &sites, plan, rule, 0, progress)?);
            runs.push(federated(
                train,
                test,
                &sites,
                plan,
                rule,
                plan.poisoned,
                progress,
            )?);
        }
    }
    Ok(SplitReport {
        split,
        sites: sites
            .iter()
            .map(|idx| (idx.len(), idx.iter().filter(|&&i| train.labels[i]).count()))
            .collect(),
        centralized,
        local_only,
        runs,
    })
}

/// Seeded xorshift with normal and gamma draws (Marsaglia–Tsang).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).max(1))
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// In (0, 1).
    fn unit(&mut self) -> f64 {
        ((self.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.unit(), self.unit());
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    fn gamma(&mut self, alpha: f64) -> f64 {
        if alpha < 1.0 {
            // Boost: Gamma(α) = Gamma(α + 1) · U^(1/α).
            let u = self.unit();
            return self.gamma(alpha + 1.0) * u.powf(1.0 / alpha);
        }
        let d = alpha - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let x = self.normal();
            let v = (1.0 + c * x).powi(3);
            if v <= 0.0 {
                continue;
            }
            let u = self.unit();
            if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
                return d * v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, attacks: usize) -> Dataset {
        let mut d = Dataset::default();
        for i in 0..n {
            d.ids.push(i as u64);
            d.labels.push(i < attacks);
            d.features.push([0.0; super::super::kdd::FEATURES]);
        }
        d
    }

    #[test]
    fn splits_share_every_row_once_and_replay_by_seed() {
        let d = data(1000, 40);
        for split in [Split::Dirichlet { alpha: 0.5 }, Split::AttacksInTwo] {
            let s = split_sites(&d, 10, split, 3);
            let mut all: Vec<usize> = s.iter().flatten().copied().collect();
            all.sort_unstable();
            assert_eq!(all, (0..1000).collect::<Vec<_>>(), "{split:?}");
            assert_eq!(s, split_sites(&d, 10, split, 3));
        }
        let two = split_sites(&d, 10, Split::AttacksInTwo, 3);
        let with_attacks = two.iter().filter(|s| s.iter().any(|&i| i < 40)).count();
        assert_eq!(with_attacks, 2);
        // Dirichlet(0.5) makes unequal sites.
        let dir = split_sites(&d, 10, Split::Dirichlet { alpha: 0.5 }, 3);
        let sizes: Vec<usize> = dir.iter().map(Vec::len).collect();
        let (lo, hi) = (sizes.iter().min(), sizes.iter().max());
        assert!(hi.unwrap_or(&0) > &(lo.unwrap_or(&0) * 2), "{sizes:?}");
    }

    /// Normal rows near a diagonal, a few attacks far from it.
    fn varied(n: usize, attacks: usize) -> Dataset {
        let mut d = Dataset::default();
        let mut rng = Rng::new(5);
        for i in 0..n {
            let attack = i < attacks;
            let t = rng.unit() as f32;
            let mut f = [0f32; super::super::kdd::FEATURES];
            for (j, v) in f.iter_mut().enumerate() {
                *v = if attack {
                    1.0 - t
                } else {
                    t * (j % 3) as f32 / 2.0
                };
            }
            d.ids.push(i as u64);
            d.labels.push(attack);
            d.features.push(f);
        }
        d
    }

    #[test]
    fn a_run_with_seeded_privacy_replays() {
        let (train, test) = (varied(240, 6), varied(60, 6));
        let plan = Plan {
            sites: 3,
            rounds: 2,
            local_epochs: 1,
            seed: 42,
            train: TrainConfig {
                members: 1,
                hidden: 4,
                bottleneck: 2,
                bins: 16,
                epochs: 1,
                ..TrainConfig::default()
            },
            poisoned: 0,
            poison_scale: 1.0,
            dp: Some(DpConfig {
                clip: 1.0,
                noise_multiplier: 1.0,
                delta: 1e-5,
            }),
        };
        let sites = split_sites(&train, plan.sites, Split::AttacksInTwo, plan.seed);
        let run = || {
            federated(&train, &test, &sites, &plan, Rule::FedAvg, 0, &mut |_| {})
                .expect("runs")
                .per_round
                .iter()
                .map(|q| (q.roc_auc.to_bits(), q.pr_auc.to_bits()))
                .collect::<Vec<_>>()
        };
        let first = run();
        assert_eq!(first.len(), 2);
        assert_eq!(first, run());
    }
}
