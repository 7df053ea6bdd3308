//! A federated round between three real nodes: each trains on its own
//! device windows and sends only its update to the aggregator; the combined
//! model is committed to the registry and every node fetches it by hash
//! and puts it in use. Every message the nodes send is recorded and checked:
//! only the allowed kinds, and nothing of the events. A round below its
//! minimum is abandoned; the model survives a restart.

mod common;

use std::time::Duration;

use amoskys_consensus::JoinReply;
use amoskys_consensus::network::{RaftReply, RaftRequest};
use amoskys_learning::anomaly::AnomalyModel;
use amoskys_learning::federated::SiteUpdate;
use amoskys_mesh::{Alert, Service, Tapped};
use amoskys_node::workspace::envelope_kind;
use amoskys_node::{Hooks, Node};
use amoskys_sensors::{DeviceMetrics, Event, EventBody, InterfaceRates};
use common::{eventually, get_json, send};
use reqwest::Method;
use tokio::sync::mpsc;

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
                    ..Default::default()
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
    let (tap, mut tapped) = mpsc::unbounded_channel();
    let hooks = || Hooks {
        tap: Some(tap.clone()),
        ..Hooks::default()
    };
    let a = Node::start_with(common::quiet_config(dirs[0].path(), &base), hooks())
        .await
        .expect("a starts");
    let bootstrap = format!(
        "mesh.bootstrap=[\"127.0.0.1:{}\"]",
        common::mesh_port(&a).await
    );
    let mut rest = base.to_vec();
    rest.push(&bootstrap);
    let b = Node::start_with(common::quiet_config(dirs[1].path(), &rest), hooks())
        .await
        .expect("b starts");
    let c = Node::start_with(common::quiet_config(dirs[2].path(), &rest), hooks())
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

    // What crossed: only the allowed kinds, and nothing of the events.
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    while let Ok(m) = tapped.try_recv() {
        let (kind, bytes) = check_message(&m);
        *seen.entry(kind).or_default() += 1;
        for secret in [
            "dev-0-0",
            "dev-1-1",
            "dev-2-0",
            "192.0.2.1",
            "device_metrics",
            "eth0",
        ] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "a message carries {secret:?}: {m:?}"
            );
        }
    }
    for kind in ["raft request", "model request", "model response"] {
        assert!(seen.contains_key(kind), "no {kind} recorded: {seen:?}");
    }
    eprintln!("messages sent during the test, by kind: {seen:?}");

    // A round below its minimum is abandoned, with the reason recorded.
    let (_, body) = send(
        a.api_addr(),
        Method::POST,
        "/api/v1/learn/rounds",
        Some(r#"{"kind":"device","epochs":1,"deadline_secs":2,"min_participants":4}"#.into()),
    )
    .await;
    let id = body["round"].as_u64().expect("round id");
    let abandoned = eventually(Duration::from_secs(30), || async {
        let (_, v) = get_json(b.api_addr(), "/api/v1/learn/rounds").await;
        let r = v["rounds"]
            .as_array()?
            .iter()
            .find(|r| r["id"] == id)?
            .clone();
        (r["status"] == "abandoned").then_some(r)
    })
    .await
    .expect("abandoned");
    assert!(
        abandoned["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("4 needed"),
        "{abandoned}"
    );

    // The aggregators counted both ends and the updates' bytes each way.
    let counted = eventually(Duration::from_secs(10), || async {
        let mut sums = [0.0; 4];
        for n in nodes {
            let (_, text) = common::get(n.api_addr(), "/metrics").await;
            for (sum, series) in sums.iter_mut().zip([
                "amoskys_federation_rounds_total{kind=\"model\",outcome=\"committed\"} ",
                "amoskys_federation_rounds_total{kind=\"model\",outcome=\"abandoned\"} ",
                "amoskys_federation_update_bytes_total{direction=\"sent\"} ",
                "amoskys_federation_update_bytes_total{direction=\"received\"} ",
            ]) {
                *sum += text
                    .lines()
                    .find_map(|l| l.strip_prefix(series)?.trim().parse::<f64>().ok())
                    .unwrap_or(0.0);
            }
        }
        (sums[0] == 1.0 && sums[1] == 1.0).then_some(sums)
    })
    .await
    .expect("one committed and one abandoned model round counted");
    assert!(counted[2] > 0.0 && counted[3] > 0.0, "{counted:?}");

    // The model version survives a restart.
    c.shutdown().await;
    let c = Node::start(common::quiet_config(dirs[2].path(), &rest))
        .await
        .expect("c restarts");
    // The registry's version is put back in use once the Raft log is
    // applied again (a locally stored model may serve until then).
    let in_use = eventually(Duration::from_secs(15), || async {
        let (_, v) = get_json(c.api_addr(), "/api/v1/models").await;
        let device = v["models"]
            .as_array()
            .and_then(|m| m.iter().find(|x| x["entity"] == "device").cloned())?;
        (device["sha256"] == sha.as_str()).then_some(v)
    })
    .await;
    let v = in_use.expect("the registry's device model is in use after a restart");
    assert!(
        v["registry"]["versions"]
            .as_array()
            .is_some_and(|x| !x.is_empty())
    );

    for n in [c, b, a] {
        n.shutdown().await;
    }
}

/// The kind of a recorded message and its bytes, after checking that it
/// decodes as one of the kinds allowed between nodes.
fn check_message(m: &Tapped) -> (String, Vec<u8>) {
    match m {
        Tapped::Gossip(b) => {
            Alert::parse(b).expect("gossip carries only alerts");
            ("alert".into(), b.clone())
        }
        Tapped::SyncRequest(h) => ("sync request".into(), format!("{h:?}").into_bytes()),
        Tapped::SyncResponse(alerts) => {
            for a in alerts {
                Alert::parse(a).expect("sync carries only alerts");
            }
            ("sync response".into(), alerts.concat())
        }
        Tapped::Request { service, body } => {
            match service {
                Service::Raft => {
                    serde_json::from_slice::<RaftRequest>(body).expect("a Raft request");
                }
                Service::Join => {
                    serde_json::from_slice::<serde_json::Value>(body).expect("a join request");
                }
                Service::Model => {
                    let (sig, update) = body.split_at(64);
                    assert_eq!(sig.len(), 64);
                    let u: SiteUpdate = serde_json::from_slice(update).expect("a model update");
                    assert!(u.samples > 0);
                }
                Service::Blob => {
                    assert_eq!(body.len(), 64, "a blob request is a hash");
                }
                Service::Workspace => {
                    envelope_kind(body).expect("a workspace sync envelope");
                }
                Service::View => assert!(body.is_empty(), "a view request is the service alone"),
            }
            (format!("{} request", service.as_str()), body.clone())
        }
        Tapped::Response { service, result } => {
            let body = match result {
                Ok(b) => b.clone(),
                Err(reason) => {
                    return (
                        format!("{} refusal", service.as_str()),
                        reason.clone().into_bytes(),
                    );
                }
            };
            match service {
                Service::Raft => {
                    serde_json::from_slice::<RaftReply>(&body).expect("a Raft reply");
                }
                Service::Join => {
                    serde_json::from_slice::<JoinReply>(&body).expect("a join reply");
                }
                Service::Model => assert_eq!(body, b"accepted"),
                Service::Blob => {
                    AnomalyModel::from_bytes(&body).expect("a blob is a model");
                }
                // Empty: nothing to answer.
                Service::Workspace => {
                    assert!(body.is_empty() || envelope_kind(&body).is_some());
                }
                // Names and peer ids: mesh metadata, no telemetry.
                Service::View => {
                    amoskys_mesh::net::PeerView::decode(&body).expect("a peer view");
                }
            }
            (format!("{} response", service.as_str()), body)
        }
    }
}
