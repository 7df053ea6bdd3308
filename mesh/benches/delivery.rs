//! Alert delivery across a mesh of N nodes in one process, over real
//! loopback sockets: each node dials up to three random earlier nodes
//! (seeded), gossipsub forms its mesh, then alerts are published from random
//! nodes, one at a time, and every other node's receipt is timed.
//!
//! `cargo bench -p amoskys-mesh --bench delivery`: 10, 50 and 100 nodes, 20
//! alerts each. Under `cargo test`: 5 nodes, 3 alerts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use amoskys_mesh::net::{self, tcp_multiaddr};
use amoskys_mesh::{Alert, AlertBody, MeshConfig, MeshHandle, Received, ValidatorConfig};
use ed25519_dalek::SigningKey;
use libp2p::Multiaddr;
use libp2p::identity::Keypair;
use tokio::sync::mpsc;

type Arrivals = Arc<Mutex<HashMap<String, Vec<Instant>>>>;

struct Member {
    key: SigningKey,
    handle: MeshHandle,
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Bytes sent on the loopback interface so far (every byte between the
/// in-process nodes crosses it once).
fn loopback_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/dev").ok()?;
    let line = text.lines().find(|l| l.trim_start().starts_with("lo:"))?;
    let fields: Vec<&str> = line.split(':').nth(1)?.split_whitespace().collect();
    fields.get(8)?.parse().ok()
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

async fn tcp_addr(h: &MeshHandle) -> Multiaddr {
    for _ in 0..500 {
        if let Some(a) = h
            .listen_addrs()
            .await
            .expect("addrs")
            .into_iter()
            .find(|a| a.to_string().contains("/tcp/"))
        {
            return a;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("a mesh did not start listening");
}

async fn run(n: usize, alerts: usize) {
    let keys: Vec<SigningKey> = (0..n)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
            SigningKey::from_bytes(&seed)
        })
        .collect();
    let admitted: Vec<[u8; 32]> = keys.iter().map(|k| k.verifying_key().to_bytes()).collect();
    let arrivals: Arrivals = Arc::default();
    let mut members: Vec<Member> = Vec::new();
    let mut addrs: Vec<Multiaddr> = Vec::new();
    let mut rng = 42u64;
    let mut tasks = Vec::new();
    for key in keys {
        let mut bootstrap = Vec::new();
        for _ in 0..3.min(addrs.len()) {
            let j = (xorshift(&mut rng) % addrs.len() as u64) as usize;
            if !bootstrap.contains(&addrs[j]) {
                bootstrap.push(addrs[j].clone());
            }
        }
        let (tx, mut rx) = mpsc::channel::<Received>(4096);
        let (handle, task) = net::start(
            MeshConfig {
                bootstrap,
                validator: ValidatorConfig {
                    admitted: admitted.clone(),
                    ..ValidatorConfig::default()
                },
                ..MeshConfig::loopback(Keypair::ed25519_from_bytes(key.to_bytes()).expect("key"))
            },
            tx,
        )
        .await
        .expect("mesh starts");
        let sink = arrivals.clone();
        tasks.push(task);
        tasks.push(tokio::spawn(async move {
            while let Some(r) = rx.recv().await {
                let at = Instant::now();
                sink.lock()
                    .expect("lock")
                    .entry(r.alert.id.clone())
                    .or_default()
                    .push(at);
                let _ = r.stored.send(true);
            }
        }));
        addrs.push(tcp_addr(&handle).await);
        members.push(Member { key, handle });
    }
    let _ = tcp_multiaddr;
    // Connected, then a few heartbeats for gossipsub to build its mesh.
    let deadline = Instant::now() + Duration::from_secs(60);
    for m in &members {
        while m.handle.peers().await.expect("peers").is_empty() {
            assert!(Instant::now() < deadline, "a node found no peer");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;

    let mut latencies: Vec<Duration> = Vec::new();
    let mut delivered = 0usize;
    let phase = Instant::now();
    let bytes_before = loopback_bytes();
    for seq in 0..alerts {
        let from = (xorshift(&mut rng) % n as u64) as usize;
        let m = &members[from];
        let alert = Alert::sign(
            AlertBody {
                seq: seq as u64 + 1,
                time_ns: now_ns(),
                severity: "high".into(),
                category: "reconnaissance".into(),
                technique: "T1046".into(),
                rule: "port_scan_vertical".into(),
                score: 1.0,
                subject: "source_ip:192.0.2.9".into(),
                evidence: vec![("ports".into(), "100".into())],
            },
            &m.key,
        );
        let sent = Instant::now();
        m.handle.publish(&alert).await.expect("publish");
        let end = sent + Duration::from_secs(10);
        loop {
            let got = arrivals
                .lock()
                .expect("lock")
                .get(&alert.id)
                .map_or(0, Vec::len);
            if got >= n - 1 || Instant::now() > end {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let times = arrivals
            .lock()
            .expect("lock")
            .get(&alert.id)
            .cloned()
            .unwrap_or_default();
        delivered += times.len();
        latencies.extend(times.iter().map(|t| t.duration_since(sent)));
    }
    let busy = loopback_bytes().zip(bytes_before).map(|(a, b)| a - b);
    // The same time with no alerts: heartbeats, pings, the rest of the host.
    let took = phase.elapsed();
    let idle_before = loopback_bytes();
    tokio::time::sleep(took).await;
    let idle = loopback_bytes().zip(idle_before).map(|(a, b)| a - b);
    let per_alert_per_node = busy
        .zip(idle)
        .map(|(b, i)| b.saturating_sub(i) as f64 / (alerts * n) as f64);
    latencies.sort_unstable();
    let pct = |p: f64| {
        let i = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        latencies.get(i).copied().unwrap_or_default()
    };
    println!(
        "{n} nodes, {alerts} alerts: delivered {delivered}/{} ({:.1}%), latency p50 {:?} p95 {:?} p99 {:?} max {:?}, \
         {} bytes on the wire per alert per node (loopback, idle traffic subtracted)",
        alerts * (n - 1),
        100.0 * delivered as f64 / (alerts * (n - 1)) as f64,
        pct(0.5),
        pct(0.95),
        pct(0.99),
        latencies.last().copied().unwrap_or_default(),
        per_alert_per_node.map_or("unknown".to_owned(), |b| format!("{b:.0}"))
    );
    for t in tasks {
        t.abort();
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let sizes: &[(usize, usize)] = if full {
        &[(10, 20), (50, 20), (100, 20)]
    } else {
        &[(5, 3)]
    };
    for &(n, alerts) in sizes {
        rt.block_on(run(n, alerts));
    }
}
