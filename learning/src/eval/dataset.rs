//! A model over several random stratified splits of one labelled table:
//! per-split figures, their mean ± sd, ranks among models compared on the
//! same splits, and a Markdown rendering. Baselines computed elsewhere (the
//! scikit-learn/pyod script) report in the same [`ModelReport`] shape.

use std::fmt::Write as _;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::table::{Split, Table};
use super::{average_precision, recall_at_fpr, roc_auc};
use crate::anomaly::{AnomalyModel, TrainConfig, TrainError};

/// Figures of one model on one split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitFigures {
    pub roc_auc: f64,
    pub pr_auc: f64,
    pub recall_at_1pct_fpr: f64,
    pub recall_at_5pct_fpr: f64,
    pub train_seconds: f64,
    pub score_seconds: f64,
}

impl SplitFigures {
    /// Figures of `scores` (higher = more unusual) against `labels`.
    pub fn of(scores: &[f64], labels: &[bool], train_seconds: f64, score_seconds: f64) -> Self {
        Self {
            roc_auc: roc_auc(scores, labels).unwrap_or(f64::NAN),
            pr_auc: average_precision(scores, labels).unwrap_or(f64::NAN),
            recall_at_1pct_fpr: recall_at_fpr(scores, labels, 0.01),
            recall_at_5pct_fpr: recall_at_fpr(scores, labels, 0.05),
            train_seconds,
            score_seconds,
        }
    }
}

/// Mean and sample standard deviation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub mean: f64,
    pub sd: f64,
}

impl Summary {
    pub fn of(values: impl IntoIterator<Item = f64>) -> Summary {
        let v: Vec<f64> = values.into_iter().collect();
        let n = v.len().max(1) as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = if v.len() > 1 {
            v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
        } else {
            0.0
        };
        Summary {
            mean,
            sd: var.sqrt(),
        }
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.3} ± {:.3}", self.mean, self.sd)
    }
}

/// One model's figures on every split, and their summaries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelReport {
    pub model: String,
    pub splits: Vec<SplitFigures>,
    pub roc_auc: Summary,
    pub pr_auc: Summary,
    pub recall_at_1pct_fpr: Summary,
    pub recall_at_5pct_fpr: Summary,
    pub train_seconds: Summary,
    pub score_seconds: Summary,
    /// Rank by mean ROC-AUC among the models of its data set (1 = best),
    /// set by [`DatasetReport::rank`].
    #[serde(default)]
    pub rank: f64,
}

impl ModelReport {
    pub fn new(model: impl Into<String>, splits: Vec<SplitFigures>) -> ModelReport {
        let s = |f: fn(&SplitFigures) -> f64| Summary::of(splits.iter().map(f));
        ModelReport {
            model: model.into(),
            roc_auc: s(|x| x.roc_auc),
            pr_auc: s(|x| x.pr_auc),
            recall_at_1pct_fpr: s(|x| x.recall_at_1pct_fpr),
            recall_at_5pct_fpr: s(|x| x.recall_at_5pct_fpr),
            train_seconds: s(|x| x.train_seconds),
            score_seconds: s(|x| x.score_seconds),
            splits,
            rank: 0.0,
        }
    }
}

/// Every model compared on one data set's splits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetReport {
    pub dataset: String,
    pub rows: usize,
    pub features: usize,
    pub outliers: usize,
    pub test_share: f64,
    pub seed: u64,
    pub models: Vec<ModelReport>,
}

impl DatasetReport {
    pub fn new(dataset: &str, table: &Table, test_share: f64, seed: u64) -> DatasetReport {
        DatasetReport {
            dataset: dataset.to_owned(),
            rows: table.rows.len(),
            features: table.columns.len(),
            outliers: table.outliers(),
            test_share,
            seed,
            models: Vec::new(),
        }
    }

    /// Ranks the models by mean ROC-AUC, ties sharing their average rank.
    pub fn rank(&mut self) {
        let auc: Vec<f64> = self.models.iter().map(|m| m.roc_auc.mean).collect();
        for (i, m) in self.models.iter_mut().enumerate() {
            let better = auc.iter().filter(|a| **a > auc[i]).count();
            let equal = auc.iter().filter(|a| **a == auc[i]).count();
            m.rank = better as f64 + (equal as f64 + 1.0) / 2.0;
        }
    }

    /// The report as a Markdown table.
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "### {} ({} rows, {} features, {} outliers; {} splits, {:.0}% test)\n\n\
             | model | rank | ROC-AUC | PR-AUC | recall @1% FPR | recall @5% FPR | train s | score s |\n\
             |---|---|---|---|---|---|---|---|\n",
            self.dataset,
            self.rows,
            self.features,
            self.outliers,
            self.models.first().map_or(0, |m| m.splits.len()),
            self.test_share * 100.0,
        );
        for m in &self.models {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {:.2} | {:.2} |",
                m.model,
                m.rank,
                m.roc_auc,
                m.pr_auc,
                m.recall_at_1pct_fpr,
                m.recall_at_5pct_fpr,
                m.train_seconds.mean,
                m.score_seconds.mean
            );
        }
        out
    }
}

/// Trains `cfg` on each split's training rows (labels never seen) and
/// scores its test rows.
pub fn evaluate(
    table: &Table,
    splits: &[Split],
    name: &str,
    cfg: &TrainConfig,
) -> Result<ModelReport, TrainError> {
    let mut figures = Vec::with_capacity(splits.len());
    for split in splits {
        let scaled = table.scaled(split);
        let train: Vec<&[f32]> = scaled.train.iter().map(Vec::as_slice).collect();
        let started = Instant::now();
        let model = AnomalyModel::train(name, &train, cfg)?;
        let train_seconds = started.elapsed().as_secs_f64();
        let test: Vec<&[f32]> = scaled.test.iter().map(Vec::as_slice).collect();
        let started = Instant::now();
        let scores = model.score(&test);
        let score_seconds = started.elapsed().as_secs_f64();
        figures.push(SplitFigures::of(
            &scores,
            &scaled.test_labels,
            train_seconds,
            score_seconds,
        ));
    }
    Ok(ModelReport::new(name, figures))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::anomaly::ModelKind;
    use crate::eval::table::{Format, LabelSpec};

    #[test]
    fn summary_is_mean_and_sample_sd() {
        let s = Summary::of([1.0, 2.0, 3.0]);
        assert_eq!((s.mean, s.sd), (2.0, 1.0));
        assert_eq!(Summary::of([4.0]).sd, 0.0);
        assert_eq!(s.to_string(), "2.000 ± 1.000");
    }

    #[test]
    fn a_planted_outlier_ranks_first_and_ranks_are_shared_on_ties() {
        // 200 rows near (0.5, 0.5) and 10 far out in column b.
        let mut csv = String::from("a,b,label\n");
        for i in 0..200 {
            let _ = writeln!(csv, "{},{},0", 0.5 + (i % 7) as f32 * 0.01, 0.5);
        }
        for i in 0..10 {
            let _ = writeln!(csv, "0.5,{},1", 5.0 + i as f32);
        }
        let spec = LabelSpec {
            column: None,
            outlier: None,
            ignore: Vec::new(),
        };
        let table = Table::parse(&csv, Format::Csv, &spec).expect("table");
        let splits = table.splits(2, 0.5, 1);
        let cfg = TrainConfig {
            kind: ModelKind::Tails,
            ..TrainConfig::default()
        };
        let ours = evaluate(&table, &splits, "tails", &cfg).expect("runs");
        assert_eq!(ours.splits.len(), 2);
        assert!(ours.roc_auc.mean > 0.95, "{:?}", ours.roc_auc);
        let mut report = DatasetReport::new("planted", &table, 0.5, 1);
        let worse = ModelReport::new(
            "worse",
            vec![SplitFigures::of(
                &[0.0; 4],
                &[true, false, true, false],
                0.0,
                0.0,
            )],
        );
        report.models = vec![ours.clone(), worse.clone(), worse];
        report.rank();
        let ranks: Vec<f64> = report.models.iter().map(|m| m.rank).collect();
        assert_eq!(ranks, [1.0, 2.5, 2.5]);
        assert!(
            report.markdown().contains("| tails | 1 |"),
            "{}",
            report.markdown()
        );
    }
}
