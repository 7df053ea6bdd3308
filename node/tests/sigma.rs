//! Sigma rules on a real node: rules added with `amoskys rules add` through
//! the policy, processes this test starts seen by the procfs sensor (and
//! the eBPF exec sensor as root), signed alerts carrying the rule's id,
//! title, level and tags; near misses raise nothing; a bad rule is refused
//! naming its line, by the client and by the node.

mod common;

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use amoskys_mesh::Alert;
use amoskys_node::Node;
use common::{eventually, get_json};

/// Runs `amoskys ARGS --api ADDR` off the runtime; exit code and output.
async fn amoskys(api: SocketAddr, args: &[&str]) -> (i32, String) {
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let out = Command::new(env!("CARGO_BIN_EXE_amoskys"))
            .args(&args)
            .args(["--api", &api.to_string()])
            .output()
            .expect("amoskys runs");
        (
            out.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    })
    .await
    .expect("joins")
}

async fn alerts(addr: SocketAddr) -> Vec<Alert> {
    let (_, body) = get_json(addr, "/api/v1/alerts?limit=1000").await;
    serde_json::from_value(body["alerts"].clone()).expect("alerts")
}

fn evidence<'a>(a: &'a Alert, key: &str) -> Option<&'a str> {
    a.body
        .evidence
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// `sh -c 'sleep 2; true' ARG0 ARGS…` in `dir`: a shell that lives long
/// enough for a procfs pass, with the words in its command line.
fn shell(dir: &Path, arg0: &str, args: &[&str]) -> Child {
    Command::new("/bin/sh")
        .args(["-c", "sleep 2; true", arg0])
        .args(args)
        .current_dir(dir)
        .spawn()
        .expect("sh starts")
}

/// The user name of this process's uid, as the node shows it.
fn user_name() -> String {
    let out = Command::new("id").arg("-un").output().expect("id runs");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn rules(nonce: &str, user: &str, cwd: &str) -> String {
    format!(
        r#"title: Marked shell of the test
id: sigma-test-one
logsource:
    product: linux
    category: process_creation
detection:
    selection:
        Image|endswith:
            - '/sh'
            - '/dash'
            - '/bash'
        CommandLine|contains: '{nonce}-one'
        User: '{user}'
        CurrentDirectory: '{cwd}'
    condition: selection
level: high
tags:
    - attack.execution
    - attack.t1059.004
---
title: All three words
id: sigma-test-two
logsource:
    product: linux
    category: process_creation
detection:
    selection:
        CommandLine|contains|all:
            - '{nonce}-two'
            - 'alpha'
            - 'beta'
    condition: selection
level: low
tags:
    - attack.discovery
    - attack.t1082
---
title: Either mark unless skipped
id: sigma-test-three
logsource:
    product: linux
    category: process_creation
detection:
    selection_a:
        CommandLine|contains: '{nonce}-three-a'
    selection_b:
        CommandLine|contains: '{nonce}-three-b'
    filter:
        CommandLine|contains: '{nonce}-skip'
    condition: 1 of selection* and not filter
level: critical
tags:
    - attack.defense_evasion
    - attack.t1036
"#
    )
}

const BAD: &str = "title: Needs the parent's command line
id: sigma-test-bad
logsource:
    product: linux
    category: process_creation
detection:
    selection:
        Image|endswith: '/sh'
        ParentCommandLine|contains: 'php'
    condition: selection
";

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigma_rules_alert_on_real_processes_and_bad_rules_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ebpf = format!("sensors.ebpf.enabled={}", common::is_root());
    let node = Node::start(common::quiet_config(
        dir.path(),
        &[
            &ebpf,
            "cluster.heartbeat_ms=100",
            "cluster.election_min_ms=400",
            "cluster.election_max_ms=800",
        ],
    ))
    .await
    .expect("node starts");
    let addr = node.api_addr();
    let leader = eventually(Duration::from_secs(30), || async {
        let (_, v) = get_json(addr, "/api/v1/cluster").await;
        v["cluster"]["leader"].is_string().then_some(())
    })
    .await;
    assert!(leader.is_some(), "the node leads its cluster of one");

    let files = tempfile::tempdir().expect("tempdir");
    let nonce = format!("amoskys-sigma-{}", std::process::id());
    let cwd = files.path().canonicalize().expect("the directory's path");
    let good = write(
        files.path(),
        "rules.yml",
        &rules(&nonce, &user_name(), &cwd.display().to_string()),
    );
    let bad = write(files.path(), "bad.yml", BAD);

    // A bad rule: refused by the client, naming file, line, rule and field.
    let (code, out) = amoskys(addr, &["rules", "add", &bad]).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("{bad}:9: rule sigma-test-bad: ParentCommandLine:")),
        "{out}"
    );
    // And by the node, if a policy carries it.
    let doc = format!("[rules]\nsigma = [{}]\n", toml_string(BAD));
    let (status, body) =
        common::send(addr, reqwest::Method::PUT, "/api/v1/policy", Some(doc)).await;
    assert_eq!(status, 400, "{body}");
    let reason = body.to_string();
    assert!(
        reason.contains("rules.sigma[0]: rule sigma-test-bad: line 9: ParentCommandLine"),
        "{reason}"
    );

    let (code, out) = amoskys(addr, &["rules", "add", &good]).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("added rule sigma-test-one, sigma-test-three, sigma-test-two"),
        "{out}"
    );
    let (code, out) = amoskys(addr, &["rules", "list"]).await;
    assert_eq!(code, 0, "{out}");
    for words in [
        [
            "sigma-test-one",
            "high",
            "T1059.004",
            "Marked shell of the test",
        ],
        ["sigma-test-two", "low", "T1082", "All three words"],
    ] {
        assert!(
            out.lines().any(|l| words.iter().all(|w| l.contains(w))),
            "{words:?} in\n{out}"
        );
    }
    let (code, out) = amoskys(addr, &["rules", "add", &good]).await;
    assert_eq!(code, 1, "the same ids again: {out}");
    // The node applies the committed policy before its next batch.
    let applied = eventually(Duration::from_secs(10), || async {
        let (_, v) = get_json(addr, "/api/v1/cluster").await;
        (v["policy_version"].as_u64() >= Some(1)).then_some(())
    })
    .await;
    assert!(applied.is_some(), "policy applied");
    tokio::time::sleep(Duration::from_millis(300)).await;

    let one = format!("{nonce}-one");
    let two = format!("{nonce}-two");
    let three_a = format!("{nonce}-three-a");
    let three_b = format!("{nonce}-three-b");
    let skip = format!("{nonce}-skip");
    // Hits.
    let mut hits = vec![
        ("sigma-test-one", shell(&cwd, &one, &[])),
        ("sigma-test-two", shell(&cwd, &two, &["alpha", "beta"])),
        ("sigma-test-three", shell(&cwd, &three_a, &[])),
        ("sigma-test-three", shell(&cwd, &three_b, &[])),
    ];
    // Near misses: the mark in a program that is not a shell (endswith),
    // two of three words (all), the filter's word (not filter).
    let sleeper = Command::new("/bin/sleep")
        .arg0(&one)
        .arg("2")
        .spawn()
        .expect("sleep starts");
    let mut misses = vec![
        sleeper,
        shell(&cwd, &two, &["alpha"]),
        shell(&cwd, &three_a, &[skip.as_str()]),
    ];

    let expected: Vec<(&str, u32)> = hits.iter().map(|(r, c)| (*r, c.id())).collect();
    let found = eventually(Duration::from_secs(20), || async {
        let all = alerts(addr).await;
        let seen: Vec<Alert> = expected
            .iter()
            .filter_map(|(rule, pid)| {
                all.iter()
                    .find(|a| {
                        a.body.rule == format!("sigma:{rule}")
                            && evidence(a, "ProcessId") == Some(&pid.to_string())
                    })
                    .cloned()
            })
            .collect();
        (seen.len() == expected.len()).then_some(seen)
    })
    .await;
    let all = alerts(addr).await;
    let summary: Vec<String> = all
        .iter()
        .map(|a| format!("{} {:?}", a.body.rule, a.body.evidence))
        .collect();
    let found =
        found.unwrap_or_else(|| panic!("an alert for every hit {expected:?}: {summary:#?}"));
    for a in &found {
        a.verify().expect("signed");
        assert!(evidence(a, "title").is_some_and(|t| !t.is_empty()));
    }
    let first = &found[0];
    assert_eq!(evidence(first, "sigma_id"), Some("sigma-test-one"));
    assert_eq!(evidence(first, "title"), Some("Marked shell of the test"));
    assert_eq!(evidence(first, "level"), Some("high"));
    assert_eq!(
        evidence(first, "tags"),
        Some("attack.execution attack.t1059.004")
    );
    assert_eq!(
        (first.body.severity.as_str(), first.body.technique.as_str()),
        ("high", "T1059.004")
    );
    assert_eq!(first.body.category, "execution");
    let third = &found[2];
    assert_eq!(
        (third.body.severity.as_str(), third.body.category.as_str()),
        ("critical", "defense_evasion")
    );

    // The misses lived as long as the hits; give the sensors one more pass.
    for (_, c) in &mut hits {
        let _ = c.wait();
    }
    for c in &mut misses {
        let _ = c.wait();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let all = alerts(addr).await;
    for c in &misses {
        let pid = c.id().to_string();
        assert!(
            !all.iter().any(
                |a| a.body.rule.starts_with("sigma:") && evidence(a, "ProcessId") == Some(&pid)
            ),
            "near miss {pid} raised nothing: {summary:#?}"
        );
    }

    let (code, out) = amoskys(addr, &["rules", "remove", "sigma-test-two"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("removed rule sigma-test-one, sigma-test-three, sigma-test-two"),
        "the whole file goes: {out}"
    );
    let (code, out) = amoskys(addr, &["rules", "list"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("no Sigma rules in the policy"), "{out}");
    node.shutdown().await;
}

/// A TOML literal multi-line string.
fn toml_string(s: &str) -> String {
    format!("'''\n{s}'''")
}
