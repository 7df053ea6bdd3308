//! The MQTT sensor against a real Mosquitto broker that the test starts on a
//! 127.0.0.1 port: readings published with `mosquitto_pub` become
//! `device_metrics` events over MQTT 3.1.1 and 5; malformed and oversized
//! payloads are counted and dropped with their topic; a broker restart is
//! survived; a password and TLS are used, and a wrong password is reported.

#[path = "support/mosquitto.rs"]
mod mosquitto;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use amoskys_sensors::mqtt::{BrokerState, MqttConfig, MqttSensor, Protocol, TopicMapping};
use amoskys_sensors::{Event, EventBody, EventSink, HealthState, Sensor, event_channel};
use mosquitto::{Broker, Options, eventually, skip_reason};
use tokio::sync::mpsc::Receiver;

const WAIT: Duration = Duration::from_secs(10);

fn config(broker: &Broker, protocol: Protocol) -> MqttConfig {
    MqttConfig {
        host: "test-host".into(),
        broker: broker.address(),
        protocol,
        client_id: format!("amoskys-test-{}", broker.port),
        credentials: None,
        tls: None,
        keep_alive_secs: 5,
        qos: 1,
        max_payload_bytes: 256,
        max_backoff: Duration::from_millis(500),
        topics: vec![TopicMapping {
            filter: "plant/+/telemetry".into(),
            device: "plant-{2}".into(),
            metrics: BTreeMap::from([
                ("temp".into(), "/env/temp".into()),
                ("on".into(), "/on".into()),
            ]),
        }],
    }
}

fn start(config: MqttConfig) -> (MqttSensor, Receiver<Event>) {
    let mut sensor = MqttSensor::new(config);
    let (tx, rx) = event_channel(1024);
    sensor
        .start(EventSink::new(tx, sensor.stats()))
        .expect("starts");
    (sensor, rx)
}

/// The next event within `limit`.
fn next(rx: &mut Receiver<Event>, limit: Duration) -> Option<Event> {
    let mut event = None;
    eventually(limit, || {
        event = rx.try_recv().ok();
        event.is_some()
    });
    event
}

fn connected(sensor: &MqttSensor, connects: u64) -> bool {
    let status = sensor.status();
    eventually(WAIT, || {
        let s = status.lock().expect("status");
        s.state == BrokerState::Connected && s.connects >= connects
    })
}

/// Publishes until one event arrives: a subscription may take effect a
/// moment after the CONNACK.
fn first_reading(broker: &Broker, rx: &mut Receiver<Event>, topic: &str, payload: &str) -> Event {
    for _ in 0..40 {
        broker.publish(topic, payload);
        if let Some(e) = next(rx, Duration::from_millis(250)) {
            return e;
        }
    }
    panic!("no event for {topic} within 10 s");
}

fn metrics(e: &Event) -> &amoskys_sensors::DeviceMetrics {
    match &e.body {
        EventBody::DeviceMetrics(d) => d,
        other => panic!("expected device metrics, got {other:?}"),
    }
}

#[test]
fn readings_become_events_over_3_1_1_and_5_and_bad_payloads_are_counted() {
    if let Some(why) = skip_reason() {
        eprintln!("SKIPPED mqtt sensor test: {why}");
        return;
    }
    for protocol in [Protocol::V311, Protocol::V5] {
        let broker = Broker::start(Options::default());
        let (mut sensor, mut rx) = start(config(&broker, protocol));
        assert!(connected(&sensor, 1), "{protocol:?}: not connected");
        assert_eq!(sensor.stats().health().state, HealthState::Healthy);

        let payload = r#"{"env":{"temp":21.5},"on":true}"#;
        let event = first_reading(&broker, &mut rx, "plant/7/telemetry", payload);
        while next(&mut rx, Duration::from_millis(300)).is_some() {}
        let d = metrics(&event);
        assert_eq!(d.device, "plant-7", "{protocol:?}");
        assert_eq!(d.metrics["temp"], 21.5);
        assert_eq!(d.metrics["on"], 1.0);
        assert_eq!(d.payload_bytes, Some(payload.len() as u64));
        assert_eq!(event.sensor, "mqtt");

        // Not JSON, no mapped metric, a string where a number belongs, and
        // an oversized payload: each dropped and counted with its topic.
        broker.publish("plant/8/telemetry", "{not json");
        broker.publish("plant/9/telemetry", r#"{"other":1}"#);
        broker.publish("plant/10/telemetry", r#"{"env":{"temp":"hot"}}"#);
        broker.publish(
            "plant/11/telemetry",
            &format!(r#"{{"on":1,"pad":"{}"}}"#, "x".repeat(400)),
        );
        broker.publish("plant/12/telemetry", r#"{"env":{"temp":19}}"#);
        let good = next(&mut rx, WAIT).expect("the good reading after the bad ones");
        assert_eq!(
            metrics(&good).device,
            "plant-12",
            "{protocol:?}: bad payloads made events"
        );
        let status = sensor.status();
        assert!(eventually(WAIT, || status.lock().expect("s").oversized == 1));
        let s = status.lock().expect("status").clone();
        assert_eq!(s.malformed, 3, "{s:?}");
        assert!(
            s.last_dropped.starts_with("plant/11/telemetry: payload of"),
            "{s:?}"
        );
        assert!(sensor.stats().counts().2 >= 4, "errors counted");
        sensor.stop();
    }
}

#[test]
fn a_broker_restart_is_survived() {
    if let Some(why) = skip_reason() {
        eprintln!("SKIPPED mqtt restart test: {why}");
        return;
    }
    let mut broker = Broker::start(Options::default());
    let (mut sensor, mut rx) = start(config(&broker, Protocol::V311));
    assert!(connected(&sensor, 1));
    first_reading(&broker, &mut rx, "plant/1/telemetry", r#"{"on":1}"#);

    broker.stop();
    let status = sensor.status();
    assert!(
        eventually(WAIT, || status.lock().expect("s").state
            != BrokerState::Connected),
        "the lost broker is noticed"
    );
    assert_eq!(sensor.stats().health().state, HealthState::Degraded);
    broker.restart();
    assert!(
        connected(&sensor, 2),
        "reconnected: {:?}",
        status.lock().expect("s")
    );
    let e = first_reading(&broker, &mut rx, "plant/2/telemetry", r#"{"on":0}"#);
    assert_eq!(metrics(&e).device, "plant-2");
    assert_eq!(sensor.stats().health().state, HealthState::Healthy);
    sensor.stop();
}

#[test]
fn a_password_and_tls_are_used_and_a_wrong_password_is_reported() {
    if let Some(why) = skip_reason() {
        eprintln!("SKIPPED mqtt credentials test: {why}");
        return;
    }
    let login = ("sensor".to_string(), "s3cret-pass".to_string());
    let broker = Broker::start(Options {
        login: Some(login.clone()),
        tls: true,
    });
    let pem = std::fs::read(broker.ca()).expect("ca");
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
        roots.add(cert.expect("pem")).expect("root");
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tls = Some(Arc::new(tls));

    let (mut sensor, mut rx) = start(MqttConfig {
        credentials: Some(login),
        tls: tls.clone(),
        ..config(&broker, Protocol::V5)
    });
    assert!(
        connected(&sensor, 1),
        "{:?}",
        sensor.status().lock().expect("s")
    );
    first_reading(&broker, &mut rx, "plant/3/telemetry", r#"{"on":1}"#);
    sensor.stop();

    let (mut wrong, _rx) = start(MqttConfig {
        client_id: "amoskys-wrong".into(),
        credentials: Some(("sensor".into(), "not-the-password".into())),
        tls,
        ..config(&broker, Protocol::V311)
    });
    let status = wrong.status();
    assert!(
        eventually(WAIT, || {
            let s = status.lock().expect("s");
            s.state != BrokerState::Connected && s.message.contains("refused")
        }),
        "{:?}",
        status.lock().expect("s")
    );
    assert_eq!(wrong.stats().health().state, HealthState::Degraded);
    assert_eq!(status.lock().expect("s").connects, 0);
    wrong.stop();
}
