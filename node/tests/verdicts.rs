//! Verdicts teach the head on a real node (real RocksDB, the trainer
//! thread, the signed-alert path, the workspace, the API and the CLI): a
//! node trained on ordinary one-second windows raises anomaly alerts for
//! scanners and for heavy but harmless clients; the window behind each is
//! kept; an analyst judges some. Below `learning.head_min_per_class`
//! verdicts of a class the head is not in force (no alert carries a head
//! score); at the count it is, and ranks the unjudged scanners above the
//! unjudged heavy clients. The review lists the unjudged alerts, the most
//! uncertain first once the head is in force. `learning.head = "off"`
//! turns it off; verdicts survive a restart.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use amoskys_node::Node;
use amoskys_node::storage::Store;
use amoskys_sensors::event::{FlowCounters, FlowEnd, FlowRecord, TcpFlagCounts, Transport};
use amoskys_sensors::{Event, EventBody, now_ns};
use common::{eventually, get_json, send};
use reqwest::Method;

const S: u64 = 1_000_000_000;
const MS: u64 = 1_000_000;
/// Scanners and heavy clients in the live window.
const EACH: u8 = 8;
/// Verdicts of each class before the head is in force (the policy's).
const MIN: u64 = 3;

fn flow(t: u64, src: [u8; 4], port: u16, answered: bool, bytes: u64) -> Event {
    Event::new(
        t,
        "h",
        "flows",
        EventBody::NetworkActivity(FlowRecord {
            interface: "eth0".into(),
            transport: Transport::Tcp,
            src: std::net::Ipv4Addr::from(src).into(),
            src_port: 40_000,
            dst: "10.0.1.1".parse().expect("ip"),
            dst_port: port,
            first_ns: t,
            last_ns: t + 10 * MS,
            forward: FlowCounters {
                packets: 6,
                bytes: 900 + bytes / 4,
            },
            reverse: FlowCounters {
                packets: if answered { 5 } else { 0 },
                bytes: if answered { bytes } else { 0 },
            },
            tcp_flags: TcpFlagCounts {
                syn: 1,
                syn_ack: u32::from(answered),
                syn_no_ack: u32::from(!answered),
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

/// The one-second window at `start`: eight clients, 1 to 3 web
/// connections each.
fn ordinary(start: u64) -> Vec<Event> {
    let w = start / S;
    let mut out = Vec::new();
    for c in 1..=8u8 {
        for i in 0..1 + (w + u64::from(c)) % 3 {
            let t = start + u64::from(c) * 50 * MS + i * 10 * MS;
            out.push(flow(
                t,
                [10, 0, 0, c],
                [443, 80][(i % 2) as usize],
                true,
                4000,
            ));
        }
    }
    out
}

/// A past window: scanners `10.0.9.i` (unanswered SYNs to many ports)
/// and heavy clients `10.0.8.i` (many answered web connections), each
/// more than the last.
fn live(start: u64) -> Vec<Event> {
    let mut out = Vec::new();
    for i in 1..=EACH {
        for p in 0..(4 + u16::from(i)) {
            out.push(flow(
                start + u64::from(p) * MS,
                [10, 0, 9, i],
                1000 + p,
                false,
                0,
            ));
        }
        for n in 0..(40 + u64::from(i) * 8) {
            out.push(flow(start + n * MS, [10, 0, 8, i], 443, true, 400_000));
        }
    }
    out
}

/// The anomaly alerts of the store: (id, scanner or not).
fn anomalies(node: &Node) -> Vec<(String, bool)> {
    node.store()
        .alerts(None, 10_000)
        .expect("alerts")
        .into_iter()
        .filter(|a| a.body.rule == "anomaly_source")
        .map(|a| {
            let scanner = a.body.subject.contains("10.0.9.");
            (a.id, scanner)
        })
        .collect()
}

/// Head scores by alert id, from `GET /api/v1/alerts`.
async fn heads(addr: SocketAddr) -> std::collections::HashMap<String, (f64, u64)> {
    let (_, v) = get_json(addr, "/api/v1/alerts?limit=1000").await;
    v["status"]
        .as_array()
        .expect("status")
        .iter()
        .filter_map(|s| {
            Some((
                s["id"].as_str()?.to_owned(),
                (
                    s["head"]["probability"].as_f64()?,
                    s["head"]["rank"].as_u64()?,
                ),
            ))
        })
        .collect()
}

async fn set_policy(addr: SocketAddr, doc: &str) {
    let (status, body) = send(addr, Method::PUT, "/api/v1/policy", Some(doc.into())).await;
    assert_eq!(status, 200, "{body}");
    let version = body["version"].clone();
    eventually(Duration::from_secs(10), || async {
        let (_, v) = get_json(addr, "/api/v1/policy").await;
        (v["in_force"]["version"] == version).then_some(())
    })
    .await
    .expect("the policy is in force");
}

async fn verdict(addr: SocketAddr, alert: &str, status: &str) {
    let path = format!("/api/v1/cases/{alert}/status");
    let body = serde_json::json!({ "status": status }).to_string();
    let (code, answer) = send(addr, Method::POST, &path, Some(body)).await;
    assert_eq!(code, 200, "{answer}");
}

fn cli(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_amoskys"))
        .args(args)
        .output()
        .expect("runs");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

async fn review(addr: SocketAddr, limit: usize) -> serde_json::Value {
    let (status, v) = get_json(addr, &format!("/api/v1/alerts/review?limit={limit}")).await;
    assert_eq!(status, 200, "{v}");
    v
}

fn source_head(review: &serde_json::Value) -> serde_json::Value {
    review["heads"]
        .as_array()
        .and_then(|h| h.iter().find(|k| k["entity"] == "source").cloned())
        .expect("the source head")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdicts_train_a_head_that_re_ranks_once_enough_exist() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = (now_ns() - 3600 * S - 600 * S) / S * S;
    {
        let store = Store::open(&dir.path().join("db")).expect("store");
        let events: Vec<Event> = (0..600).flat_map(|w| ordinary(first + w * S)).collect();
        store.put_events(&events).expect("baseline events");
    }
    let config = common::quiet_config(
        dir.path(),
        &[
            "learning.window_secs=1",
            "learning.model=tails",
            "learning.retrain_hours=0",
            "sensors.procfs.enabled=false",
        ],
    );
    let node = Node::start(config).await.expect("node starts");
    let addr = node.api_addr();
    let api = addr.to_string();
    eventually(Duration::from_secs(60), || async {
        let (_, v) = get_json(addr, "/api/v1/models").await;
        v["models"]
            .as_array()?
            .iter()
            .any(|m| m["entity"] == "source")
            .then_some(())
    })
    .await
    .expect("a source model");
    common::first_admin(addr).await;
    let policy = format!("[learning]\nretrain_hours = 0\nhead_min_per_class = {MIN}\n");
    set_policy(addr, &policy).await;

    // One past window of scanners and heavy clients: anomaly alerts, each
    // with its window kept here.
    let start = (now_ns() / S - 5) * S;
    let events = live(start);
    let n = events.len();
    assert_eq!(node.inject(events), n);
    let alerts = eventually(Duration::from_secs(20), || async {
        let a = anomalies(&node);
        let scanners = a.iter().filter(|x| x.1).count();
        (scanners >= 5 && a.len() - scanners >= 5).then_some(a)
    })
    .await
    .unwrap_or_else(|| panic!("anomaly alerts for both groups: {:?}", anomalies(&node)));
    for (id, _) in &alerts {
        let w = node.store().window(id).expect("read").expect("window kept");
        assert_eq!(w.kind, "source");
        assert!(w.features.iter().all(|x| (0.0..=1.0).contains(x)));
    }
    let scanners: Vec<&String> = alerts.iter().filter(|x| x.1).map(|x| &x.0).collect();
    let heavy: Vec<&String> = alerts.iter().filter(|x| !x.1).map(|x| &x.0).collect();
    eprintln!(
        "anomaly alerts: {} scanners, {} heavy clients",
        scanners.len(),
        heavy.len()
    );

    // Before any verdict: the top alerts by score, no head probability.
    let r = review(addr, 4).await;
    let listed = r["review"].as_array().expect("review");
    assert_eq!(listed.len(), 4, "{r}");
    assert!(
        listed.iter().all(|x| x["head_probability"].is_null()),
        "{r}"
    );
    let scores: Vec<f64> = listed.iter().filter_map(|x| x["score"].as_f64()).collect();
    let top = node
        .store()
        .windows(100)
        .expect("windows")
        .iter()
        .map(|(_, w)| f64::from(w.score))
        .fold(f64::MIN, f64::max);
    assert!(
        (scores[0] - top).abs() < 1e-4,
        "the highest score first: {r}"
    );
    assert!(heads(addr).await.is_empty());
    for bad in ["0", "101", "ten"] {
        let (status, v) = get_json(addr, &format!("/api/v1/alerts/review?limit={bad}")).await;
        assert_eq!(status, 400, "{v}");
        assert!(
            v["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("limit: ")),
            "{v}"
        );
    }

    // Below the count: MIN - 1 true positives (one through the CLI) and
    // MIN false positives. The head is trained, not in force.
    let (ok, said) = cli(&["case", "status", scanners[0], "resolved", "--api", &api]);
    assert!(ok, "{said}");
    for id in &scanners[1..MIN as usize - 1] {
        verdict(addr, id, "resolved").await;
    }
    for id in &heavy[..MIN as usize] {
        verdict(addr, id, "false_positive").await;
    }
    let below = eventually(Duration::from_secs(10), || async {
        let h = source_head(&review(addr, 10).await);
        (h["local_attacks"] == MIN - 1 && h["local_normals"] == MIN).then_some(h)
    })
    .await
    .expect("the verdicts are recorded");
    assert_eq!(below["in_force"], false, "{below}");
    assert!(
        heads(addr).await.is_empty(),
        "no head score below the count"
    );
    assert_eq!(
        node.store().verdicts().expect("verdicts").len(),
        2 * MIN as usize - 1
    );

    // At the count the head is in force and ranks every unjudged scanner
    // above every unjudged heavy client.
    verdict(addr, scanners[MIN as usize - 1], "resolved").await;
    let scored = eventually(Duration::from_secs(10), || async {
        let h = heads(addr).await;
        (!h.is_empty()).then_some(h)
    })
    .await
    .expect("the head is in force");
    let r = review(addr, 10).await;
    assert_eq!(source_head(&r)["in_force"], true, "{r}");
    assert_eq!(source_head(&r)["source"], "local", "{r}");
    let unjudged_scanners: Vec<(f64, u64)> = scanners[MIN as usize..]
        .iter()
        .map(|id| scored[*id])
        .collect();
    let unjudged_heavy: Vec<(f64, u64)> =
        heavy[MIN as usize..].iter().map(|id| scored[*id]).collect();
    let worst_scanner = unjudged_scanners.iter().map(|x| x.1).max().expect("some");
    let best_heavy = unjudged_heavy.iter().map(|x| x.1).min().expect("some");
    eprintln!("unjudged scanners {unjudged_scanners:?}, heavy clients {unjudged_heavy:?}");
    // The (scanner, heavy client) pairs the unsupervised score did not put
    // the right way round (the tails model saturates: they tie): what the
    // head re-ranked.
    let score = |id: &String| node.store().window(id).expect("read").expect("kept").score;
    let unordered = scanners[MIN as usize..]
        .iter()
        .flat_map(|s| heavy[MIN as usize..].iter().map(move |h| (s, h)))
        .filter(|(s, h)| score(h) >= score(s))
        .count();
    eprintln!(
        "unjudged (scanner, heavy client) pairs the unsupervised score leaves tied or the wrong way: {unordered} of {}; the head orders all",
        unjudged_scanners.len() * unjudged_heavy.len()
    );
    assert!(unordered > 0, "the live window should need the head");
    assert!(worst_scanner < best_heavy, "scanners rank first");
    assert!(unjudged_scanners.iter().all(|x| x.0 > 0.5));
    assert!(unjudged_heavy.iter().all(|x| x.0 < 0.5));

    // The review: only unjudged alerts, the most uncertain first.
    let listed = r["review"].as_array().expect("review");
    let judged: Vec<&String> = scanners[..MIN as usize]
        .iter()
        .chain(&heavy[..MIN as usize])
        .copied()
        .collect();
    assert!(
        listed
            .iter()
            .all(|x| !judged.iter().any(|j| x["id"] == j.as_str())),
        "{r}"
    );
    let first = listed[0]["head_probability"]
        .as_f64()
        .expect("a probability");
    let nearest = scored
        .iter()
        .filter(|(id, _)| !judged.contains(id))
        .map(|(_, (p, _))| (p - 0.5).abs())
        .fold(f64::MAX, f64::min);
    assert!(((first - 0.5).abs() - nearest).abs() < 1e-9, "{r}");
    let (ok, said) = cli(&["alerts", "review", "--api", &api, "-n", "3"]);
    assert!(ok, "{said}");
    assert!(
        said.contains("P(TRUE)") && said.contains("source"),
        "{said}"
    );
    let listed_id = listed[0]["id"].as_str().expect("id");
    assert!(said.contains(listed_id), "{said}");

    // The policy switch turns it off.
    let off = format!("{policy}head = \"off\"\n");
    set_policy(addr, &off).await;
    assert!(heads(addr).await.is_empty());
    let h = source_head(&review(addr, 3).await);
    assert_eq!(
        (h["source"].as_str(), h["in_force"].as_bool()),
        (Some("none"), Some(false))
    );
    let (_, v) = get_json(addr, "/api/v1/policy").await;
    let (status, body) = send(
        addr,
        Method::PUT,
        "/api/v1/policy",
        Some("[learning]\nhead = \"sometimes\"\n".into()),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("learning.head")),
        "{body}"
    );
    let (_, after) = get_json(addr, "/api/v1/policy").await;
    assert_eq!(v["in_force"], after["in_force"]);

    // Back on; the verdicts survive a restart and the head is in force
    // again from them.
    set_policy(addr, &policy).await;
    node.shutdown().await;
    let config = common::quiet_config(
        dir.path(),
        &[
            "learning.window_secs=1",
            "learning.model=tails",
            "learning.retrain_hours=0",
            "sensors.procfs.enabled=false",
        ],
    );
    let node = Node::start(config).await.expect("node restarts");
    let addr = node.api_addr();
    let again = eventually(Duration::from_secs(20), || async {
        let h = heads(addr).await;
        (h.len() == scored.len()).then_some(h)
    })
    .await
    .expect("the head is in force after a restart");
    assert_eq!(
        again[scanners[MIN as usize]].1,
        scored[scanners[MIN as usize]].1
    );
    node.shutdown().await;
}
