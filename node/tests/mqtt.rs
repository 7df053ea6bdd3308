//! MQTT devices in a real node: a Mosquitto broker the test starts on a
//! loopback port, readings published with `mosquitto_pub`, the node's MQTT
//! sensor, store, trainer and detector. A device's normal rate trains the
//! device model; the same device flooding at 50 times that rate raises a
//! signed `anomaly_device` alert naming it, from a window of the flood.
//! `GET /api/v1/node` and `amoskys status` show the broker. One-second
//! feature windows keep the test short.

mod common;

#[path = "../../sensors/tests/support/mosquitto.rs"]
mod mosquitto;

use std::time::Duration;

use amoskys_node::Node;
use common::{eventually, get_json};
use mosquitto::{Broker, Options, skip_reason};

const TOPIC: &str = "plant/7/telemetry";
/// Messages a second at rest, and in the flood (50×).
const RATE: u32 = 4;
const FLOOD: u32 = 50 * RATE;

/// `n` readings of a temperature that moves a little.
fn readings(n: usize, from: usize) -> Vec<String> {
    (from..from + n)
        .map(|i| format!(r#"{{"temp":{:.1},"seq":{i}}}"#, 21.0 + (i % 5) as f64 * 0.1))
        .collect()
}

async fn publish(broker: &Broker, lines: Vec<String>, per_sec: u32) {
    let publisher = broker.publisher();
    tokio::task::spawn_blocking(move || publisher.publish_lines(TOPIC, &lines, per_sec))
        .await
        .expect("publisher joins");
}

/// An alert whose window held at least 50 messages (the message feature
/// is `ln(1 + n) / ln(1 + 100000)`).
fn flood_window(alert: &amoskys_mesh::Alert) -> bool {
    let at_least = (51f64.ln() / 100_001f64.ln()) as f32;
    alert.body.evidence.iter().any(|(k, v)| {
        k == "feature.messages"
            && v.split_whitespace()
                .next()
                .and_then(|x| x.parse::<f32>().ok())
                .is_some_and(|x| x >= at_least)
    })
}

fn device_alerts(node: &Node) -> Vec<amoskys_mesh::Alert> {
    node.store()
        .alerts(None, 10_000)
        .expect("alerts")
        .into_iter()
        .filter(|a| a.body.rule == "anomaly_device")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_flooding_at_fifty_times_its_rate_raises_an_anomaly_alert() {
    if let Some(why) = skip_reason() {
        eprintln!("SKIPPED mqtt node test: {why}");
        return;
    }
    let broker = Broker::start(Options::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let config = common::quiet_config(
        dir.path(),
        &[
            "sensors.procfs.enabled=false",
            "learning.window_secs=1",
            "learning.min_windows=30",
            "learning.retrain_hours=0",
            // A loaded publisher can bunch a normal second's messages into
            // one window that alerts; with the default 300 s suppression
            // that alert would hide the flood's.
            "detection.suppress_secs=1",
            &format!("sensors.mqtt.broker={}", broker.address()),
            r#"sensors.mqtt.topics=[{filter="plant/+/telemetry", device="plant-{2}", metrics=["temp=/temp"]}]"#,
        ],
    );
    let node = Node::start(config).await.expect("node starts");
    let addr = node.api_addr();
    eventually(Duration::from_secs(10), || async {
        let (_, body) = get_json(addr, "/api/v1/node").await;
        (body["mqtt"]["state"] == "connected").then_some(())
    })
    .await
    .expect("the sensor connects to the broker");

    // 40 s at the normal rate, then a device model trained on it.
    publish(&broker, readings(40 * RATE as usize, 0), RATE).await;
    let (status, _) = common::send(addr, reqwest::Method::POST, "/api/v1/models/train", None).await;
    assert!(status == 202 || status == 409, "{status}");
    let model = eventually(Duration::from_secs(60), || async {
        let (_, body) = get_json(addr, "/api/v1/models").await;
        body["models"]
            .as_array()?
            .iter()
            .find(|m| m["entity"] == "device")
            .cloned()
    })
    .await
    .expect("a device model trains on the normal rate");
    assert_eq!(model["schema"], "device@2");

    // The flood: 50 times the rate for 3 s. (One-second windows of a
    // publisher on a loaded machine can also bunch a normal second's
    // messages now and then; the alert looked for is the flood's.)
    publish(&broker, readings(3 * FLOOD as usize, 2000), FLOOD).await;
    let alert = eventually(Duration::from_secs(15), || async {
        device_alerts(&node).into_iter().find(flood_window)
    })
    .await
    .expect("the flood raises an anomaly alert");
    alert.verify().expect("signed by the node");
    assert_eq!(alert.body.subject, "device:plant-7");

    // The broker in the status, as the API and the CLI show it.
    let (_, body) = get_json(addr, "/api/v1/node").await;
    assert!(
        body["mqtt"]["messages"].as_u64() >= Some(u64::from(60 * RATE)),
        "{body}"
    );
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_amoskys"))
            .args(["status", "--api", &addr.to_string()])
            .output()
            .expect("runs")
    })
    .await
    .expect("joins");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("BROKER") && text.contains("connected"),
        "{text}"
    );
    node.shutdown().await;
}
