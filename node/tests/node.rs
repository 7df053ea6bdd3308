//! A real node on loopback: HTTP endpoints, procfs events of a spawned
//! child, restart with the same identity, locked data dir, and the binary's
//! `status` and graceful shutdown.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use amoskys_node::{Node, NodeError};
use common::{eventually, get, get_json, test_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_of_a_running_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(test_config(dir.path()))
        .await
        .expect("node starts");
    let addr = node.api_addr();
    assert!(addr.ip().is_loopback());

    let (status, body) = get_json(addr, "/healthz").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    assert_eq!(body["id"], node.identity().peer_id().to_string());

    let (status, info) = get_json(addr, "/api/v1/node").await;
    assert_eq!(status, 200);
    assert_eq!(info["id"], node.identity().peer_id().to_string());
    assert_eq!(info["version"], amoskys_node::VERSION);
    assert!(info["uptime_secs"].is_u64());
    assert!(info["peers"].as_array().is_some_and(|p| p.is_empty()));
    let procfs = &info["sensors"][0];
    assert_eq!(
        (procfs["name"].as_str(), procfs["state"].as_str()),
        (Some("procfs"), Some("healthy"))
    );

    let (status, metrics) = get(addr, "/metrics").await;
    assert_eq!(status, 200);
    for needle in [
        "amoskys_node_uptime_seconds ",
        "amoskys_sensor_events_total{sensor=\"procfs\"}",
        "amoskys_sensor_dropped_events_total{sensor=\"procfs\"} 0",
        "amoskys_sensor_healthy{sensor=\"procfs\"} 1",
        "amoskys_store_events_written_total",
        "# EOF",
    ] {
        assert!(
            metrics.contains(needle),
            "metrics lack {needle:?}:\n{metrics}"
        );
    }

    let (status, body) = get_json(addr, "/api/v1/events?kind=flows").await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("kind: unknown event class")),
        "{body}"
    );
    let (status, body) = get_json(addr, "/api/v1/events?limit=abc").await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("limit: ")),
        "{body}"
    );
    let (status, _) = get(addr, "/api/v1/nope").await;
    assert_eq!(status, 404);

    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_process_events_are_stored_and_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(test_config(dir.path()))
        .await
        .expect("node starts");
    let addr = node.api_addr();
    let me = std::process::id();
    let mut child = tokio::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .expect("spawn");
    let pid = child.id().expect("pid");

    let find = |activity: &'static str| async move {
        let (_, body) = get_json(
            addr,
            "/api/v1/events?kind=process_activity&since=5m&limit=10000",
        )
        .await;
        body["events"]
            .as_array()?
            .iter()
            // The procfs sensor's own events (eBPF reports the exec too).
            .find(|e| {
                e["sensor"] == "procfs" && e["process"]["pid"] == pid && e["activity"] == activity
            })
            .cloned()
    };
    let launch = eventually(Duration::from_secs(10), || find("launch"))
        .await
        .expect("launch event served");
    assert_eq!(launch["class"], "process_activity");
    assert_eq!(launch["process"]["ppid"], me);
    assert_eq!(
        launch["process"]["cmdline"],
        serde_json::json!(["sleep", "30"])
    );
    assert_eq!(launch["lineage"][0]["pid"], me);
    assert_eq!(launch["host"], node.identity().peer_id().to_string());

    child.kill().await.expect("kill");
    if eventually(Duration::from_secs(10), || find("terminate"))
        .await
        .is_none()
    {
        let (_, info) = get_json(addr, "/api/v1/node").await;
        let (_, ev) = get_json(addr, "/api/v1/events?kind=process_activity&limit=30").await;
        panic!("no terminate event for {pid}\nnode: {info}\nlast events: {ev}");
    }

    let id = node.identity().peer_id();
    let stored = node.store().events_written();
    node.shutdown().await;

    // Same data dir: same identity, events kept.
    let node = Node::start(test_config(dir.path()))
        .await
        .expect("restarts");
    assert_eq!(node.identity().peer_id(), id);
    assert!(node.store().events_written() >= stored);
    let (_, info) = get_json(node.api_addr(), "/api/v1/node").await;
    assert!(info["events_stored"].as_u64() >= Some(stored));

    // A second node on the same data dir is refused with a clear error.
    let err = Node::start(test_config(dir.path()))
        .await
        .expect_err("locked");
    assert!(matches!(err, NodeError::Storage(_)), "{err}");
    assert!(
        err.to_string().contains("locked by another running node"),
        "{err}"
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_snmp_device_shows_in_status_and_metrics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("free port")
        .port();
    let mut config = test_config(dir.path());
    config.sensors.snmp.interval_ms = 200;
    config.sensors.snmp.timeout_ms = 100;
    config.sensors.snmp.devices = vec![amoskys_node::config::SnmpDeviceSection {
        name: "dead-switch".into(),
        address: format!("127.0.0.1:{port}"),
        community: "public".into(),
        ..Default::default()
    }];
    let node = Node::start(config).await.expect("node starts");
    let addr = node.api_addr();
    let device = eventually(Duration::from_secs(10), || async {
        let (_, info) = get_json(addr, "/api/v1/node").await;
        let d = info["snmp_devices"][0].clone();
        (d["state"] == "unreachable").then_some(d)
    })
    .await
    .expect("device marked unreachable");
    assert!(
        device["message"]
            .as_str()
            .is_some_and(|m| m.contains("no answer")),
        "{device}"
    );
    let (_, info) = get_json(addr, "/api/v1/node").await;
    let snmp = info["sensors"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "snmp"))
        .cloned();
    assert_eq!(
        snmp.map(|s| s["state"].clone()),
        Some(serde_json::json!("degraded"))
    );
    let (_, metrics) = get(addr, "/metrics").await;
    assert!(
        metrics.contains("amoskys_snmp_device_up{device=\"dead-switch\",state=\"unreachable\"} 0"),
        "{metrics}"
    );
    node.shutdown().await;
}

/// Starts `amoskys run` (optionally behind a wrapper such as setpriv) with
/// JSON logs and returns the process, its remaining log lines (read on a
/// thread of their own, so the node never blocks on a full pipe) and its API.
fn spawn_node(
    wrapper: &[&str],
    data_dir: &std::path::Path,
) -> (KillOnDrop, std::sync::mpsc::Receiver<String>, String) {
    let bin = env!("CARGO_BIN_EXE_amoskys");
    let mut cmd = match wrapper.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    let mut node = KillOnDrop(
        cmd.args([
            "run",
            "--log-format",
            "json",
            "--api-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(data_dir)
        .args(["--set", "mesh.listen=[\"127.0.0.1:0\"]"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn node"),
    );
    let stderr = node.0.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut api = None;
    while api.is_none() && Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        let Ok(log) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if log["message"] == "node started" {
            api = log["api"].as_str().map(str::to_owned);
        }
    }
    let api = api.expect("node logged its API address");
    let (tx, rest) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (node, rest, api)
}

#[test]
fn refused_sensors_are_unhealthy_and_the_node_runs_on() {
    let is_root = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    if !is_root {
        eprintln!("SKIPPED refused-sensor test: needs root to drop capabilities with setpriv");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    // Root without any capability: BPF and AF_PACKET are refused.
    let (_node, _lines, api) = spawn_node(
        &[
            "setpriv",
            "--bounding-set",
            "-all",
            "--inh-caps",
            "-all",
            "--",
        ],
        dir.path(),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let addr: std::net::SocketAddr = api.parse().expect("api address");
    let (status, info) = rt.block_on(get_json(addr, "/api/v1/node"));
    assert_eq!(status, 200);
    let sensor = |name: &str| {
        info["sensors"]
            .as_array()
            .and_then(|s| s.iter().find(|x| x["name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("sensor {name} listed: {info}"))
    };
    assert_eq!(sensor("procfs")["state"], "healthy");
    for name in ["ebpf", "flows"] {
        let s = sensor(name);
        assert_eq!(s["state"], "unhealthy", "{s}");
        assert!(
            s["message"]
                .as_str()
                .is_some_and(|m| m.contains("unavailable")),
            "{s}"
        );
    }
    let (_, metrics) = rt.block_on(get(addr, "/metrics"));
    assert!(
        metrics.contains("amoskys_sensor_healthy{sensor=\"ebpf\"} 0"),
        "{metrics}"
    );
}

#[test]
fn binary_runs_reports_status_and_stops_on_sigterm() {
    let bin = env!("CARGO_BIN_EXE_amoskys");
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut node, lines, api) = spawn_node(&[], dir.path());

    let out = Command::new(bin)
        .args(["status", "--api", &api])
        .output()
        .expect("status runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("procfs") && l.contains("healthy")),
        "the sensors table has a procfs row: {text}"
    );
    assert!(
        text.lines()
            .next()
            .is_some_and(|l| l.starts_with("node      12D3KooW")),
        "{text}"
    );

    let pid = node.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let started = Instant::now();
    let status = loop {
        if let Some(s) = node.0.try_wait().expect("wait") {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "node did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "graceful exit: {status}");
    // The node has exited: its log ends, and so does this.
    let rest: Vec<String> = lines.iter().collect();
    assert!(rest.iter().any(|l| l.contains("node stopped")), "{rest:?}");

    let out = Command::new(bin)
        .args(["status", "--api", &api])
        .output()
        .expect("status runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the node API"));
}

/// Kills the node process if the test fails before stopping it.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_port_is_named_with_its_cause() {
    // Another program holds the mesh port, on TCP and UDP (QUIC).
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").expect("tcp");
    let port = tcp.local_addr().expect("addr").port();
    let _udp = std::net::UdpSocket::bind(("127.0.0.1", port)).ok();
    let dir = tempfile::tempdir().expect("tempdir");
    let listen = format!("mesh.listen=[\"127.0.0.1:{port}\"]");
    let Err(err) = Node::start(common::quiet_config(dir.path(), &[&listen])).await else {
        panic!("the node started on a taken port");
    };
    let text = err.to_string();
    assert!(
        text.contains(&port.to_string()) && text.to_lowercase().contains("in use"),
        "the address and the cause are named: {text}"
    );
    assert!(text.contains("mesh.listen"), "the setting is named: {text}");
}
