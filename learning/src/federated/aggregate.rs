//! Aggregation rules over flat update vectors: FedAvg weighted by samples,
//! coordinate-wise median, trimmed mean, Krum and Multi-Krum. Pure
//! functions; every rule is invariant to the order of the updates.

use serde::{Deserialize, Serialize};

/// One site's contribution: a flat vector and the samples behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Weighted {
    pub values: Vec<f32>,
    pub samples: u64,
}

/// How updates are combined.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum Rule {
    /// Mean weighted by samples (McMahan et al.). Written `fedavg`, the
    /// name `--help` and the docs use; `fed_avg` is read too.
    #[serde(rename = "fedavg", alias = "fed_avg")]
    FedAvg,
    /// Coordinate-wise median: robust while fewer than half are bad.
    Median,
    /// Coordinate-wise mean after dropping the `trim` share of the smallest
    /// and of the largest values.
    TrimmedMean { trim: f64 },
    /// The update closest to its `n - byzantine - 2` nearest neighbours
    /// (Blanchard et al.).
    Krum { byzantine: usize },
    /// The mean, weighted by samples, of the `select` best Krum updates.
    MultiKrum { byzantine: usize, select: usize },
}

impl Rule {
    pub fn name(&self) -> String {
        match self {
            Rule::FedAvg => "fedavg".into(),
            Rule::Median => "median".into(),
            Rule::TrimmedMean { trim } => format!("trimmed_mean({trim})"),
            Rule::Krum { byzantine } => format!("krum(f={byzantine})"),
            Rule::MultiKrum { byzantine, select } => {
                format!("multi_krum(f={byzantine},m={select})")
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AggregateError {
    #[error("no updates to aggregate")]
    Empty,
    #[error("update {index} has {found} values, expected {expected}")]
    Width {
        index: usize,
        found: usize,
        expected: usize,
    },
    #[error("update {index} has a value that is not finite")]
    NotFinite { index: usize },
    #[error("{rule} needs at least {need} updates, got {got}")]
    TooFew {
        rule: String,
        need: usize,
        got: usize,
    },
    #[error("trim share {0} is not in [0, 0.5)")]
    Trim(f64),
}

/// Sample weights of FedAvg; they sum to 1 (equal when no samples).
pub fn fedavg_weights(samples: &[u64]) -> Vec<f64> {
    let total: f64 = samples.iter().map(|&s| s as f64).sum();
    if total <= 0.0 {
        let n = samples.len().max(1) as f64;
        return vec![1.0 / n; samples.len()];
    }
    samples.iter().map(|&s| s as f64 / total).collect()
}

/// Combines `updates` by `rule`.
pub fn aggregate(rule: Rule, updates: &[Weighted]) -> Result<Vec<f32>, AggregateError> {
    let dim = check(updates)?;
    let n = updates.len();
    match rule {
        Rule::FedAvg => Ok(weighted_mean(updates.iter(), dim)),
        Rule::Median => Ok(per_coordinate(updates, dim, median)),
        Rule::TrimmedMean { trim } => {
            if !(0.0..0.5).contains(&trim) {
                return Err(AggregateError::Trim(trim));
            }
            let cut = (trim * n as f64).floor() as usize;
            Ok(per_coordinate(updates, dim, |v| {
                let kept = &v[cut..v.len() - cut];
                (kept.iter().map(|&x| f64::from(x)).sum::<f64>() / kept.len() as f64) as f32
            }))
        }
        Rule::Krum { byzantine } => {
            let order = krum_order(rule, updates, byzantine)?;
            Ok(updates[order[0]].values.clone())
        }
        Rule::MultiKrum { byzantine, select } => {
            let order = krum_order(rule, updates, byzantine)?;
            let m = select.clamp(1, n);
            Ok(weighted_mean(order[..m].iter().map(|&i| &updates[i]), dim))
        }
    }
}

fn check(updates: &[Weighted]) -> Result<usize, AggregateError> {
    let dim = updates.first().ok_or(AggregateError::Empty)?.values.len();
    for (index, u) in updates.iter().enumerate() {
        if u.values.len() != dim {
            return Err(AggregateError::Width {
                index,
                found: u.values.len(),
                expected: dim,
            });
        }
        if u.values.iter().any(|v| !v.is_finite()) {
            return Err(AggregateError::NotFinite { index });
        }
    }
    Ok(dim)
}

fn weighted_mean<'a>(updates: impl Iterator<Item = &'a Weighted> + Clone, dim: usize) -> Vec<f32> {
    let samples: Vec<u64> = updates.clone().map(|u| u.samples).collect();
    let weights = fedavg_weights(&samples);
    let mut acc = vec![0f64; dim];
    for (u, w) in updates.zip(weights) {
        for (a, &v) in acc.iter_mut().zip(&u.values) {
            *a += w * f64::from(v);
        }
    }
    acc.into_iter().map(|a| a as f32).collect()
}

/// Applies `f` to the sorted values of each coordinate.
fn per_coordinate(updates: &[Weighted], dim: usize, f: impl Fn(&[f32]) -> f32) -> Vec<f32> {
    let mut column = vec![0f32; updates.len()];
    (0..dim)
        .map(|j| {
            for (c, u) in column.iter_mut().zip(updates) {
                *c = u.values[j];
            }
            column.sort_by(f32::total_cmp);
            f(&column)
        })
        .collect()
}

fn median(sorted: &[f32]) -> f32 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        ((f64::from(sorted[n / 2 - 1]) + f64::from(sorted[n / 2])) / 2.0) as f32
    }
}

/// Update indices by Krum score, best first (ties by index).
fn krum_order(
    rule: Rule,
    updates: &[Weighted],
    byzantine: usize,
) -> Result<Vec<usize>, AggregateError> {
    let n = updates.len();
    let need = 2 * byzantine + 3;
    if n < need {
        return Err(AggregateError::TooFew {
            rule: rule.name(),
            need,
            got: n,
        });
    }
    let neighbours = n - byzantine - 2;
    let mut dist = vec![vec![0f64; n]; n];
    for i in 0..n {
        for j in i + 1..n {
            let d: f64 = updates[i]
                .values
                .iter()
                .zip(&updates[j].values)
                .map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2))
                .sum();
            dist[i][j] = d;
            dist[j][i] = d;
        }
    }
    let mut scores: Vec<(f64, usize)> = (0..n)
        .map(|i| {
            let mut d: Vec<f64> = (0..n).filter(|&j| j != i).map(|j| dist[i][j]).collect();
            d.sort_by(f64::total_cmp);
            (d[..neighbours].iter().sum(), i)
        })
        .collect();
    // Ties go to the update with the smaller values, so the order of the
    // input never matters.
    scores.sort_by(|a, b| {
        a.0.total_cmp(&b.0)
            .then_with(|| cmp_values(&updates[a.1].values, &updates[b.1].values))
    });
    Ok(scores.into_iter().map(|(_, i)| i).collect())
}

fn cmp_values(a: &[f32], b: &[f32]) -> std::cmp::Ordering {
    a.iter()
        .zip(b)
        .map(|(x, y)| x.total_cmp(y))
        .find(|o| o.is_ne())
        .unwrap_or(std::cmp::Ordering::Equal)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A seeded xorshift, so the properties are checked on the same cases
    /// every run.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn unit(&mut self) -> f32 {
            (self.next() >> 40) as f32 / (1u64 << 24) as f32
        }

        fn updates(&mut self, n: usize, dim: usize) -> Vec<Weighted> {
            (0..n)
                .map(|_| Weighted {
                    values: (0..dim).map(|_| self.unit() * 2.0 - 1.0).collect(),
                    samples: 1 + self.next() % 1000,
                })
                .collect()
        }
    }

    const RULES: [Rule; 5] = [
        Rule::FedAvg,
        Rule::Median,
        Rule::TrimmedMean { trim: 0.2 },
        Rule::Krum { byzantine: 2 },
        Rule::MultiKrum {
            byzantine: 2,
            select: 4,
        },
    ];

    #[test]
    fn fedavg_weights_sum_to_one() {
        let mut rng = Rng(7);
        for n in 1..50 {
            let samples: Vec<u64> = (0..n).map(|_| rng.next() % 10_000).collect();
            let sum: f64 = fedavg_weights(&samples).iter().sum();
            assert!((sum - 1.0).abs() < 1e-9, "n={n}: {sum}");
        }
        assert_eq!(fedavg_weights(&[0, 0]), vec![0.5, 0.5]);
    }

    #[test]
    fn every_rule_ignores_the_order_of_updates() {
        let mut rng = Rng(11);
        for case in 0..30 {
            let n = 7 + case % 5;
            let mut updates = rng.updates(n, 16);
            for rule in RULES {
                let a = aggregate(rule, &updates).expect("aggregates");
                // A seeded shuffle.
                for i in (1..updates.len()).rev() {
                    let j = (rng.next() % (i as u64 + 1)) as usize;
                    updates.swap(i, j);
                }
                let b = aggregate(rule, &updates).expect("aggregates");
                for (x, y) in a.iter().zip(&b) {
                    assert!((x - y).abs() < 1e-5, "{rule:?} case {case}: {x} vs {y}");
                }
            }
        }
    }

    #[test]
    fn outliers_cannot_move_robust_rules_past_the_honest_values() {
        let mut rng = Rng(23);
        for case in 0..30 {
            let honest = rng.updates(8, 12);
            let mut all = honest.clone();
            // Two attackers with huge values and many claimed samples.
            for _ in 0..2 {
                all.push(Weighted {
                    values: vec![1e6; 12],
                    samples: 1_000_000,
                });
            }
            for rule in [
                Rule::Median,
                Rule::TrimmedMean { trim: 0.2 },
                Rule::Krum { byzantine: 2 },
                Rule::MultiKrum {
                    byzantine: 2,
                    select: 4,
                },
            ] {
                let out = aggregate(rule, &all).expect("aggregates");
                for (j, v) in out.iter().enumerate() {
                    let lo = honest.iter().map(|u| u.values[j]).fold(f32::MAX, f32::min);
                    let hi = honest.iter().map(|u| u.values[j]).fold(f32::MIN, f32::max);
                    assert!(
                        (lo - 1e-6..=hi + 1e-6).contains(v),
                        "{rule:?} case {case} coordinate {j}: {v} outside [{lo}, {hi}]"
                    );
                }
            }
            // FedAvg is not robust: the attackers own the result.
            let avg = aggregate(Rule::FedAvg, &all).expect("aggregates");
            assert!(avg.iter().any(|v| v.abs() > 1.5));
        }
    }

    #[test]
    fn fedavg_is_the_sample_weighted_mean() {
        let u = [
            Weighted {
                values: vec![0.0, 1.0],
                samples: 1,
            },
            Weighted {
                values: vec![4.0, 5.0],
                samples: 3,
            },
        ];
        assert_eq!(aggregate(Rule::FedAvg, &u).expect("ok"), vec![3.0, 4.0]);
        assert_eq!(aggregate(Rule::Median, &u).expect("ok"), vec![2.0, 3.0]);
    }

    #[test]
    fn bad_input_is_refused_with_a_reason() {
        assert_eq!(aggregate(Rule::FedAvg, &[]), Err(AggregateError::Empty));
        let mut rng = Rng(3);
        let mut u = rng.updates(3, 4);
        u[1].values.push(0.0);
        assert!(matches!(
            aggregate(Rule::Median, &u),
            Err(AggregateError::Width { index: 1, .. })
        ));
        u[1].values.pop();
        u[2].values[0] = f32::NAN;
        assert_eq!(
            aggregate(Rule::FedAvg, &u),
            Err(AggregateError::NotFinite { index: 2 })
        );
        let ok = rng.updates(4, 4);
        assert!(matches!(
            aggregate(Rule::Krum { byzantine: 1 }, &ok),
            Err(AggregateError::TooFew { need: 5, .. })
        ));
        assert_eq!(
            aggregate(Rule::TrimmedMean { trim: 0.5 }, &ok),
            Err(AggregateError::Trim(0.5))
        );
    }

    #[test]
    fn rules_are_written_by_the_names_the_docs_use() {
        let written = serde_json::to_value(Rule::FedAvg).expect("serializes");
        assert_eq!(written, serde_json::json!({ "rule": "fedavg" }));
        assert_eq!(Rule::FedAvg.name(), "fedavg");
        for name in ["fedavg", "fed_avg"] {
            let read: Rule =
                serde_json::from_value(serde_json::json!({ "rule": name })).expect("reads");
            assert_eq!(read, Rule::FedAvg);
        }
        let read: Rule = serde_json::from_value(
            serde_json::json!({ "rule": "multi_krum", "byzantine": 1, "select": 0 }),
        )
        .expect("reads");
        assert_eq!(
            read,
            Rule::MultiKrum {
                byzantine: 1,
                select: 0
            }
        );
    }
}
