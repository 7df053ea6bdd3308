//! Alert outputs against real receivers: an HTTP server that is down for a
//! while or refuses an alert, an `amoskys run` process killed with SIGKILL
//! while its spool holds alerts, files, and outputs of two meshed nodes.
//! rsyslogd's tests are in outputs_syslog.rs.

mod common;
#[path = "outputs/support.rs"]
mod support;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use amoskys_mesh::Alert;
use amoskys_node::Node;
use amoskys_node::config::OutputSection;
use common::{eventually, get_json};
use support::{Bodies, alerts_in, config_with, free_port, lines, outage, receiver, run_node};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_output_writes_one_ocsf_line_per_alert() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("alerts").join("ocsf.jsonl");
    let node = Node::start(config_with(
        dir.path(),
        &format!(
            r#"
[[outputs]]
name = "archive"
kind = "file"
path = "{}"
format = "ocsf"
rules = ["port_scan_vertical"]
rotate_kib = 16
keep_files = 2
"#,
            path.display()
        ),
    ))
    .await
    .expect("node starts");
    let mut raised = Vec::new();
    for i in 1..=3 {
        raised.push(common::raise(&node, Ipv4Addr::new(10, 6, 0, i)).await);
    }
    let all_in = eventually(Duration::from_secs(10), || async {
        (lines(&path).len() >= 3).then_some(())
    })
    .await;
    assert!(all_in.is_some(), "the file holds {:?}", lines(&path));
    let uids: Vec<String> = lines(&path)
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            assert_eq!(v["class_uid"], 2004, "an OCSF Detection Finding: {v}");
            v["finding_info"]["uid"].as_str().expect("uid").to_owned()
        })
        .collect();
    let want: Vec<String> = raised.iter().map(|a| a.id.clone()).collect();
    assert_eq!(uids, want);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_down_for_a_while_gets_every_alert_once_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let node = Node::start(config_with(
        dir.path(),
        &format!(
            r#"
[[outputs]]
name = "hook"
kind = "webhook"
url = "http://127.0.0.1:{port}/hook"
headers = ["Authorization: Bearer test-token"]
rules = ["port_scan_vertical"]
retry_min_ms = 100
retry_max_ms = 1000
"#
        ),
    ))
    .await
    .expect("node starts");
    let addr = node.api_addr();

    // Alerts keep coming while the receiver is down.
    let down = outage();
    let start = Instant::now();
    let mut raised = Vec::new();
    let mut i = 0u8;
    while start.elapsed() < down {
        i += 1;
        raised.push(common::raise(&node, Ipv4Addr::new(10, 8, 0, i)).await);
        tokio::time::sleep(down / 6).await;
    }
    let (_, status) = get_json(addr, "/api/v1/node").await;
    let o = &status["outputs"][0];
    assert_eq!(o["state"], "retrying", "{o}");
    assert_eq!(o["sent"], 0, "{o}");
    assert_eq!(o["spooled"], raised.len(), "{o}");
    assert!(o["retried"].as_u64() > Some(3), "{o}");
    assert!(
        o["message"]
            .as_str()
            .is_some_and(|m| m.contains("127.0.0.1")),
        "{o}"
    );

    let bodies = Bodies::default();
    let _stop = receiver(port, bodies.clone()).await;
    raised.push(common::raise(&node, Ipv4Addr::new(10, 8, 1, 1)).await);
    let n = raised.len();
    let all = eventually(Duration::from_secs(20), || async {
        (alerts_in(&bodies).len() >= n).then_some(())
    })
    .await;
    assert!(all.is_some(), "{} of {n} arrived", alerts_in(&bodies).len());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got: Vec<String> = alerts_in(&bodies).into_iter().map(|a| a.id).collect();
    let want: Vec<String> = raised.iter().map(|a| a.id.clone()).collect();
    assert_eq!(got, want, "every alert once, in order");

    let (_, status) = get_json(addr, "/api/v1/node").await;
    let o = &status["outputs"][0];
    assert_eq!(
        (o["state"].as_str(), o["sent"].as_u64()),
        (Some("ok"), Some(n as u64))
    );
    assert_eq!(
        (o["spooled"].as_u64(), o["dropped"].as_u64()),
        (Some(0), Some(0))
    );
    let (_, metrics) = common::get(addr, "/metrics").await;
    assert!(
        metrics.contains(&format!(
            "amoskys_output_alerts_sent_total{{output=\"hook\",kind=\"webhook\"}} {n}"
        )),
        "{metrics}"
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_alert_is_dropped_and_a_busy_answer_retried() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let bodies = Bodies::default();
    let _stop = receiver(port, bodies.clone()).await;
    let node = Node::start(config_with(
        dir.path(),
        &format!(
            r#"
[[outputs]]
name = "picky"
kind = "webhook"
url = "http://127.0.0.1:{port}/picky"
rules = ["port_scan_vertical"]
retry_min_ms = 100
"#
        ),
    ))
    .await
    .expect("node starts");
    let mut raised = Vec::new();
    for i in 1..=4 {
        raised.push(common::raise(&node, Ipv4Addr::new(10, 3, 0, i)).await);
    }
    let addr = node.api_addr();
    let done = eventually(Duration::from_secs(10), || async {
        let (_, s) = get_json(addr, "/api/v1/node").await;
        let o = s["outputs"][0].clone();
        (o["sent"] == 3 && o["spooled"] == 0).then_some(o)
    })
    .await
    .expect("three alerts delivered");
    assert_eq!(
        (done["failed"].as_u64(), done["retried"].as_u64()),
        (Some(1), Some(1)),
        "{done}"
    );
    let got: Vec<String> = alerts_in(&bodies).into_iter().map(|a| a.id).collect();
    let want: Vec<String> = raised[1..].iter().map(|a| a.id.clone()).collect();
    assert_eq!(
        got, want,
        "the refused alert left out, the busy one kept, in order"
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_template_posts_its_own_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let bodies = Bodies::default();
    let _stop = receiver(port, bodies.clone()).await;
    let node = Node::start(config_with(
        dir.path(),
        &format!(
            r#"
[[outputs]]
name = "chat"
kind = "webhook"
url = "http://127.0.0.1:{port}/hook"
rules = ["port_scan_vertical"]
template = '{{"text": "AMOSKYS {{{{severity}}}}: {{{{rule}}}} on {{{{subject}}}} ({{{{id}}}})"}}'
"#
        ),
    ))
    .await
    .expect("node starts");
    let alert = common::raise(&node, Ipv4Addr::new(10, 2, 0, 1)).await;
    let body = eventually(Duration::from_secs(10), || async {
        bodies.lock().expect("lock").first().cloned()
    })
    .await
    .expect("the chat service gets a message");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let b = &alert.body;
    assert_eq!(
        v["text"],
        format!(
            "AMOSKYS {}: {} on {} ({})",
            b.severity, b.rule, b.subject, alert.id
        )
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_drops_new_alerts_and_counts_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let node = Node::start(config_with(
        dir.path(),
        &format!(
            r#"
[[outputs]]
name = "small"
kind = "webhook"
url = "http://127.0.0.1:{port}/hook"
rules = ["port_scan_vertical"]
spool_max_kib = 16
"#
        ),
    ))
    .await
    .expect("node starts");
    // About 700 bytes each: 16 KiB hold fewer than 30.
    let n = 40u64;
    for i in 0..n {
        common::raise(
            &node,
            Ipv4Addr::new(10, 5, (i / 200) as u8, (i % 200 + 1) as u8),
        )
        .await;
    }
    let addr = node.api_addr();
    let counted = eventually(Duration::from_secs(5), || async {
        let (_, s) = get_json(addr, "/api/v1/node").await;
        let o = s["outputs"][0].clone();
        let (spooled, dropped) = (o["spooled"].as_u64()?, o["dropped"].as_u64()?);
        (spooled + dropped == n).then_some((spooled, dropped))
    })
    .await;
    let (spooled, dropped) = counted.expect("every alert spooled or dropped");
    assert!(
        dropped > 0 && spooled > 10,
        "spooled {spooled}, dropped {dropped}"
    );
    let bytes: u64 = std::fs::read_dir(dir.path().join("data/outputs/small"))
        .expect("the spool directory")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
        .map(|e| e.metadata().map_or(0, |m| m.len()))
        .sum();
    assert!(bytes <= 16 * 1024, "the spool holds {bytes} bytes");
    let (_, metrics) = common::get(addr, "/metrics").await;
    assert!(
        metrics.contains(&format!(
            "amoskys_output_alerts_dropped_total{{output=\"small\",kind=\"webhook\"}} {dropped}"
        )),
        "{metrics}"
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_with_spooled_alerts_delivers_them_after_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let config: PathBuf = dir.path().join("node.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[[outputs]]
name = "hook"
kind = "webhook"
url = "http://127.0.0.1:{port}/hook"
rules = ["new_listening_port"]
retry_min_ms = 100
retry_max_ms = 500

[mesh]
listen = ["127.0.0.1:0"]

[sensors.flows]
enabled = false

[sensors.ebpf]
enabled = false
"#
        ),
    )
    .expect("write config");
    let data = dir.path().join("data");
    let (mut node, api) = run_node(&data, &config);
    // Past the listener baseline: the next listeners of this process are
    // new to the node, and each raises an alert.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let listeners: Vec<std::net::TcpListener> = (0..3)
        .map(|_| std::net::TcpListener::bind("0.0.0.0:0").expect("bind"))
        .collect();
    let ports: Vec<u16> = listeners
        .iter()
        .map(|l| l.local_addr().expect("addr").port())
        .collect();
    // The spool on disk holds this test's alerts (other processes on the
    // host may open listeners too), and the output is retrying.
    let subjects: Vec<String> = ports.iter().map(|p| format!("listener:{p}")).collect();
    let spool = data.join("outputs/hook");
    let spooled = eventually(Duration::from_secs(20), || async {
        let held: String = std::fs::read_dir(&spool)
            .ok()?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .collect();
        let (_, s) = get_json(api, "/api/v1/node").await;
        (subjects.iter().all(|x| held.contains(&format!("\"{x}\"")))
            && s["outputs"][0]["state"] == "retrying")
            .then_some(())
    })
    .await;
    assert!(
        spooled.is_some(),
        "the node spools its alerts in {}",
        spool.display()
    );

    // `amoskys status` shows the output waiting on its receiver.
    let status = Command::new(env!("CARGO_BIN_EXE_amoskys"))
        .args(["status", "--api", &api.to_string()])
        .output()
        .expect("amoskys status runs");
    let text = String::from_utf8_lossy(&status.stdout);
    let row = text
        .lines()
        .find(|l| l.starts_with("hook "))
        .unwrap_or_default();
    assert!(
        text.contains("OUTPUT") && row.contains("webhook") && row.contains("retrying"),
        "{text}"
    );
    node.0.kill().expect("SIGKILL");
    let _ = node.0.wait();
    let bodies = Bodies::default();
    let _stop = receiver(port, bodies.clone()).await;
    let (_node, api) = run_node(&data, &config);
    let delivered = eventually(Duration::from_secs(20), || async {
        let got = alerts_in(&bodies);
        subjects
            .iter()
            .all(|s| got.iter().any(|a| &a.body.subject == s))
            .then_some(())
    })
    .await;
    assert!(
        delivered.is_some(),
        "after the restart, the receiver got {:?}",
        alerts_in(&bodies)
            .iter()
            .map(|a| a.body.subject.clone())
            .collect::<Vec<_>>()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = alerts_in(&bodies);
    for s in &subjects {
        assert_eq!(
            got.iter().filter(|a| &a.body.subject == s).count(),
            1,
            "{s} once"
        );
    }
    let seqs: Vec<u64> = got.iter().map(|a| a.body.seq).collect();
    let mut sorted = seqs.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(seqs, sorted, "in order, none twice");
    let (_, s) = get_json(api, "/api/v1/node").await;
    assert_eq!(s["outputs"][0]["state"], "ok", "{}", s["outputs"]);
    drop(listeners);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn local_outputs_skip_peers_alerts_and_any_forwards_them() {
    let (dirs, admitted) = common::keyed_dirs(2);
    let file = |i: usize| dirs[i].path().join("alerts.jsonl");
    let output = |i: usize, origin: &str| OutputSection {
        name: "archive".into(),
        kind: "file".into(),
        path: file(i).display().to_string(),
        origin: origin.into(),
        rules: vec!["port_scan_vertical".into()],
        ..OutputSection::default()
    };
    let mut config = common::voter_config(dirs[0].path(), &admitted, None);
    config.outputs = vec![output(0, "any")];
    let a = Node::start(config).await.expect("a starts");
    let port = common::mesh_port(&a).await;
    let mut config = common::voter_config(dirs[1].path(), &admitted, Some(port));
    config.outputs = vec![output(1, "local")];
    let b = Node::start(config).await.expect("b starts");
    let ids = |i: usize| -> Vec<String> {
        lines(&file(i))
            .iter()
            .filter_map(|l| Alert::decode(l.as_bytes()).ok().map(|a| a.id))
            .collect()
    };
    // b's alert reaches a by gossip; a's "any" output writes it.
    let from_b = common::raise(&b, Ipv4Addr::new(10, 4, 0, 2)).await;
    let forwarded = eventually(Duration::from_secs(30), || async {
        ids(0).contains(&from_b.id).then_some(())
    })
    .await;
    assert!(forwarded.is_some(), "a's file: {:?}", ids(0));
    // a's alert reaches b, whose "local" output leaves it out.
    let mut on_b = b.subscribe_alerts();
    let from_a = common::raise(&a, Ipv4Addr::new(10, 4, 0, 1)).await;
    tokio::time::timeout(Duration::from_secs(30), async {
        while on_b.recv().await.map(|x| x.id) != Ok(from_a.id.clone()) {}
    })
    .await
    .expect("b receives a's alert");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        ids(1),
        std::slice::from_ref(&from_b.id),
        "b writes only its own alert"
    );
    assert_eq!(ids(0), [from_b.id.clone(), from_a.id.clone()]);
    b.shutdown().await;
    a.shutdown().await;
}

#[test]
fn a_bad_output_is_refused_at_start_with_its_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("bad.toml");
    std::fs::write(
        &config,
        "[[outputs]]\nname = \"siem\"\nkind = \"syslog\"\naddress = \"nowhere\"\ntransport = \"sctp\"\nurl = \"http://x/\"\n",
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_amoskys"))
        .args(["config", "check"])
        .arg(&config)
        .output()
        .expect("amoskys config check runs");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    for key in [
        "outputs[0].address",
        "outputs[0].transport",
        "outputs[0].url",
    ] {
        assert!(text.contains(key), "{key} named in:\n{text}");
    }
    // A misspelt key is named too.
    let typo = dir.path().join("typo.toml");
    std::fs::write(
        &typo,
        "[[outputs]]\nname = \"x\"\nkind = \"file\"\npaht = \"/tmp/a\"\n",
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_amoskys"))
        .args(["config", "check"])
        .arg(&typo)
        .output()
        .expect("amoskys config check runs");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && text.contains("outputs[0].paht: unknown key"),
        "{text}"
    );
    let run = Command::new(env!("CARGO_BIN_EXE_amoskys"))
        .args(["run", "--api-listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("AMOSKYS_CONFIG", "")
        .output()
        .expect("amoskys run runs");
    let text = String::from_utf8_lossy(&run.stderr);
    assert!(
        !run.status.success() && text.contains("outputs[0].transport"),
        "{text}"
    );
}
