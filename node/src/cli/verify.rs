//! `amoskys alerts verify`: offline signature checks of exported alerts.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use amoskys_mesh::Alert;

use super::alerts::summary;

pub(super) fn alerts(file: &PathBuf) -> ExitCode {
    let reader: Box<dyn BufRead> = if file.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        match std::fs::File::open(file) {
            Ok(f) => Box::new(std::io::BufReader::new(f)),
            Err(e) => {
                eprintln!("amoskys: cannot read {}: {e}", file.display());
                return ExitCode::from(2);
            }
        }
    };
    let (mut good, mut bad) = (0usize, 0usize);
    for (i, line) in reader.lines().enumerate() {
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                eprintln!("line {}: cannot read: {e}", i + 1);
                bad += 1;
                continue;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        match Alert::decode(line.trim().as_bytes()) {
            Ok(a) => {
                good += 1;
                println!("line {}: ok  {}", i + 1, summary(&a));
            }
            Err(e) => {
                bad += 1;
                println!("line {}: FAILED  {e}", i + 1);
            }
        }
    }
    println!("{good} verified, {bad} failed");
    if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
