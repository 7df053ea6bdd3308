//! `amoskys-sim`'s command line: help, version and usage errors come from
//! clap; `run` keeps its arguments.

use std::process::{Command, Output};

fn sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_amoskys-sim"))
        .args(args)
        .output()
        .expect("amoskys-sim runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_and_version_exit_0() {
    let out = sim(&["--help"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("run"), "{}", text(&out.stdout));
    let out = sim(&["run", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    assert!(
        help.contains("SCENARIO.toml") && help.contains("--out <DIR>"),
        "{help}"
    );
    let out = sim(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout).trim(),
        format!("amoskys-sim {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn usage_errors_exit_2_with_clap_messages() {
    let out = sim(&["run", "x.toml", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("unexpected argument '--no-such-flag'"),
        "{}",
        text(&out.stderr)
    );
    for args in [&[][..], &["run"], &["walk", "x.toml"]] {
        assert_eq!(sim(args).status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn a_missing_scenario_file_is_named() {
    let missing =
        std::env::temp_dir().join(format!("amoskys-sim-none-{}.toml", std::process::id()));
    let out = sim(&["run", &missing.to_string_lossy(), "--out", "unused"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.starts_with("amoskys-sim: cannot read "), "{err}");
    assert!(!std::path::Path::new("unused").exists());
}
