//! `amoskys eval federated`: the federated anomaly model on the real KDD
//! Cup 99 data, against the same model trained centrally (pooled rows) and
//! trained by each site alone, on two non-IID splits across sites, and with
//! poisoned sites under FedAvg and robust rules. Writes `report.json`,
//! `REPORT.md` and SVG plots of ROC-AUC and PR-AUC per round.
//! [`verdicts`]: the supervised head taught by simulated analysts'
//! verdicts (`--verdicts-per-site`).

pub mod verdicts;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use amoskys_learning::anomaly::TrainConfig;
use amoskys_learning::eval::federated::{self, Plan, Quality, Split, SplitReport};
use amoskys_learning::federated::Rule;
use serde::Serialize;

use crate::eval::{EvalError, load_arff, split};

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub cache: PathBuf,
    pub out: PathBuf,
    pub plan: Plan,
    pub alpha: f64,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub plan: Plan,
    pub splits: Vec<SplitReport>,
    pub verdicts: Vec<String>,
    /// What a reader must know about the run (seeded privacy noise).
    pub notes: Vec<String>,
}

/// Notes on the plan, printed with the verdicts and in the report.
pub fn notes(plan: &Plan) -> Vec<String> {
    plan.dp
        .iter()
        .map(|dp| {
            format!(
                "differential privacy: clip {}, noise multiplier {}; the DP noise is seeded for reproducibility and is not private (a node draws it from the operating system)",
                dp.clip, dp.noise_multiplier
            )
        })
        .collect()
}

/// The robust rules compared with FedAvg under poisoning.
pub fn robust_rules(plan: &Plan) -> Vec<Rule> {
    vec![
        Rule::Median,
        Rule::TrimmedMean { trim: 0.2 },
        Rule::MultiKrum {
            byzantine: plan.poisoned,
            select: plan.sites.saturating_sub(2 * plan.poisoned).max(1),
        },
    ]
}

/// Progress steps of a run (for a progress bar).
pub fn steps(plan: &Plan) -> u64 {
    let runs = if plan.poisoned > 0 {
        2 + 2 * robust_rules(plan).len() as u64
    } else {
        1
    };
    2 * (1 + plan.sites as u64 + runs * plan.rounds)
}

pub fn run(opts: &Options, progress: &mut dyn FnMut(&str)) -> Result<Report, EvalError> {
    if let Some(dp) = &opts.plan.dp {
        let problems = dp.problems();
        if !problems.is_empty() {
            return Err(EvalError::Federated(format!(
                "invalid --dp-clip or --dp-noise-multiplier: {}",
                problems.join("; ")
            )));
        }
    }
    let arff = load_arff(&opts.cache)?;
    let (train, test) = split(&arff)?;
    let robust = robust_rules(&opts.plan);
    let mut splits = Vec::new();
    for s in [Split::Dirichlet { alpha: opts.alpha }, Split::AttacksInTwo] {
        let r = federated::compare(&train, &test, s, &opts.plan, &robust, progress)
            .map_err(|e| EvalError::Federated(e.to_string()))?;
        splits.push(r);
    }
    let verdicts = verdicts(&splits);
    Ok(Report {
        plan: opts.plan.clone(),
        splits,
        verdicts,
        notes: notes(&opts.plan),
    })
}

fn split_name(s: &Split) -> String {
    match s {
        Split::Dirichlet { alpha } => format!("dirichlet-{alpha}"),
        Split::AttacksInTwo => "attacks-in-two".into(),
    }
}

/// The targets: federated ≥ 98% of centralized on both metrics; under
/// poisoning a robust rule within 2 points of clean.
fn verdicts(splits: &[SplitReport]) -> Vec<String> {
    let mut out = Vec::new();
    for s in splits {
        let name = split_name(&s.split);
        let c = s.centralized;
        if let Some(f) = s.runs.first().and_then(|r| r.last()) {
            let (roc, pr) = (f.roc_auc / c.roc_auc, f.pr_auc / c.pr_auc);
            let ok = roc >= 0.98 && pr >= 0.98;
            out.push(format!(
                "{name}: federated/centralized ROC-AUC {:.1}%, PR-AUC {:.1}% — target ≥ 98%: {}",
                roc * 100.0,
                pr * 100.0,
                if ok { "met" } else { "NOT met" }
            ));
        }
        let clean = |rule: &str| {
            s.runs
                .iter()
                .find(|r| r.rule == rule && r.poisoned == 0)
                .and_then(|r| r.last())
        };
        for r in s.runs.iter().filter(|r| r.poisoned > 0) {
            let (Some(p), Some(c)) = (r.last(), clean(&r.rule)) else {
                continue;
            };
            let (d_roc, d_pr) = (
                (c.roc_auc - p.roc_auc) * 100.0,
                (c.pr_auc - p.pr_auc) * 100.0,
            );
            let ok = d_roc <= 2.0 && d_pr <= 2.0;
            out.push(format!(
                "{name}: {} with {} poisoned loses {d_roc:.2} ROC-AUC / {d_pr:.2} PR-AUC points{}",
                r.rule,
                r.poisoned,
                if r.rule == "fedavg" {
                    String::new()
                } else if ok {
                    " — within 2: met".into()
                } else {
                    " — within 2: NOT met".into()
                }
            ));
        }
    }
    out
}

/// Writes `report.json`, `REPORT.md` and the plots into `dir`.
pub fn write(report: &Report, dir: &Path) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut written = Vec::new();
    let json = dir.join("report.json");
    let body = serde_json::to_vec_pretty(report).map_err(|e| e.to_string())?;
    std::fs::write(&json, body).map_err(|e| format!("cannot write {}: {e}", json.display()))?;
    written.push(json);
    for s in &report.splits {
        for (metric, pick) in [
            ("roc_auc", (|q: &Quality| q.roc_auc) as fn(&Quality) -> f64),
            ("pr_auc", |q: &Quality| q.pr_auc),
        ] {
            let path = dir.join(format!("{metric}-{}.svg", split_name(&s.split)));
            plot(s, metric, pick, &path)?;
            written.push(path);
        }
    }
    let md = dir.join("REPORT.md");
    std::fs::write(&md, markdown(report))
        .map_err(|e| format!("cannot write {}: {e}", md.display()))?;
    written.push(md);
    Ok(written)
}

fn markdown(r: &Report) -> String {
    let p = &r.plan;
    let mut m = String::new();
    let _ = writeln!(m, "# Federated anomaly model on KDD Cup 99\n");
    let _ = writeln!(
        m,
        "{} sites, {} rounds of {} local epochs (centralized and local-only models train {} epochs), seed {}, {} autoencoders {}→{}→{}, {} poisoned sites (reversed change ×{}).\n",
        p.sites,
        p.rounds,
        p.local_epochs,
        p.local_epochs * p.rounds as usize,
        p.seed,
        p.train.members,
        kdd_inputs(),
        p.train.hidden,
        p.train.bottleneck,
        p.poisoned,
        p.poison_scale
    );
    for n in &r.notes {
        let _ = writeln!(m, "Note: {n}.\n");
    }
    for v in &r.verdicts {
        let _ = writeln!(m, "- {v}");
    }
    for s in &r.splits {
        let name = split_name(&s.split);
        let _ = writeln!(m, "\n## {name}\n");
        let sizes: Vec<String> = s.sites.iter().map(|(n, a)| format!("{n} ({a})")).collect();
        let _ = writeln!(m, "Rows (attacks) per site: {}\n", sizes.join(", "));
        let _ = writeln!(m, "| model | ROC-AUC | PR-AUC | time |\n|---|---|---|---|");
        let _ = writeln!(
            m,
            "| centralized (pooled rows) | {:.4} | {:.4} | |",
            s.centralized.roc_auc, s.centralized.pr_auc
        );
        let valid: Vec<&Quality> = s
            .local_only
            .iter()
            .filter(|q| q.roc_auc.is_finite())
            .collect();
        if !valid.is_empty() {
            let mean = |f: fn(&Quality) -> f64| {
                valid.iter().map(|q| f(q)).sum::<f64>() / valid.len() as f64
            };
            let min = |f: fn(&Quality) -> f64| valid.iter().map(|q| f(q)).fold(f64::MAX, f64::min);
            let _ = writeln!(
                m,
                "| local-only, mean (worst) of {} sites | {:.4} ({:.4}) | {:.4} ({:.4}) | |",
                valid.len(),
                mean(|q| q.roc_auc),
                min(|q| q.roc_auc),
                mean(|q| q.pr_auc),
                min(|q| q.pr_auc)
            );
        }
        for run in &s.runs {
            if let Some(q) = run.last() {
                let _ = writeln!(
                    m,
                    "| {} | {:.4} | {:.4} | {:.1} s |",
                    run.label, q.roc_auc, q.pr_auc, run.seconds
                );
            }
        }
        let _ = writeln!(
            m,
            "\n![ROC-AUC per round](roc_auc-{name}.svg) ![PR-AUC per round](pr_auc-{name}.svg)"
        );
    }
    m
}

fn kdd_inputs() -> usize {
    amoskys_learning::eval::kdd::FEATURES
}

fn plot(
    s: &SplitReport,
    metric: &str,
    pick: fn(&Quality) -> f64,
    path: &Path,
) -> Result<(), String> {
    use plotters::prelude::*;
    let err = |e: &dyn std::fmt::Display| format!("cannot draw {}: {e}", path.display());
    let rounds = s
        .runs
        .iter()
        .map(|r| r.per_round.len())
        .max()
        .unwrap_or(1)
        .max(1);
    let values: Vec<f64> = s
        .runs
        .iter()
        .flat_map(|r| r.per_round.iter().map(pick))
        .chain([pick(&s.centralized)])
        .filter(|v| v.is_finite())
        .collect();
    let lo = values.iter().copied().fold(1.0, f64::min).max(0.0);
    let hi = values.iter().copied().fold(0.0, f64::max).min(1.0);
    let root = SVGBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{metric} per round — {}", split_name(&s.split)),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(
            1f64..rounds as f64,
            (lo - 0.02).max(0.0)..(hi + 0.02).min(1.0),
        )
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("round")
        .y_desc(metric)
        .draw()
        .map_err(|e| err(&e))?;
    let central = pick(&s.centralized);
    chart
        .draw_series(LineSeries::new(
            [(1.0, central), (rounds as f64, central)],
            BLACK.stroke_width(2),
        ))
        .map_err(|e| err(&e))?
        .label("centralized")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], BLACK));
    for (i, run) in s.runs.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                run.per_round
                    .iter()
                    .enumerate()
                    .map(|(k, q)| ((k + 1) as f64, pick(q))),
                color.stroke_width(2),
            ))
            .map_err(|e| err(&e))?
            .label(run.label.clone())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))
}

/// The default plan: 10 sites, the node's model settings.
pub fn default_plan(seed: u64) -> Plan {
    Plan {
        sites: 10,
        rounds: 10,
        local_epochs: 2,
        seed,
        train: TrainConfig {
            seed,
            ..TrainConfig::default()
        },
        poisoned: 2,
        poison_scale: 10.0,
        dp: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_privacy_noise_is_said_in_the_report() {
        let mut plan = default_plan(42);
        assert!(notes(&plan).is_empty());
        plan.dp = Some(amoskys_learning::federated::DpConfig {
            clip: 1.0,
            noise_multiplier: 1.5,
            delta: 1e-5,
        });
        let report = Report {
            notes: notes(&plan),
            plan,
            splits: Vec::new(),
            verdicts: Vec::new(),
        };
        let md = markdown(&report);
        assert!(
            md.contains("noise multiplier 1.5; the DP noise is seeded for reproducibility and is not private"),
            "{md}"
        );
    }
}
