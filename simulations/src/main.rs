//! `amoskys-sim run scenarios/NAME.toml [--out DIR]`: runs a scenario with a
//! progress bar and writes `result.json`, `REPORT.md` and plots. `RUST_LOG`
//! shows the nodes' logs.

use std::path::PathBuf;
use std::process::ExitCode;

use amoskys_simulations::scenario::Scenario;
use amoskys_simulations::{report, run};

fn main() -> ExitCode {
    // The nodes' own logs, when RUST_LOG asks for them (e.g. `RUST_LOG=warn`).
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (file, out) = match args.as_slice() {
        [cmd, file] if cmd == "run" => (PathBuf::from(file), None),
        [cmd, file, flag, dir] if cmd == "run" && flag == "--out" => {
            (PathBuf::from(file), Some(PathBuf::from(dir)))
        }
        _ => {
            eprintln!("usage: amoskys-sim run SCENARIO.toml [--out DIR]");
            return ExitCode::from(2);
        }
    };
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
