//! `amoskys-sim run scenarios/NAME.toml [--out DIR]`: runs a scenario with a
//! progress bar and writes `result.json`, `REPORT.md` and plots.
//! `amoskys-sim explore --seeds N [--minutes M]` explores random fault
//! schedules; `explore --replay SEED` runs one again. `RUST_LOG` shows the
//! nodes' logs.

use std::path::PathBuf;
use std::process::ExitCode;

use amoskys_simulations::scenario::Scenario;
use amoskys_simulations::{explore, report, run};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "amoskys-sim",
    version,
    about = "Seeded simulations of many full AMOSKYS nodes in one process",
    after_help = "RUST_LOG (e.g. RUST_LOG=warn) shows the nodes' own logs."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a scenario; print its report and write result.json, REPORT.md and
    /// plots.
    Run {
        /// The scenario file (see simulations/scenarios/).
        #[arg(value_name = "SCENARIO.toml")]
        scenario: PathBuf,
        /// Where to write the report (default: sim-NAME).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Explore random fault schedules, one per seed, and check every
    /// invariant after each; a failure prints its seed and schedule.
    Explore {
        /// How many seeds to explore.
        #[arg(long, default_value_t = 10, value_name = "N")]
        seeds: u64,
        /// The first seed.
        #[arg(long, default_value_t = 1, value_name = "SEED")]
        first_seed: u64,
        /// Start no new schedule after this many minutes.
        #[arg(long, value_name = "M")]
        minutes: Option<f64>,
        /// Run the schedule of this one seed again.
        #[arg(long, value_name = "SEED", conflicts_with_all = ["seeds", "first_seed", "minutes"])]
        replay: Option<u64>,
        /// Where to write explore.json, EXPLORE.md and, as scenario files
        /// for `amoskys-sim run`, the schedule of each failed (or replayed)
        /// seed (explore-SEED.toml).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    // The nodes' own logs, when RUST_LOG asks for them (e.g. `RUST_LOG=warn`),
    // filtered and coloured as `amoskys run` does.
    if std::env::var_os("RUST_LOG").is_some() {
        amoskys_node::telemetry::init(amoskys_node::config::LogFormat::Text, "warn");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("amoskys-sim: {e}");
            return ExitCode::FAILURE;
        }
    };
    match Cli::parse().command {
        Command::Run { scenario, out } => run_scenario(&runtime, &scenario, out),
        Command::Explore {
            seeds,
            first_seed,
            minutes,
            replay,
            out,
        } => {
            let opts = match replay {
                Some(seed) => explore::Options {
                    first_seed: seed,
                    seeds: 1,
                    budget: None,
                },
                None => explore::Options {
                    first_seed,
                    seeds,
                    budget: minutes.map(|m| std::time::Duration::from_secs_f64(m.max(0.0) * 60.0)),
                },
            };
            run_explore(&runtime, &opts, out)
        }
    }
}

/// A line above the spinner, printed also when the output is no terminal
/// (where the spinner hides, and its own `println` with it).
fn say(bar: &indicatif::ProgressBar, line: String) {
    bar.suspend(|| println!("{line}"));
}

fn spinner() -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

fn run_scenario(
    runtime: &tokio::runtime::Runtime,
    file: &std::path::Path,
    out: Option<PathBuf>,
) -> ExitCode {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("amoskys-sim: cannot read {}: {e}", file.display());
            return ExitCode::FAILURE;
        }
    };
    let scenario = match Scenario::parse(&text) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("amoskys-sim: {}: {e}", file.display());
            return ExitCode::FAILURE;
        }
    };
    let out = out.unwrap_or_else(|| PathBuf::from(format!("sim-{}", scenario.name)));
    let bar = spinner();
    let result = runtime.block_on(run::run(&scenario, &mut |m: &str| {
        bar.set_message(m.to_owned())
    }));
    bar.finish_and_clear();
    let outcome = match result {
        Ok(o) => o,
        Err(e) => {
            eprintln!("amoskys-sim: {e}");
            return ExitCode::FAILURE;
        }
    };
    print!("{}", report::markdown(&outcome));
    match report::write(&outcome, &out) {
        Ok(_) => println!("\nwritten to {}", out.display()),
        Err(e) => {
            eprintln!("amoskys-sim: {e}");
            return ExitCode::FAILURE;
        }
    }
    if outcome.invariants.iter().all(|i| i.held) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn run_explore(
    runtime: &tokio::runtime::Runtime,
    opts: &explore::Options,
    out: Option<PathBuf>,
) -> ExitCode {
    let bar = spinner();
    // The schedules worth keeping: every failed one, and a replayed one.
    let mut keep: Vec<(u64, String)> = Vec::new();
    let report = runtime.block_on(explore::explore(
        opts,
        &mut |m: &str| bar.set_message(m.to_owned()),
        &mut |s, e| {
            if !e.passed() || opts.seeds == 1 {
                keep.push((e.seed, toml::to_string(s).unwrap_or_default()));
            }
            let verdict = if e.passed() { "ok" } else { "FAILED" };
            say(
                &bar,
                format!(
                    "seed {}: {verdict} ({} nodes, {} faults, {} client calls, {:.0} s)",
                    e.seed, e.nodes, e.faults, e.calls, e.seconds
                ),
            );
            if !e.passed() {
                for i in e.invariants.iter().filter(|i| !i.held) {
                    say(&bar, format!("  violated: {}: {}", i.name, i.detail));
                }
                if let Some(err) = &e.error {
                    say(&bar, format!("  could not run: {err}"));
                }
                let schedule = toml::to_string(s).unwrap_or_default();
                say(
                    &bar,
                    format!(
                        "  replay: amoskys-sim explore --replay {}\n  schedule:\n{}",
                        e.seed,
                        schedule
                            .lines()
                            .map(|l| format!("    {l}"))
                            .collect::<Vec<_>>()
                            .join("\n")
                    ),
                );
            }
        },
    ));
    bar.finish_and_clear();
    let text = explore::markdown(&report);
    print!("{text}");
    if let Some(dir) = out {
        let json = serde_json::to_string_pretty(&report).unwrap_or_default();
        let written = std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(dir.join("explore.json"), json))
            .and_then(|()| std::fs::write(dir.join("EXPLORE.md"), &text))
            .and_then(|()| {
                keep.iter().try_for_each(|(seed, schedule)| {
                    std::fs::write(dir.join(format!("explore-{seed}.toml")), schedule)
                })
            });
        if let Err(e) = written {
            eprintln!("amoskys-sim: cannot write to {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
        println!("\nwritten to {}", dir.display());
    }
    if report.failures().is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
