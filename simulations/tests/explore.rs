//! The fault explorer as a user runs it: a few seeds, every invariant
//! checked, the report written; a seed replayed gives the same schedule.

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
fn a_few_seeds_explore_and_replay_with_every_invariant_held() {
    let out_dir = tempfile::tempdir().expect("tempdir");
    let dir = out_dir.path().join("explore");
    let dir_s = dir.to_string_lossy().into_owned();
    let out = sim(&[
        "explore",
        "--seeds",
        "3",
        "--first-seed",
        "3",
        "--out",
        &dir_s,
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(stdout.contains("Schedules explored: 3 in"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("explore.json")).expect("explore.json"))
            .expect("JSON");
    let runs = report["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 3);
    for r in runs {
        let names: Vec<&str> = r["invariants"]
            .as_array()
            .expect("invariants")
            .iter()
            .filter_map(|i| i["name"].as_str())
            .collect();
        for wanted in [
            "every honest alert delivered to every running node",
            "one leader per term",
            "policy history linearizable",
            "acknowledged policy writes kept",
            "workspace replicas identical after healing",
        ] {
            assert!(names.contains(&wanted), "{wanted}: {names:?}");
        }
    }
    assert!(dir.join("EXPLORE.md").is_file());

    // Seed 1 kills the leader of three nodes that are connected only
    // through it: the two others must still elect a new one (pre-vote
    // dials a voter it has no connection to).
    let replay = out_dir.path().join("replay");
    let replay_s = replay.to_string_lossy().into_owned();
    let out = sim(&["explore", "--replay", "1", "--out", &replay_s]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("Schedules explored: 1 in"), "{stdout}");
    assert!(
        stdout.contains("| a leader again soon after the leader's kill | 1 | 1 |"),
        "{stdout}"
    );
    let schedule = std::fs::read_to_string(replay.join("explore-1.toml")).expect("schedule");
    assert!(schedule.contains("kind = \"kill\""), "{schedule}");
}

#[test]
fn replay_takes_no_other_selection() {
    let out = sim(&["explore", "--replay", "4", "--seeds", "9"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot be used with"));
}
