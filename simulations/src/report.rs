//! Writes a run's `result.json`, `REPORT.md` and plots (latency CDF,
//! delivery over time, model quality per round).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::run::Outcome;

pub fn write(o: &Outcome, dir: &Path) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let json = dir.join("result.json");
    std::fs::write(
        &json,
        serde_json::to_vec_pretty(o).map_err(|e| e.to_string())?,
    )
    .map_err(|e| format!("cannot write {}: {e}", json.display()))?;
    let cdf: Vec<(f64, f64)> = o
        .latencies_ms
        .iter()
        .enumerate()
        .map(|(i, l)| (*l, (i + 1) as f64 / o.latencies_ms.len().max(1) as f64))
        .collect();
    let lat = dir.join("latency_cdf.svg");
    plot(
        &cdf,
        "latency (ms)",
        "share of deliveries",
        &format!("{}: latency CDF", o.scenario.name),
        &lat,
    )?;
    let over = dir.join("delivery_over_time.svg");
    plot(
        &o.delivery_over_time,
        "ms since the first attack",
        "share of deliveries",
        &format!("{}: delivery over time", o.scenario.name),
        &over,
    )?;
    let mut files = vec![json, lat, over];
    let quality: Vec<(f64, f64)> = o
        .rounds
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.roc_auc.map(|a| ((i + 1) as f64, a)))
        .collect();
    if !quality.is_empty() {
        let q = dir.join("model_quality.svg");
        plot(
            &quality,
            "round",
            "ROC-AUC on held-out windows",
            &format!("{}: model quality per round", o.scenario.name),
            &q,
        )?;
        files.push(q);
    }
    let md = dir.join("REPORT.md");
    std::fs::write(&md, markdown(o)).map_err(|e| format!("cannot write {}: {e}", md.display()))?;
    files.push(md);
    Ok(files)
}

pub fn markdown(o: &Outcome) -> String {
    let s = &o.scenario;
    let q = |x: f64| o.quantile(x).map_or("—".into(), |v| format!("{v:.1} ms"));
    let mut m = String::new();
    let _ = writeln!(m, "# Simulation `{}`\n", s.name);
    let _ = writeln!(
        m,
        "{} nodes (each dialling up to {} earlier ones), seed {}, {} attacks every {} ms, {} Byzantine peers, {} faults. Nodes started in {:.1} s (then {:.1} peers each, on average); the run took {:.1} s.\n",
        s.nodes,
        s.degree,
        s.seed,
        s.attacks,
        s.interval_ms,
        s.byzantine,
        s.faults.len(),
        o.start_seconds,
        o.mean_peers,
        o.run_seconds
    );
    let _ = writeln!(
        m,
        "| delivered | p50 | p95 | p99 | max |\n|---|---|---|---|---|"
    );
    let _ = writeln!(
        m,
        "| {} / {} ({:.1}%) | {} | {} | {} | {} |\n",
        o.delivered,
        o.expected,
        o.delivery_ratio() * 100.0,
        q(0.5),
        q(0.95),
        q(0.99),
        q(1.0)
    );
    if o.latencies_ms.len() < o.delivered {
        let _ = writeln!(
            m,
            "Latencies are over the {} deliveries whose announcement the simulator heard; the other {} were counted in the nodes' stores.\n",
            o.latencies_ms.len(),
            o.delivered - o.latencies_ms.len()
        );
    }
    let _ = writeln!(m, "| invariant | held | detail |\n|---|---|---|");
    for i in &o.invariants {
        let _ = writeln!(
            m,
            "| {} | {} | {} |",
            i.name,
            if i.held { "yes" } else { "**NO**" },
            i.detail
        );
    }
    if let Some(f) = &s.federated {
        let _ = writeln!(
            m,
            "\n{} federated rounds ({:?}, {} epochs, deadline {} s); poisoned sites {:?}, stragglers {:?} ({} ms late).\n",
            f.rounds, f.rule, f.epochs, f.deadline_secs, f.poisoned, f.stragglers, f.straggle_ms
        );
        let _ = writeln!(
            m,
            "| round | outcome | participants | seconds | ROC-AUC |\n|---|---|---|---|---|"
        );
        for r in &o.rounds {
            let _ = writeln!(
                m,
                "| {} | {} | {} | {:.1} | {} |",
                r.round,
                r.status,
                r.participants,
                r.seconds,
                r.roc_auc.map_or("—".into(), |a| format!("{a:.3}"))
            );
        }
    }
    let _ = writeln!(
        m,
        "\n![latency CDF](latency_cdf.svg) ![delivery over time](delivery_over_time.svg)"
    );
    if o.rounds.iter().any(|r| r.roc_auc.is_some()) {
        let _ = writeln!(m, "![model quality per round](model_quality.svg)");
    }
    m
}

fn plot(points: &[(f64, f64)], x: &str, y: &str, title: &str, path: &Path) -> Result<(), String> {
    use plotters::prelude::*;
    let err = |e: &dyn std::fmt::Display| format!("cannot draw {}: {e}", path.display());
    let xmax = points.iter().map(|p| p.0).fold(1.0, f64::max);
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(48)
        .build_cartesian_2d(0f64..xmax * 1.05, 0f64..1.05)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc(x)
        .y_desc(y)
        .draw()
        .map_err(|e| err(&e))?;
    chart
        .draw_series(LineSeries::new(
            points.iter().copied(),
            BLUE.stroke_width(2),
        ))
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))
}
