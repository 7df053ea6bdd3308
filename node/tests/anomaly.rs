//! The anomaly models in the node: trained from events stored in a real
//! RocksDB, saved with their SHA-256 and refused when the bytes change,
//! scoring closed windows into findings, and the model API.

mod common;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use amoskys_learning::RulePolicy;
use amoskys_learning::anomaly::{ModelKind, TrainConfig};
use amoskys_learning::features::{EntityKind, FeatureExtractor};
use amoskys_learning::{Category, Subject};
use amoskys_node::Node;
use amoskys_node::config::Source;
use amoskys_node::detect::{AnomalyDetection, Detector, score_windows};
use amoskys_node::models::{LearningSettings, ModelSet, train_all};
use amoskys_node::privacy::{Addresses, Privacy};
use amoskys_node::storage::Store;
use amoskys_sensors::event::{FlowCounters, FlowEnd, FlowRecord, TcpFlagCounts, Transport};
use amoskys_sensors::{Event, EventBody, now_ns};
use common::{eventually, get_json};

const S: u64 = 1_000_000_000;
const WINDOW: u64 = 60 * S;

fn flow(t: u64, src: u8, port: u16, answered: bool) -> Event {
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
            last_ns: t + S,
            forward: FlowCounters {
                packets: 6,
                bytes: 900 + u64::from(src) * 10,
            },
            reverse: FlowCounters {
                packets: if answered { 5 } else { 0 },
                bytes: if answered { 4000 } else { 0 },
            },
            tcp_flags: TcpFlagCounts {
                syn: 1,
                syn_no_ack: 1,
                syn_ack: u32::from(answered),
                ..Default::default()
            },
            end: if answered {
                FlowEnd::End
            } else {
                FlowEnd::Idle
            },
        }),
    )
}

/// `windows` minutes of ordinary web traffic from eight clients, ending
/// before `until`.
fn baseline(until: u64, windows: u64) -> Vec<Event> {
    let first = (until - windows * WINDOW) / WINDOW * WINDOW;
    let mut out = Vec::new();
    for w in 0..windows {
        for src in 1..=8u8 {
            let n = 1 + (w + u64::from(src)) % 3;
            for i in 0..n {
                let t = first + w * WINDOW + u64::from(src) * S + i * S;
                out.push(flow(t, src, if i % 2 == 0 { 443 } else { 80 }, true));
            }
        }
    }
    out
}

fn settings() -> LearningSettings {
    LearningSettings {
        window_ns: WINDOW,
        baseline_ns: 24 * 3600 * S,
        retrain: None,
        min_windows: 200,
        max_windows: 100_000,
        train: TrainConfig {
            kind: ModelKind::Combined,
            epochs: 5,
            members: 1,
            ..TrainConfig::default()
        },
        rules: Some(RulePolicy::default()),
        member_addresses: Default::default(),
    }
}

#[test]
fn models_train_from_stored_events_score_windows_and_verify_on_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    let until = now_ns();
    store.put_events(&baseline(until, 120)).expect("events");

    let set = ModelSet::default();
    let run = train_all(&store, &set, &settings(), until, &AtomicBool::new(false));
    assert!(run.error.is_none(), "{run:?}");
    let source = run
        .kinds
        .iter()
        .find(|k| k.entity == "source")
        .expect("source outcome");
    let info = source.model.clone().unwrap_or_else(|| panic!("{run:?}"));
    assert_eq!(info.schema, "source@1");
    assert_eq!(info.sha256.len(), 64);
    assert!(source.windows >= 800, "{source:?}");
    // No process or SNMP events: those kinds are skipped, with the reason.
    let host = run.kinds.iter().find(|k| k.entity == "host").expect("host");
    assert!(host.model.is_none());
    assert!(
        host.skipped
            .as_deref()
            .is_some_and(|r| r.contains("need 200"))
    );

    // Reloaded from the database: the same model, verified.
    let reloaded = ModelSet::load(&store).expect("load");
    assert_eq!(reloaded.infos(), vec![info.clone()]);

    // A live scan window raises an anomaly finding; ordinary windows do not.
    let mut fx = FeatureExtractor::new(WINDOW, 100);
    let t = (until / WINDOW + 1) * WINDOW;
    for port in 1..=300u16 {
        fx.push(&flow(t + S, 66, port, false));
    }
    for src in 1..=8u8 {
        fx.push(&flow(t + 2 * S, src, 443, true));
    }
    let windows = fx.close();
    let findings = score_windows(&reloaded, &windows, 0.99);
    let flagged: Vec<&Subject> = findings.iter().map(|f| &f.subject).collect();
    let scanner = Subject::SourceIp("10.0.0.66".parse().expect("ip"));
    assert_eq!(flagged, vec![&scanner], "{findings:?}");
    let f = &findings[0];
    assert_eq!(f.rule, "anomaly_source");
    assert_eq!(f.category, Category::Anomaly);
    assert!(f.score > 0.99);
    let keys: Vec<&str> = f.evidence.iter().map(|(k, _)| k.as_str()).collect();
    assert!(keys.contains(&"model_sha256"), "{keys:?}");
    assert!(
        keys.iter().any(|k| k.starts_with("feature.")),
        "the features that made it unusual are named: {keys:?}"
    );

    // Through the detector: events in, a signed anomaly alert out, with the
    // scanner's address hashed by the privacy policy.
    let (announce, _) = tokio::sync::broadcast::channel(16);
    let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    let privacy = Privacy {
        addresses: Addresses::Hash {
            salt: "a-salt-of-16-chars".into(),
        },
    };
    let mut detector = Detector::new(RulePolicy::default(), privacy, key, 300, announce)
        .with_anomaly(AnomalyDetection::new(WINDOW, Arc::new(reloaded)));
    let scan: Vec<Event> = (1..=300u16)
        .map(|port| flow(until - 2 * WINDOW, 66, port, false))
        .collect();
    let alerts = detector.process(&store, &scan).expect("process");
    let anomaly = alerts
        .iter()
        .find(|a| a.body.rule == "anomaly_source")
        .unwrap_or_else(|| panic!("{alerts:?}"));
    anomaly.verify().expect("signed");
    assert_eq!(anomaly.body.category, "anomaly");
    let text = String::from_utf8_lossy(&anomaly.encode()).to_string();
    assert!(!text.contains("10.0.0.66"), "{text}");
    assert!(anomaly.body.subject.starts_with("source_ip:h:"), "{text}");

    // Changed bytes are refused on load; nothing stored is deleted.
    let mut stored = store.models().expect("models").remove(0);
    let at = stored.model.len() / 2;
    stored.model[at] = if stored.model[at] == b'1' { b'2' } else { b'1' };
    store
        .put_model("source", &stored.info, &stored.model)
        .expect("put");
    let tampered = ModelSet::load(&store).expect("load");
    assert!(tampered.get(EntityKind::Source).is_none());
    assert_eq!(store.models().expect("models").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_api_lists_models_and_queues_training() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = common::quiet_config(dir.path(), &[]);
    let node = Node::start(config).await.expect("node starts");
    let addr = node.api_addr();

    // The first run starts by itself (no model yet) and finds too little.
    let (_, body) = eventually(Duration::from_secs(30), || async {
        let (status, body) = get_json(addr, "/api/v1/models").await;
        (body["trainer"]["runs"].as_u64() >= Some(1)).then_some((status, body))
    })
    .await
    .expect("the start-up training run finishes");
    assert_eq!(body["learning"], true);
    assert_eq!(body["models"], serde_json::json!([]));
    let kinds = body["trainer"]["last"]["kinds"].as_array().expect("kinds");
    assert_eq!(kinds.len(), 4);
    assert!(kinds.iter().all(|k| k["skipped"].is_string()), "{body}");

    let post = || common::send(addr, reqwest::Method::POST, "/api/v1/models/train", None);
    let status = post().await.0;
    assert!(status == 202 || status == 409, "{status}");
    eventually(Duration::from_secs(30), || async {
        let (_, body) = get_json(addr, "/api/v1/models").await;
        (body["trainer"]["runs"].as_u64() >= Some(2)).then_some(())
    })
    .await
    .expect("the requested run finishes");

    // The CLI reads and asks through the same API.
    let cli = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_amoskys"))
                .args(args)
                .output()
                .expect("runs")
        })
    };
    let api = addr.to_string();
    let out = cli(vec![
        "models".into(),
        "list".into(),
        "--api".into(),
        api.clone(),
    ])
    .await
    .expect("joins");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("no model yet"), "{text}");
    assert!(text.contains("source: no model"), "{text}");
    let out = cli(vec!["models".into(), "train".into(), "--api".into(), api])
        .await
        .expect("joins");
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("training queued") || said.contains("already queued"),
        "{said}"
    );
    node.shutdown().await;

    // With learning off, a request is refused with the reason.
    let dir = tempfile::tempdir().expect("tempdir");
    let config = common::quiet_config(dir.path(), &["learning.enabled=false"]);
    let node = Node::start(config).await.expect("node starts");
    let addr = node.api_addr();
    let (status, body) =
        common::send(addr, reqwest::Method::POST, "/api/v1/models/train", None).await;
    assert_eq!(status, 503);
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("learning.enabled"))
    );
    node.shutdown().await;
}

#[test]
fn bad_learning_settings_are_named() {
    let problems: Vec<String> = match amoskys_node::Config::load(&[
        Source::Embedded,
        Source::Set(vec![
            "learning.model=neural".into(),
            "learning.window_secs=0".into(),
        ]),
    ]) {
        Ok(c) => c.validate().iter().map(ToString::to_string).collect(),
        Err(e) => vec![e.to_string()],
    };
    let all = problems.join("\n");
    assert!(all.contains("learning.model"), "{all}");
    assert!(all.contains("forest"), "{all}");
    assert!(all.contains("learning.window_secs"), "{all}");
}

/// A SYN flood against 10.0.1.1:80 for `minutes` minutes from `from`:
/// 2,000 spoofed sources a minute, one unanswered SYN each, within 4 s.
fn spoofed_flood(from: u64, minutes: u32) -> Vec<Event> {
    let mut out = Vec::new();
    for m in 0..minutes {
        for n in 0..2_000u32 {
            let t = from + u64::from(m) * WINDOW + u64::from(n) * 2_000_000;
            let mut e = flow(t, 0, 80, false);
            if let EventBody::NetworkActivity(f) = &mut e.body {
                f.src = std::net::Ipv4Addr::from(0x0b00_0000 + m * 2_000 + n).into();
                f.forward = FlowCounters {
                    packets: 1,
                    bytes: 40,
                };
                f.end = FlowEnd::HalfOpen;
            }
            out.push(e);
        }
    }
    out
}

#[test]
fn a_flood_during_training_stays_out_of_the_baseline_named_or_not() {
    let until = now_ns();
    let first = (until - 60 * WINDOW) / WINDOW * WINDOW;
    let mut events = baseline(until, 60);
    // Half the baseline under attack: 60,000 spoofed sources' windows
    // against 59 closed minutes of eight clients.
    events.extend(spoofed_flood(first + 10 * WINDOW, 30));
    let train = |rules: Option<RulePolicy>| {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        store.put_events(&events).expect("events");
        let settings = LearningSettings {
            rules,
            train: TrainConfig {
                kind: ModelKind::Tails,
                ..settings().train
            },
            ..settings()
        };
        let set = ModelSet::default();
        let run = train_all(&store, &set, &settings, until, &AtomicBool::new(false));
        let source = run
            .kinds
            .into_iter()
            .find(|k| k.entity == "source")
            .expect("source outcome");
        (set, source)
    };
    let (clean, kept) = train(Some(RulePolicy::default()));
    let (dirty, all) = train(None);
    // The same flood below every rule's threshold: no finding names it, and
    // its identical one-SYN windows are capped per minute instead.
    let (unnamed, capped) = train(Some(RulePolicy {
        flood_min_syn: u64::MAX,
        ..RulePolicy::default()
    }));

    // Every spoofed source's window is out, and so are the clients' windows
    // of the attack's minutes (and of the one after the last alert); the
    // model learns the eight clients of the 28 other closed minutes.
    assert!(kept.left_out >= 60_000, "{kept:?}");
    let rows = |k: &amoskys_node::models::KindOutcome| k.model.as_ref().map(|m| m.train_rows);
    assert_eq!(rows(&kept), Some(28 * 8), "{kept:?}");
    // The record says what scores the windows.
    let detector = kept.model.as_ref().map(|m| m.detector.as_str());
    assert_eq!(detector, Some("tails (top 5)"));
    assert_eq!(all.left_out, 0);
    assert!(rows(&all) >= Some(60_000), "{all:?}");
    assert!(capped.left_out >= 60_000 - 30 * 16, "{capped:?}");
    assert!(rows(&capped) <= Some(59 * 8 + 30 * 16), "{capped:?}");

    // Ordinary minutes after training: the eight clients as before.
    let t = (until / WINDOW + 1) * WINDOW;
    let mut flagged = [0usize; 3];
    for w in 0..10u64 {
        let mut fx = FeatureExtractor::new(WINDOW, 100);
        for src in 1..=8u8 {
            for i in 0..1 + (w + u64::from(src)) % 3 {
                let at = t + w * WINDOW + u64::from(src) * S + i * S;
                fx.push(&flow(at, src, if i % 2 == 0 { 443 } else { 80 }, true));
            }
        }
        let windows = fx.close();
        flagged[0] += score_windows(&clean, &windows, 0.99).len();
        flagged[1] += score_windows(&dirty, &windows, 0.99).len();
        flagged[2] += score_windows(&unnamed, &windows, 0.99).len();
    }
    eprintln!(
        "ordinary source windows flagged in 10 minutes: {} trained without the flood, {} with it, \
         {} with it capped",
        flagged[0], flagged[1], flagged[2]
    );
    assert_eq!(flagged[0], 0, "the clean baseline flags ordinary traffic");
    assert!(flagged[1] > 0, "the contaminated baseline flags nothing");
    assert_eq!(flagged[2], 0, "the capped baseline flags ordinary traffic");
}

/// Admitted members' source windows stay out of the baseline: the mesh's
/// own traffic is not what a model of the site's clients learns.
#[test]
fn members_source_windows_stay_out_of_the_baseline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    let until = now_ns();
    store.put_events(&baseline(until, 120)).expect("events");
    let source_windows = |settings: &LearningSettings| {
        let run = train_all(
            &store,
            &ModelSet::default(),
            settings,
            until,
            &AtomicBool::new(false),
        );
        let k = run
            .kinds
            .iter()
            .find(|k| k.entity == "source")
            .cloned()
            .expect("source kind");
        (k.windows, k.left_out)
    };
    let plain = settings();
    let (windows, left_out) = source_windows(&plain);
    let members = amoskys_node::members::MemberAddresses::default();
    members.set([
        "10.0.0.1".parse().expect("ip"),
        "10.0.0.2".parse().expect("ip"),
    ]);
    let with_members = LearningSettings {
        member_addresses: members,
        ..settings()
    };
    let (windows_m, left_out_m) = source_windows(&with_members);
    // Two of the eight clients, one window each per minute (the last cut).
    let members_windows = left_out_m - left_out;
    assert!(
        members_windows >= 2 * 118,
        "members' windows left out: {members_windows}"
    );
    assert_eq!(windows_m, windows - members_windows);
}
