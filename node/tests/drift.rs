//! Drift of the anomaly models in a real node (real RocksDB, the trainer
//! thread, the signed-alert path): a node trained on a baseline of flows
//! and then fed shifted traffic (twice the connections, new services)
//! drifts once, raises one `model_drift` alert, shows it in `models list`
//! and retrains; a node fed more of the same baseline does not drift.
//! One-second feature windows keep the test short; the live traffic is fed
//! in real time, one window a second.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use amoskys_node::Node;
use amoskys_node::storage::Store;
use amoskys_sensors::event::{FlowCounters, FlowEnd, FlowRecord, TcpFlagCounts, Transport};
use amoskys_sensors::{Event, EventBody, now_ns};
use common::{eventually, get_json};

const S: u64 = 1_000_000_000;
const MS: u64 = 1_000_000;
/// Ports of the baseline's services, and the new ones of the shifted site.
const OLD_PORTS: [u16; 2] = [443, 80];
const NEW_PORTS: [u16; 4] = [8080, 8443, 9000, 9200];

fn flow(t: u64, src: u8, port: u16) -> Event {
    Event::new(
        t,
        "h",
        "flows",
        EventBody::NetworkActivity(FlowRecord {
            interface: "eth0".into(),
            transport: Transport::Tcp,
            src: format!("10.0.0.{src}").parse().expect("ip"),
            src_port: 40_000,
            dst: "10.0.1.1".parse().expect("ip"),
            dst_port: port,
            first_ns: t,
            last_ns: t + 10 * MS,
            forward: FlowCounters {
                packets: 6,
                bytes: 900 + u64::from(src) * 10,
            },
            reverse: FlowCounters {
                packets: 5,
                bytes: 4000,
            },
            tcp_flags: TcpFlagCounts {
                syn: 1,
                syn_ack: 1,
                ..Default::default()
            },
            end: FlowEnd::End,
        }),
    )
}

/// The one-second window starting at `start` (a whole second): eight
/// clients with 1 to 3 web connections each; shifted, twice as many, half
/// of them to new services.
fn window(start: u64, shifted: bool) -> Vec<Event> {
    let w = start / S;
    let mut out = Vec::new();
    for src in 1..=8u8 {
        let n = 1 + (w + u64::from(src)) % 3;
        let n = if shifted { 2 * n } else { n };
        for i in 0..n {
            let t = start + u64::from(src) * 50 * MS + i * 10 * MS;
            let port = if shifted && i % 2 == 1 {
                NEW_PORTS[((w + i) % 4) as usize]
            } else {
                OLD_PORTS[(i % 2) as usize]
            };
            out.push(flow(t, src, port));
        }
    }
    out
}

/// Starts a node whose store holds `seconds` of baseline windows ending
/// an hour ago, and waits for its source model.
async fn trained_node(dir: &std::path::Path, seconds: u64) -> (Node, serde_json::Value) {
    let first = (now_ns() - 3600 * S - seconds * S) / S * S;
    {
        let store = Store::open(&dir.join("db")).expect("store");
        let events: Vec<Event> = (0..seconds)
            .flat_map(|w| window(first + w * S, false))
            .collect();
        store.put_events(&events).expect("baseline events");
    }
    let config = common::quiet_config(
        dir,
        &[
            "learning.window_secs=1",
            "learning.model=tails",
            "learning.retrain_hours=0",
            "sensors.procfs.enabled=false",
        ],
    );
    let node = Node::start(config).await.expect("node starts");
    let model = eventually(Duration::from_secs(60), || async {
        source_model(node.api_addr()).await
    })
    .await
    .expect("the start-up run trains a source model");
    (node, model)
}

async fn source_model(addr: SocketAddr) -> Option<serde_json::Value> {
    let (_, body) = get_json(addr, "/api/v1/models").await;
    body["models"]
        .as_array()?
        .iter()
        .find(|m| m["entity"] == "source")
        .cloned()
}

async fn source_drift(addr: SocketAddr) -> serde_json::Value {
    let (_, body) = get_json(addr, "/api/v1/models").await;
    body["drift"]
        .as_array()
        .and_then(|d| d.iter().find(|k| k["entity"] == "source").cloned())
        .unwrap_or_default()
}

fn drift_alerts(node: &Node) -> Vec<amoskys_mesh::Alert> {
    let alerts = node.store().alerts(None, 10_000).expect("alerts");
    alerts
        .into_iter()
        .filter(|a| a.body.rule == "model_drift")
        .collect()
}

/// Feeds one window a second, in real time, for at most `seconds` or
/// until `done` says so.
async fn feed<F, Fut>(node: &Node, seconds: u64, shifted: bool, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..seconds {
        let now = now_ns();
        let start = (now / S + 1) * S;
        tokio::time::sleep(Duration::from_nanos(start + 20 * MS - now)).await;
        let events = window(start, shifted);
        let n = events.len();
        assert_eq!(node.inject(events), n, "the event queue takes a window");
        if done().await {
            return;
        }
    }
}

async fn shifted_site() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (node, before) = trained_node(dir.path(), 600).await;
    let addr = node.api_addr();
    feed(&node, 90, true, || async {
        !drift_alerts(&node).is_empty()
    })
    .await;

    // One episode, one alert, then a retrained model.
    let after = eventually(Duration::from_secs(60), || async {
        source_model(addr)
            .await
            .filter(|m| m["sha256"] != before["sha256"])
    })
    .await;
    let Some(after) = after else {
        panic!("no retraining after drift: {}", source_drift(addr).await);
    };
    assert!(after["trained_at_ns"].as_u64() > before["trained_at_ns"].as_u64());
    let alerts = drift_alerts(&node);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let alert = &alerts[0];
    alert.verify().expect("signed");
    assert_eq!(alert.body.severity, "low");
    assert_eq!(alert.body.subject, "model:source");
    let evidence = |k: &str| {
        alert
            .body
            .evidence
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let psi: f64 = evidence("psi").parse().expect("psi");
    let windows: usize = evidence("windows").parse().expect("windows");
    assert!(psi >= 0.25, "{:?}", alert.body.evidence);
    assert_eq!(evidence("threshold"), "0.25");
    assert!(windows >= 200, "{windows}");
    assert_eq!(evidence("action"), "retrain");
    eprintln!(
        "shifted site: psi {psi:.3} over {windows} windows; retrained on {} rows",
        after["train_rows"]
    );

    // The models list shows the episode, ended by the new model.
    let drift = source_drift(addr).await;
    assert_eq!(drift["episodes"], 1, "{drift}");
    assert_eq!(drift["model_sha256"], after["sha256"], "{drift}");
    let last = &drift["last_episode"];
    assert_eq!(last["action"], "retrain", "{drift}");
    assert!(
        last["ended_by"]
            .as_str()
            .is_some_and(|e| e.starts_with("model replaced")),
        "{drift}"
    );
    let api = addr.to_string();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_amoskys"))
            .args(["models", "list", "--api", &api])
            .output()
            .expect("runs")
    })
    .await
    .expect("joins");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("drift (live scores"), "{text}");
    assert!(text.contains("model replaced"), "{text}");
    node.shutdown().await;
}

async fn stable_site() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (node, before) = trained_node(dir.path(), 600).await;
    let addr = node.api_addr();
    feed(&node, 40, false, || async { false }).await;
    // Let the last windows be scored.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let drift = source_drift(addr).await;
    let psi = drift["statistic"]
        .as_f64()
        .unwrap_or_else(|| panic!("{drift}"));
    eprintln!(
        "stable site: psi {psi:.3} over {} windows",
        drift["windows"]
    );
    assert!(drift["windows"].as_u64() >= Some(200), "{drift}");
    assert!(psi < 0.1, "{drift}");
    assert_eq!(drift["episodes"], 0, "{drift}");
    assert!(drift_alerts(&node).is_empty());
    assert_eq!(source_model(addr).await, Some(before), "no retraining");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shifted_site_drifts_and_retrains_and_a_stable_one_does_not() {
    tokio::join!(shifted_site(), stable_site());
}
