//! A federated round between three real nodes: each trains on its own
//! device windows and sends only its update to the aggregator; the combined
//! model is committed to the registry and every node fetches it by hash
//! and puts it in use. A bad round request is refused with a reason.

mod common;

use std::time::Duration;

use amoskys_node::Node;
use amoskys_sensors::{DeviceMetrics, Event, EventBody, InterfaceRates};
use common::{eventually, get_json, send};
use reqwest::Method;

/// Device polls once a second for the last `secs` seconds, each node with
/// its own devices and load level.
fn device_events(node: usize, secs: u64) -> Vec<Event> {
    let now = amoskys_sensors::now_ns();
    let mut out = Vec::new();
    for t in 0..secs {
        for d in 0..2u64 {
            let wobble = ((t * 7 + d * 3 + node as u64) % 11) as f64;
            out.push(Event::new(
                now - (secs - t) * 1_000_000_000,
                "synthetic",
                "snmp",
                EventBody::DeviceMetrics(DeviceMetrics {
                    device: format!("dev-{node}-{d}"),
                    address: "192.0.2.1:161".into(),
                    uptime_ticks: (t * 100) as u32,
                    description: "switch".into(),
                    rebooted: false,
                    load: Some([0.2 + wobble / 50.0, 0.2, 0.2]),
                    cpu_percent: vec![(10.0 + wobble + node as f64) as u8],
                    memory_total_kib: Some(1_000_000),
                    memory_available_kib: Some(400_000 + (wobble as u64) * 1_000),
                    interfaces: vec![InterfaceRates {
                        index: 1,
                        name: "eth0".into(),
                        in_bytes_per_sec: Some(1_000.0 + wobble * 10.0),
                        out_bytes_per_sec: Some(800.0),
                        in_packets_per_sec: Some(10.0),
                        out_packets_per_sec: Some(9.0),
                        in_errors_per_sec: Some(0.0),
                        out_errors_per_sec: Some(0.0),
                    }],
                }),
            ));
        }
    }
    out
}

async fn voters(n: &Node) -> usize {
    let (_, v) = get_json(n.api_addr(), "/api/v1/cluster").await;
    v["cluster"]["voters"].as_array().map_or(0, Vec::len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_trains_on_every_node_and_puts_the_combined_model_in_use_everywhere() {
    let (dirs, admitted) = common::keyed_dirs(3);
    let base = [
        admitted.as_str(),
        "sensors.procfs.enabled=false",
        "learning.window_secs=1",
        "learning.min_windows=50",
        "learning.retrain_hours=0",
        "learning.epochs=2",
        "learning.members=1",
        "cluster.heartbeat_ms=100",
        "cluster.election_min_ms=400",
        "cluster.election_max_ms=800",
    ];
    let a = Node::start(common::quiet_config(dirs[0].path(), &base))
        .await
        .expect("a starts");
    let bootstrap = format!(
        "mesh.bootstrap=[\"127.0.0.1:{}\"]",
        common::mesh_port(&a).await
    );
    let mut rest = base.to_vec();
    rest.push(&bootstrap);
    let b = Node::start(common::quiet_config(dirs[1].path(), &rest))
        .await
        .expect("b starts");
    let c = Node::start(common::quiet_config(dirs[2].path(), &rest))
        .await
        .expect("c starts");
    let nodes = [&a, &b, &c];
    for n in nodes {
        assert!(
            eventually(Duration::from_secs(30), || async {
                (voters(n).await == 3).then_some(())
            })
            .await
            .is_some(),
            "a cluster of three"
        );
    }
    for (i, n) in nodes.iter().enumerate() {
        n.store()
            .put_events(&device_events(i, 300))
            .expect("events stored");
    }

    // Refused: an unknown kind, and a rule that needs more sites.
    let (status, body) = send(
        b.api_addr(),
        Method::POST,
        "/api/v1/learn/rounds",
        Some(r#"{"kind":"toaster"}"#.into()),
    )
    .await;
    assert_eq!(status, 400, "{body}");

    let (status, body) = send(
        b.api_addr(),
        Method::POST,
        "/api/v1/learn/rounds",
        Some(r#"{"kind":"device","epochs":1,"deadline_secs":30,"min_participants":3}"#.into()),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["round"].as_u64().expect("round id");

    let done = eventually(Duration::from_secs(60), || async {
        let (_, v) = get_json(a.api_addr(), "/api/v1/learn/rounds").await;
        let r = v["rounds"]
            .as_array()?
            .iter()
            .find(|r| r["id"] == id)?
            .clone();
        (r["status"] != "open").then_some(r)
    })
    .await
    .expect("the round ends");
    assert_eq!(done["status"], "done", "{done}");
    let version = done["version"].as_u64().expect("version");

    // Every node runs the registry's model, fetched and checked by hash.
    let (_, m) = get_json(a.api_addr(), "/api/v1/models").await;
    let entry = m["registry"]["versions"]
        .as_array()
        .and_then(|v| v.iter().find(|x| x["version"] == version).cloned())
        .expect("registered");
    assert_eq!(entry["round"], id);
    assert_eq!(entry["participants"].as_array().map(Vec::len), Some(3));
    assert_eq!(entry["metrics"]["updates"], 3.0);
    let sha = entry["sha256"].as_str().expect("sha").to_owned();
    for n in nodes {
        let running = eventually(Duration::from_secs(20), || async {
            let (_, v) = get_json(n.api_addr(), "/api/v1/models").await;
            v["models"]
                .as_array()?
                .iter()
                .find(|x| x["entity"] == "device")
                .map(|x| x["sha256"].as_str().unwrap_or_default().to_owned())
                .filter(|s| *s == sha)
        })
        .await;
        assert!(running.is_some(), "{} runs model {sha}", n.api_addr());
    }

    for n in [c, b, a] {
        n.shutdown().await;
    }
}
