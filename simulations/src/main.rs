//! `amoskys-sim run scenarios/NAME.toml [--out DIR]`: runs a scenario with a
//! progress bar and writes `result.json`, `REPORT.md` and plots. `RUST_LOG`
//! shows the nodes' logs.

use std::path::PathBuf;
use std::process::ExitCode;

use amoskys_simulations::scenario::Scenario;
use amoskys_simulations::{report, run};
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
}

fn main() -> ExitCode {
    let Command::Run {
        scenario: file,
        out,
    } = Cli::parse().command;
    // The nodes' own logs, when RUST_LOG asks for them (e.g. `RUST_LOG=warn`),
    // filtered and coloured as `amoskys run` does.
    if std::env::var_os("RUST_LOG").is_some() {
        amoskys_node::telemetry::init(amoskys_node::config::LogFormat::Text, "warn");
    }
    let text = match std::fs::read_to_string(&file) {
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
    let bar = indicatif::ProgressBar::new_spinner();
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
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
