//! Setup shared by the console bench: the node's configuration, stored
//! and injected alerts, sign-in for a browser and for a plain client,
//! percentiles, and this process's CPU time.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use amoskys_mesh::{Alert, AlertBody};
use amoskys_node::auth::{RequestParts, load_signing_key, sign_request};
use amoskys_node::config::Source;
use amoskys_node::{Config, Node};
use amoskys_sensors::event::{FlowCounters, FlowEnd, TcpFlagCounts};
use amoskys_sensors::{Event, EventBody, FlowRecord, Transport};
use ed25519_dalek::SigningKey;
use serde_json::Value;

pub fn config(dir: &std::path::Path) -> Config {
    let sets = vec![
        format!("node.data_dir={}", dir.display()),
        "api.listen=127.0.0.1:0".into(),
        "mesh.listen=[\"127.0.0.1:0\"]".into(),
        "sensors.procfs.enabled=false".into(),
        "sensors.flows.enabled=false".into(),
        "sensors.ebpf.enabled=false".into(),
        "sensors.snmp.enabled=false".into(),
        "learning.enabled=false".into(),
        "log.level=error".into(),
    ];
    Config::load(&[Source::Embedded, Source::Set(sets)]).expect("config")
}

pub fn epoch_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

/// Alert `i` of `total`, signed by a peer's test key: time-ordered, the
/// last one a minute ago, half a second apart.
pub fn stored_alert(key: &SigningKey, i: usize, total: usize, now_ns: u64) -> Alert {
    const SEVERITIES: [&str; 4] = ["low", "medium", "high", "critical"];
    const RULES: [(&str, &str); 3] = [
        ("port_scan", "T1046"),
        ("ssh_brute_force", "T1110"),
        ("reverse_shell", "T1059.004"),
    ];
    let (rule, technique) = RULES[i % RULES.len()];
    let ago = (total - i) as u64 * 500_000_000 + 60_000_000_000;
    Alert::sign(
        AlertBody {
            seq: i as u64,
            time_ns: now_ns - ago,
            severity: SEVERITIES[i % SEVERITIES.len()].into(),
            category: "discovery".into(),
            technique: technique.into(),
            rule: rule.into(),
            score: 0.9,
            subject: format!("source_ip:198.51.{}.{}", (i / 250) % 250, i % 250 + 1),
            evidence: Vec::new(),
        },
        key,
    )
}

/// Stores alerts `from..to` of `total` in batches of 1,000.
pub fn store_alerts(node: &Node, from: usize, to: usize, total: usize) {
    let key = SigningKey::from_bytes(&[9; 32]);
    let now = amoskys_sensors::now_ns();
    for start in (from..to).step_by(1_000) {
        let batch: Vec<Alert> = (start..(start + 1_000).min(to))
            .map(|i| stored_alert(&key, i, total, now))
            .collect();
        node.store().put_alerts(&batch).expect("alerts stored");
    }
}

/// A vertical scan from `src`: one flow to each of 64 ports.
pub fn scan(src: Ipv4Addr) -> Vec<Event> {
    let now = amoskys_sensors::now_ns();
    (0..64u16)
        .map(|i| {
            Event::new(
                now,
                "bench",
                "flows",
                EventBody::NetworkActivity(FlowRecord {
                    interface: "eth0".into(),
                    transport: Transport::Tcp,
                    src: src.into(),
                    src_port: 40_000 + i,
                    dst: Ipv4Addr::new(10, 0, 0, 1).into(),
                    dst_port: 1_000 + i,
                    first_ns: now,
                    last_ns: now,
                    forward: FlowCounters {
                        packets: 1,
                        bytes: 60,
                    },
                    reverse: FlowCounters::default(),
                    tcp_flags: TcpFlagCounts {
                        syn: 1,
                        syn_no_ack: 1,
                        ..TcpFlagCounts::default()
                    },
                    end: FlowEnd::End,
                }),
            )
        })
        .collect()
}

/// A one-time sign-in link for the node's local admin (the signed `POST
/// /api/v1/console/login` that `amoskys operator login` makes).
pub async fn login_link(node: &Node, dir: &std::path::Path) -> String {
    let key = load_signing_key(&dir.join("admin.key")).expect("admin key");
    let id = node.identity().peer_id().to_string();
    let path = "/api/v1/console/login";
    let ts = epoch_ms() as u64;
    let parts = RequestParts {
        node_id: &id,
        method: "POST",
        path_and_query: path,
        body: b"",
    };
    let auth = sign_request(&key, &parts, ts, &rand::random());
    let v: Value = reqwest::Client::new()
        .post(format!("http://{}{path}", node.api_addr()))
        .header("authorization", auth)
        .send()
        .await
        .expect("the node answers")
        .json()
        .await
        .expect("JSON");
    format!(
        "http://{}{}",
        node.api_addr(),
        v["path"].as_str().expect("a link")
    )
}

/// The session cookie (`name=value`) a login link gives a plain client.
pub async fn session_cookie(link: &str) -> String {
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let resp = c.get(link).send().await.expect("the link answers");
    let set = resp
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("a session cookie");
    set.split(';').next().unwrap_or_default().to_owned()
}

pub fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p / 100.0).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

pub fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// CPU ticks (1/100 s) of this process: user + system.
pub fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum()
}

/// This process's CPU over `secs`, in % of one core.
pub async fn cpu_over(secs: u64) -> f64 {
    let (t0, c0) = (Instant::now(), cpu_ticks());
    tokio::time::sleep(Duration::from_secs(secs)).await;
    (cpu_ticks() - c0) as f64 / 100.0 / t0.elapsed().as_secs_f64() * 100.0
}
