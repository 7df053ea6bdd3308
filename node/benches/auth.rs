//! What authentication costs, measured on real nodes over real HTTP.
//!
//! 1. Overhead: `GET /api/v1/alerts?limit=100` (100 stored alerts) to a
//!    node that checks signatures, signed anew by the client for every
//!    request (signing is part of the cost), and the same request to a
//!    node started without authentication (`Hooks::
//!    unauthenticated_api_for_benchmarks`), alternating pair by pair in one
//!    run. Prints p50 and p99 of each and the p50 ratio.
//! 2. Brute force: 1,000 requests with wrong keys from 127.0.0.2 spread
//!    over 10 s (8 attackers), while an operator on 127.0.0.3 sends the
//!    same read back to back; the operator's p50 and p99 during the attack.
//!
//! `cargo bench -p amoskys-node --bench auth` runs the full sizes; under
//! `cargo test` (no `--bench`) a small smoke pass. Figures go to
//! docs/BENCHMARKS.md.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use amoskys_node::auth::{RequestParts, load_signing_key, sign_request};
use amoskys_node::config::Source;
use amoskys_node::{Config, Hooks, Node};
use ed25519_dalek::SigningKey;

const PATH: &str = "/api/v1/alerts?limit=100";

fn config(dir: &std::path::Path) -> Config {
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

fn alerts() -> Vec<amoskys_mesh::Alert> {
    let key = SigningKey::from_bytes(&[9; 32]);
    (0..100)
        .map(|seq| {
            amoskys_mesh::Alert::sign(
                amoskys_mesh::AlertBody {
                    seq,
                    time_ns: 1_800_000_000_000_000_000 + seq * 1_000_000_000,
                    severity: "high".into(),
                    category: "discovery".into(),
                    technique: "T1046".into(),
                    rule: "port_scan".into(),
                    score: 0.9,
                    subject: format!("source_ip:192.0.2.{}", seq % 250),
                    evidence: Vec::new(),
                },
                &key,
            )
        })
        .collect()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn sign(key: &SigningKey, node: &str, path: &str) -> String {
    let parts = RequestParts {
        node_id: node,
        method: "GET",
        path_and_query: path,
        body: b"",
    };
    sign_request(key, &parts, now_ms(), &rand::random())
}

fn client(source: IpAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(source)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// One read; its time, client signing included.
async fn read(c: &reqwest::Client, addr: SocketAddr, key: Option<(&SigningKey, &str)>) -> Duration {
    let started = Instant::now();
    let mut req = c.get(format!("http://{addr}{PATH}"));
    if let Some((key, node)) = key {
        req = req.header("authorization", sign(key, node, PATH));
    }
    let resp = req.send().await.expect("answered");
    assert_eq!(resp.status().as_u16(), 200);
    let body = resp.bytes().await.expect("body");
    assert!(body.len() > 10_000, "100 alerts in the answer");
    started.elapsed()
}

fn pct(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

async fn start(dir: &std::path::Path, open: bool) -> Node {
    let hooks = Hooks {
        unauthenticated_api_for_benchmarks: open,
        ..Hooks::default()
    };
    let node = Node::start_with(config(dir), hooks).await.expect("node");
    node.store().put_alerts(&alerts()).expect("alerts stored");
    node
}

async fn overhead(pairs: usize) {
    let (da, db) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let signed = start(da.path(), false).await;
    let open = start(db.path(), true).await;
    let key = load_signing_key(&da.path().join("admin.key")).expect("admin key");
    let node = signed.identity().peer_id().to_string();
    let c = client(IpAddr::V4(Ipv4Addr::LOCALHOST));
    for _ in 0..50 {
        read(&c, signed.api_addr(), Some((&key, &node))).await;
        read(&c, open.api_addr(), None).await;
    }
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for i in 0..pairs {
        // Alternate which goes first, so neither always has a warm cache.
        if i % 2 == 0 {
            with.push(read(&c, signed.api_addr(), Some((&key, &node))).await);
            without.push(read(&c, open.api_addr(), None).await);
        } else {
            without.push(read(&c, open.api_addr(), None).await);
            with.push(read(&c, signed.api_addr(), Some((&key, &node))).await);
        }
    }
    with.sort();
    without.sort();
    let (p50a, p50b) = (pct(&with, 50), pct(&without, 50));
    println!(
        "overhead: GET {PATH}, {pairs} pairs: signed p50 {:.3} ms p99 {:.3} ms | unauthenticated p50 {:.3} ms p99 {:.3} ms | p50 ratio {:.3} ({:+.1}%)",
        ms(p50a),
        ms(pct(&with, 99)),
        ms(p50b),
        ms(pct(&without, 99)),
        p50a.as_secs_f64() / p50b.as_secs_f64(),
        (p50a.as_secs_f64() / p50b.as_secs_f64() - 1.0) * 100.0
    );
    signed.shutdown().await;
    open.shutdown().await;
}

async fn brute_force(attempts: usize, window: Duration) {
    let dir = tempfile::tempdir().expect("dir");
    let node = start(dir.path(), false).await;
    let addr = node.api_addr();
    let key = load_signing_key(&dir.path().join("admin.key")).expect("admin key");
    let id = node.identity().peer_id().to_string();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (c, id) = (client(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))), id.clone());
        let every = window / (attempts / 8) as u32;
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(every);
            for _ in 0..attempts / 8 {
                tick.tick().await;
                let guess = SigningKey::from_bytes(&rand::random());
                let resp = c
                    .get(format!("http://{addr}{PATH}"))
                    .header("authorization", sign(&guess, &id, PATH))
                    .send()
                    .await
                    .expect("answered");
                assert!(matches!(resp.status().as_u16(), 401 | 429));
            }
        });
    }
    let c = client(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)));
    let mut times = Vec::new();
    while !tasks.is_empty() {
        times.push(read(&c, addr, Some((&key, &id))).await);
        while tasks.try_join_next().is_some() {}
    }
    let took = started.elapsed();
    times.sort();
    println!(
        "brute force: {attempts} wrong keys from one source in {:.2} s; operator on another source: {} reads, p50 {:.3} ms, p99 {:.3} ms",
        took.as_secs_f64(),
        times.len(),
        ms(pct(&times, 50)),
        ms(pct(&times, 99))
    );
    node.shutdown().await;
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (pairs, attempts, window) = if full {
        (5_000, 1_000, Duration::from_secs(10))
    } else {
        (100, 200, Duration::from_secs(1))
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        overhead(pairs).await;
        brute_force(attempts, window).await;
    });
}
