//! Verdicts teach the mesh, measured: at each of several non-IID sites,
//! simulated analysts judge the alerts the active learner asks for, N per
//! site; each site trains the supervised head on its own verdicts and the
//! heads combine federated; the final ranking of the test rows is scored
//! against the unsupervised model's.
//!
//! A run, for one seed and one N:
//! 1. the unsupervised model trains on every training row, labels hidden
//!    (its histograms add up exactly across sites, so this is also the
//!    federated model);
//! 2. the training rows are shared across sites by Dirichlet(α) per class;
//!    a site's alerts are its rows scoring at or above the model's
//!    `alert_quantile` training quantile;
//! 3. in each of `rounds` rounds every site asks [`crate::active::choose`]
//!    for its share of N among its unjudged alerts, reads their true labels
//!    (the analyst's verdicts: the only training labels read), trains the
//!    round's head on all its verdicts so far, and the heads combine by
//!    `rule`;
//! 4. the test rows are ranked by the final head ([`Head::rank`]).
//!
//! Beside it, the same verdicts pooled at one place (a centralized head),
//! and a head trained on every training label (the fully supervised
//! reference). Test labels only score rankings. Pure: data in, figures out.

use serde::Serialize;

use super::dataset::Summary;
use super::federated::{Split, split_labels};
use super::{average_precision, roc_auc};
use crate::active::{Candidate, choose};
use crate::anomaly::{AnomalyModel, TrainConfig, TrainError};
use crate::federated::Rule;
use crate::head::{Head, HeadConfig, HeadError, Verdict, combine, local_update, score_input};

/// One experiment's settings.
#[derive(Debug, Clone, Serialize)]
pub struct VerdictPlan {
    pub sites: usize,
    /// Dirichlet concentration of the site split (smaller: more skew).
    pub alpha: f64,
    /// Rounds of asking, training and combining; N is spread over them.
    pub rounds: usize,
    /// Verdicts per site compared (N).
    pub verdicts: Vec<usize>,
    pub rule: Rule,
    pub head: HeadConfig,
    /// The unsupervised model.
    pub train: TrainConfig,
    /// Training-score quantile at and above which a row is an alert.
    pub alert_quantile: f64,
}

/// Rows of one split: training rows with the labels only the simulated
/// analysts read, and test rows with the labels that score the rankings.
#[derive(Debug, Clone, Default)]
pub struct SplitData {
    pub train: Vec<Vec<f32>>,
    pub train_labels: Vec<bool>,
    pub test: Vec<Vec<f32>>,
    pub test_labels: Vec<bool>,
}

/// Ranking quality of one model on the test rows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Quality {
    pub roc_auc: f64,
    pub pr_auc: f64,
}

impl Quality {
    fn of(scores: &[f64], labels: &[bool]) -> Quality {
        Quality {
            roc_auc: roc_auc(scores, labels).unwrap_or(f64::NAN),
            pr_auc: average_precision(scores, labels).unwrap_or(f64::NAN),
        }
    }
}

/// One seed at one N.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    pub verdicts_per_site: usize,
    pub federated: Quality,
    pub centralized: Quality,
    /// True and false positives judged, all sites.
    pub attacks: u64,
    pub normals: u64,
    /// Whether the federated head re-ranked (enough verdicts of each class).
    pub in_force: bool,
}

/// One seed: the unsupervised model, each N, the supervised reference.
#[derive(Debug, Clone, Serialize)]
pub struct SeedRun {
    pub seed: u64,
    pub unsupervised: Quality,
    pub supervised: Quality,
    /// Alerts (rows at or above the alert quantile) and the attacks among
    /// them, all sites.
    pub alerts: usize,
    pub alert_attacks: usize,
    pub points: Vec<Point>,
}

/// Mean ± sd over seeds at one N.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub verdicts_per_site: usize,
    pub unsupervised_pr: Summary,
    pub unsupervised_roc: Summary,
    pub federated_pr: Summary,
    pub federated_roc: Summary,
    pub centralized_pr: Summary,
    pub centralized_roc: Summary,
    pub attacks: Summary,
    pub normals: Summary,
    /// Share of seeds where the head was in force.
    pub in_force: f64,
    /// The federated head's worst change from the unsupervised model over
    /// the seeds (negative: worse).
    pub worst_pr_change: f64,
    pub worst_roc_change: f64,
}

/// Every seed of one data set, and the summary rows.
#[derive(Debug, Clone, Serialize)]
pub struct VerdictReport {
    pub dataset: String,
    pub runs: Vec<SeedRun>,
    pub rows: Vec<Row>,
    pub supervised_pr: Summary,
    pub supervised_roc: Summary,
}

#[derive(Debug, thiserror::Error)]
pub enum VerdictError {
    #[error(transparent)]
    Train(#[from] TrainError),
    #[error(transparent)]
    Head(#[from] HeadError),
    #[error("no rows: the split is empty")]
    Empty,
}

/// One seed: every N of `plan` on `data`.
pub fn run(data: &SplitData, plan: &VerdictPlan, seed: u64) -> Result<SeedRun, VerdictError> {
    if data.train.is_empty() || data.test.is_empty() {
        return Err(VerdictError::Empty);
    }
    let cfg = TrainConfig {
        seed,
        ..plan.train.clone()
    };
    let rows: Vec<&[f32]> = data.train.iter().map(Vec::as_slice).collect();
    let model = AnomalyModel::train("verdicts", &rows, &cfg)?;
    let threshold = model.threshold();
    let test_rows: Vec<&[f32]> = data.test.iter().map(Vec::as_slice).collect();
    let test_raw = model.score(&test_rows);
    let test_s: Vec<f32> = test_raw
        .iter()
        .map(|&s| score_input(s, threshold))
        .collect();
    let train_raw = model.score(&rows);
    let train_s: Vec<f32> = train_raw
        .iter()
        .map(|&s| score_input(s, threshold))
        .collect();
    let cut = model.threshold_at(plan.alert_quantile);
    let sites = split_labels(
        &data.train_labels,
        plan.sites,
        Split::Dirichlet { alpha: plan.alpha },
        seed,
    );
    let alerts: Vec<Vec<usize>> = sites
        .iter()
        .map(|idx| {
            idx.iter()
                .copied()
                .filter(|&i| train_raw[i] >= cut)
                .collect()
        })
        .collect();
    let ranked = |head: &Head| -> Vec<f64> {
        test_s
            .iter()
            .zip(&data.test)
            .map(|(&s, x)| head.rank(&plan.head, s, x))
            .collect()
    };
    let verdict = |i: usize| Verdict {
        score: train_s[i],
        features: &data.train[i],
        attack: data.train_labels[i],
    };
    let inputs = data.train[0].len();
    let prior = Head::prior(inputs, &plan.head);
    let mut points = Vec::new();
    for &n in &plan.verdicts {
        let mut judged: Vec<Vec<usize>> = vec![Vec::new(); sites.len()];
        let mut head = prior.clone();
        let rounds = plan.rounds.max(1);
        for round in 1..=rounds {
            let quota = n * round / rounds - n * (round - 1) / rounds;
            let mut updates = Vec::new();
            for (site, pool) in alerts.iter().enumerate() {
                let open: Vec<Candidate> = pool
                    .iter()
                    .filter(|i| !judged[site].contains(i))
                    .map(|&i| Candidate {
                        id: i,
                        score: train_s[i],
                        probability: head
                            .in_force(&plan.head)
                            .then(|| head.probability(train_s[i], &data.train[i])),
                        features: &data.train[i],
                    })
                    .collect();
                judged[site].extend(choose(&open, quota));
                let v: Vec<Verdict> = judged[site].iter().map(|&i| verdict(i)).collect();
                if let Some(u) = local_update(&head, round as u64, &v, &plan.head)? {
                    updates.push(u);
                }
            }
            head = combine(&prior, &updates, plan.rule)?;
        }
        let pooled: Vec<Verdict> = judged.iter().flatten().map(|&i| verdict(i)).collect();
        let central = prior.train(&pooled, &plan.head)?;
        let attacks = pooled.iter().filter(|v| v.attack).count() as u64;
        points.push(Point {
            verdicts_per_site: n,
            federated: Quality::of(&ranked(&head), &data.test_labels),
            centralized: Quality::of(&ranked(&central), &data.test_labels),
            attacks,
            normals: pooled.len() as u64 - attacks,
            in_force: head.in_force(&plan.head),
        });
    }
    // The reference re-ranks whatever its counts: it knows every label.
    let everything: Vec<Verdict> = (0..data.train.len()).map(verdict).collect();
    let supervised = prior.train(&everything, &plan.head)?;
    let supervised_logits: Vec<f64> = test_s
        .iter()
        .zip(&data.test)
        .map(|(&s, x)| supervised.logit(s, x))
        .collect();
    let alerts_all: Vec<usize> = alerts.iter().flatten().copied().collect();
    Ok(SeedRun {
        seed,
        unsupervised: Quality::of(&test_raw, &data.test_labels),
        supervised: Quality::of(&supervised_logits, &data.test_labels),
        alerts: alerts_all.len(),
        alert_attacks: alerts_all.iter().filter(|&&i| data.train_labels[i]).count(),
        points,
    })
}

/// Summary rows of several seeds' runs.
pub fn report(dataset: &str, runs: Vec<SeedRun>) -> VerdictReport {
    let ns: Vec<usize> = runs
        .first()
        .map(|r| r.points.iter().map(|p| p.verdicts_per_site).collect())
        .unwrap_or_default();
    let rows = ns
        .iter()
        .enumerate()
        .map(|(k, &n)| {
            let pts: Vec<(&SeedRun, &Point)> = runs.iter().map(|r| (r, &r.points[k])).collect();
            let s =
                |f: &dyn Fn(&SeedRun, &Point) -> f64| Summary::of(pts.iter().map(|(r, p)| f(r, p)));
            let worst = |f: &dyn Fn(&SeedRun, &Point) -> f64| {
                pts.iter()
                    .map(|(r, p)| f(r, p))
                    .fold(f64::INFINITY, f64::min)
            };
            Row {
                verdicts_per_site: n,
                unsupervised_pr: s(&|r, _| r.unsupervised.pr_auc),
                unsupervised_roc: s(&|r, _| r.unsupervised.roc_auc),
                federated_pr: s(&|_, p| p.federated.pr_auc),
                federated_roc: s(&|_, p| p.federated.roc_auc),
                centralized_pr: s(&|_, p| p.centralized.pr_auc),
                centralized_roc: s(&|_, p| p.centralized.roc_auc),
                attacks: s(&|_, p| p.attacks as f64),
                normals: s(&|_, p| p.normals as f64),
                in_force: pts.iter().filter(|(_, p)| p.in_force).count() as f64
                    / pts.len().max(1) as f64,
                worst_pr_change: worst(&|r, p| p.federated.pr_auc - r.unsupervised.pr_auc),
                worst_roc_change: worst(&|r, p| p.federated.roc_auc - r.unsupervised.roc_auc),
            }
        })
        .collect();
    VerdictReport {
        dataset: dataset.to_owned(),
        supervised_pr: Summary::of(runs.iter().map(|r| r.supervised.pr_auc)),
        supervised_roc: Summary::of(runs.iter().map(|r| r.supervised.roc_auc)),
        runs,
        rows,
    }
}

impl VerdictReport {
    /// The summary as a Markdown table.
    pub fn markdown(&self) -> String {
        use std::fmt::Write as _;
        let mut m = format!(
            "### {}\n\n| verdicts per site | unsupervised PR-AUC | federated head PR-AUC | centralized head PR-AUC | unsupervised ROC-AUC | federated head ROC-AUC | worst change PR / ROC | true / false positives judged | head in force |\n|---|---|---|---|---|---|---|---|---|\n",
            self.dataset
        );
        for r in &self.rows {
            let _ = writeln!(
                m,
                "| {} | {} | **{}** | {} | {} | {} | {:+.3} / {:+.3} | {:.0} / {:.0} | {:.0}% |",
                r.verdicts_per_site,
                r.unsupervised_pr,
                r.federated_pr,
                r.centralized_pr,
                r.unsupervised_roc,
                r.federated_roc,
                r.worst_pr_change,
                r.worst_roc_change,
                r.attacks.mean,
                r.normals.mean,
                r.in_force * 100.0
            );
        }
        let _ = writeln!(
            m,
            "\nFully supervised head (every training label): PR-AUC {}, ROC-AUC {}.",
            self.supervised_pr, self.supervised_roc
        );
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Normal rows on a band, rare normal rows off it in one feature, and
    /// attacks off it in another: the unsupervised score cannot tell the
    /// rare normals from attacks, verdicts can.
    fn data(n: usize, seed: u64) -> SplitData {
        let mut d = SplitData::default();
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut unit = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f32 / (1u64 << 53) as f32
        };
        for i in 0..n {
            let t = unit() * 0.3;
            let (row, label) = match i % 40 {
                0 => (vec![t, 0.9 + unit() * 0.1, t], false),
                1 => (vec![t, t, 0.9 + unit() * 0.1], true),
                _ => (vec![t, t + unit() * 0.05, t + unit() * 0.05], false),
            };
            let (rows, labels) = if i % 3 == 0 {
                (&mut d.test, &mut d.test_labels)
            } else {
                (&mut d.train, &mut d.train_labels)
            };
            rows.push(row);
            labels.push(label);
        }
        d
    }

    fn plan(verdicts: Vec<usize>) -> VerdictPlan {
        VerdictPlan {
            sites: 3,
            alpha: 1.0,
            rounds: 2,
            verdicts,
            rule: Rule::FedAvg,
            head: HeadConfig::default(),
            train: TrainConfig {
                kind: crate::anomaly::ModelKind::Tails,
                top_k: 1,
                bins: 32,
                ..TrainConfig::default()
            },
            alert_quantile: 0.9,
        }
    }

    #[test]
    fn verdicts_lift_the_ranking_and_none_change_nothing() {
        let d = data(3000, 1);
        let r = run(&d, &plan(vec![0, 20]), 7).expect("runs");
        let (none, some) = (&r.points[0], &r.points[1]);
        assert!(!none.in_force);
        assert_eq!(none.federated.roc_auc, r.unsupervised.roc_auc);
        assert_eq!(none.federated.pr_auc, r.unsupervised.pr_auc);
        assert!(some.in_force, "{some:?}");
        assert!(
            some.federated.pr_auc > r.unsupervised.pr_auc + 0.1,
            "{some:?} vs {:?}",
            r.unsupervised
        );
        assert!(some.attacks + some.normals <= 60);
        // Replays exactly.
        let again = run(&d, &plan(vec![0, 20]), 7).expect("again");
        assert_eq!(again.points[1].federated, some.federated);
        let rep = report("band", vec![r, again]);
        assert_eq!(rep.rows.len(), 2);
        assert_eq!(rep.rows[1].federated_pr.sd, 0.0);
        assert!(rep.markdown().contains("| 20 |"));
    }
}
