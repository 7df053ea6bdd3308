//! `amoskys-testnet`'s command line: help, version and usage errors come from
//! clap, and no verb needs a testnet to print its help.

use std::process::{Command, Output};

fn testnet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_amoskys-testnet"))
        .args(args)
        .output()
        .expect("amoskys-testnet runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_lists_every_verb_and_exits_0() {
    let out = testnet(&["--help"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let help = text(&out.stdout);
    for verb in [
        "up",
        "partition",
        "heal",
        "kill",
        "restart",
        "loss",
        "status",
        "down",
        "--dir",
        "--amoskys",
    ] {
        assert!(help.contains(verb), "{verb} missing from:\n{help}");
    }
    let out = testnet(&["partition", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("0,1 2,3,4"));
}

#[test]
fn version_prints_the_package_version() {
    let out = testnet(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout).trim(),
        format!("amoskys-testnet {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn usage_errors_exit_2_with_clap_messages() {
    let out = testnet(&["status", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("unexpected argument '--no-such-flag'"),
        "{}",
        text(&out.stderr)
    );
    for args in [
        &["up", "three"][..],
        &["partition", "0,x", "1"],
        &["loss", "1", "101"],
        &[],
    ] {
        let out = testnet(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn verbs_without_a_testnet_say_so() {
    let missing = std::env::temp_dir().join(format!("amoskys-testnet-none-{}", std::process::id()));
    let out = testnet(&["status", "--dir", &missing.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.starts_with("amoskys-testnet: "), "{err}");
    assert!(err.contains(&*missing.to_string_lossy()), "{err}");
    assert!(err.contains("amoskys-testnet up N"), "{err}");
}
