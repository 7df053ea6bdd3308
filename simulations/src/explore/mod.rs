//! The fault explorer (`amoskys-sim explore`): draws a schedule from each
//! seed ([`plan::draw`]), runs it on real nodes with [`crate::run::run`],
//! and checks every invariant the run reports: every honest alert on every
//! running node exactly once, nothing from a non-member, one leader per
//! term, a healed partition leaving its leader in place, a linearizable
//! policy history ([`history`]), no acknowledged policy write lost, and
//! identical workspace replicas after healing. A failure prints its seed
//! and schedule; `--replay SEED` runs the same schedule again.

pub mod history;
pub mod plan;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::run::{self, Invariant};
use crate::scenario::Scenario;

/// What to explore.
#[derive(Debug, Clone)]
pub struct Options {
    pub first_seed: u64,
    pub seeds: u64,
    /// Starts no new run after this long.
    pub budget: Option<Duration>,
}

/// One explored schedule.
#[derive(Debug, Clone, Serialize)]
pub struct Explored {
    pub seed: u64,
    pub nodes: usize,
    pub faults: usize,
    pub calls: usize,
    pub seconds: f64,
    pub invariants: Vec<Invariant>,
    /// Why the run could not be made, if it could not.
    pub error: Option<String>,
}

impl Explored {
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.invariants.iter().all(|i| i.held)
    }
}

/// Everything one exploration did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub runs: Vec<Explored>,
    /// Faults injected, by kind.
    pub faults: BTreeMap<String, usize>,
    /// Invariant checks made and passed, by invariant.
    pub checks: BTreeMap<String, (usize, usize)>,
    pub seconds: f64,
}

impl Report {
    pub fn failures(&self) -> Vec<&Explored> {
        self.runs.iter().filter(|r| !r.passed()).collect()
    }
}

/// Runs one seed's schedule.
pub async fn one(seed: u64, progress: &mut dyn FnMut(&str)) -> (Scenario, Explored) {
    let s = plan::draw(seed);
    let started = Instant::now();
    let outcome = run::run(&s, progress).await;
    let (invariants, error) = match outcome {
        Ok(o) => (o.invariants, None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let explored = Explored {
        seed,
        nodes: s.nodes,
        faults: s.faults.len(),
        calls: s.clients.len(),
        seconds: started.elapsed().as_secs_f64(),
        invariants,
        error,
    };
    (s, explored)
}

/// Explores `opts.seeds` seeds from `opts.first_seed`, within the budget;
/// `done` hears of each run as it ends.
pub async fn explore(
    opts: &Options,
    progress: &mut dyn FnMut(&str),
    done: &mut dyn FnMut(&Scenario, &Explored),
) -> Report {
    let started = Instant::now();
    let mut report = Report::default();
    for seed in opts.first_seed..opts.first_seed.saturating_add(opts.seeds) {
        if opts.budget.is_some_and(|b| started.elapsed() >= b) {
            break;
        }
        let (s, e) = one(seed, progress).await;
        for f in &s.faults {
            *report
                .faults
                .entry(plan::kind_name(&f.kind).to_owned())
                .or_default() += 1;
        }
        for i in &e.invariants {
            let c = report.checks.entry(i.name.clone()).or_default();
            c.0 += 1;
            c.1 += usize::from(i.held);
        }
        done(&s, &e);
        report.runs.push(e);
    }
    report.seconds = started.elapsed().as_secs_f64();
    report
}

/// The report as Markdown (docs/BENCHMARKS.md quotes it).
pub fn markdown(r: &Report) -> String {
    let mut out = String::new();
    let failed = r.failures();
    out.push_str(&format!(
        "Schedules explored: {} in {:.0} s, {} failed.\n\n",
        r.runs.len(),
        r.seconds,
        failed.len()
    ));
    out.push_str("| fault | injected |\n|---|---:|\n");
    for (k, n) in &r.faults {
        out.push_str(&format!("| {k} | {n} |\n"));
    }
    out.push_str("\n| invariant | checked | held |\n|---|---:|---:|\n");
    for (k, (checked, held)) in &r.checks {
        out.push_str(&format!("| {k} | {checked} | {held} |\n"));
    }
    if !failed.is_empty() {
        out.push_str("\nFailed seeds (replay with `amoskys-sim explore --replay SEED`):\n\n");
        for f in failed {
            let why: Vec<String> = f
                .invariants
                .iter()
                .filter(|i| !i.held)
                .map(|i| format!("{}: {}", i.name, i.detail))
                .chain(f.error.clone())
                .collect();
            out.push_str(&format!("- seed {}: {}\n", f.seed, why.join("; ")));
        }
    }
    out
}
