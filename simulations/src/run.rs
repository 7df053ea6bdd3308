//! Runs a scenario: real nodes in this process (RocksDB, libp2p on
//! loopback, Raft, detection), synthetic flows that make port scans,
//! faults, forged alerts from keys no one admitted; then measures delivery
//! and checks the invariants.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use amoskys_mesh::{Alert, AlertBody, MeshConfig, Received, net};
use amoskys_node::config::Source;
use amoskys_node::identity::Identity;
use amoskys_node::{Config, Hooks, Node};
use amoskys_sensors::event::{FlowCounters, FlowEnd, TcpFlagCounts};
use amoskys_sensors::{Event, EventBody, FlowRecord, Transport};
use serde::Serialize;

use crate::clients::Clients;
use crate::faults::{LeaderWatch, apply, sample_leaders};
use crate::scenario::{Rng, Scenario, schedule};

/// Flows of one synthetic scan (the vertical-scan rule fires at 20 ports).
const SCAN_PORTS: u16 = 25;

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("{0}")]
    Setup(String),
}

/// One invariant and whether it held.
#[derive(Debug, Clone, Serialize)]
pub struct Invariant {
    pub name: String,
    pub held: bool,
    pub detail: String,
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub scenario: Scenario,
    pub start_seconds: f64,
    pub run_seconds: f64,
    /// Attack alerts held by the nodes running at the end / expected.
    pub delivered: usize,
    pub expected: usize,
    /// Latency from injection to each node's receipt, milliseconds, sorted.
    pub latencies_ms: Vec<f64>,
    /// (ms since the first attack, share of expected deliveries done).
    pub delivery_over_time: Vec<(f64, f64)>,
    pub invariants: Vec<Invariant>,
    pub forged_sent: usize,
    /// Connected peers per node, on average, before the first attack.
    pub mean_peers: f64,
    /// Federated rounds, when the scenario has them.
    pub rounds: Vec<crate::federated::RoundResult>,
}

impl Outcome {
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let n = self.latencies_ms.len();
        (n > 0).then(|| self.latencies_ms[((n - 1) as f64 * q).round() as usize])
    }

    pub fn delivery_ratio(&self) -> f64 {
        self.delivered as f64 / self.expected.max(1) as f64
    }
}

fn config(
    dir: &std::path::Path,
    admitted: &str,
    bootstrap: &[u16],
    extra: &[String],
) -> Result<Config, SimError> {
    let peers: Vec<String> = bootstrap
        .iter()
        .map(|p| format!("\"127.0.0.1:{p}\""))
        .collect();
    let mut sets = vec![
        format!("node.data_dir={}", dir.display()),
        "api.listen=127.0.0.1:0".into(),
        "mesh.listen=[\"127.0.0.1:0\"]".into(),
        format!("mesh.bootstrap=[{}]", peers.join(",")),
        admitted.to_owned(),
        "sensors.procfs.enabled=false".into(),
        "sensors.flows.enabled=false".into(),
        "sensors.ebpf.enabled=false".into(),
        "sensors.snmp.enabled=false".into(),
        "learning.enabled=false".into(),
        // Static bootstrap lists, as at an air-gapped site. With Kademlia,
        // nodes that share one host end up connected to nearly all others
        // (88 of 99 peers each at 100 nodes), and those connections' upkeep
        // takes the host's cores (docs/SIMULATIONS.md).
        "mesh.kademlia=false".into(),
        // Nodes dial TCP only here; a QUIC socket each would cost 1,000
        // open files at 1,000 nodes.
        "mesh.quic=false".into(),
        "log.level=error".into(),
    ];
    sets.extend(extra.iter().cloned());
    Config::load(&[Source::Embedded, Source::Set(sets)]).map_err(|e| SimError::Setup(e.to_string()))
}

async fn mesh_port(n: &Node) -> Option<u16> {
    let mesh = n.mesh()?;
    for _ in 0..200 {
        if let Ok(addrs) = mesh.listen_addrs().await
            && let Some(p) = addrs.iter().find_map(|m| {
                m.iter().find_map(|p| match p {
                    libp2p::multiaddr::Protocol::Tcp(port) => Some(port),
                    _ => None,
                })
            })
        {
            return Some(p);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

fn attacker(k: usize) -> Ipv4Addr {
    Ipv4Addr::new(
        10,
        200 + (k / 62_500) as u8,
        ((k / 250) % 250) as u8,
        (k % 250 + 1) as u8,
    )
}

fn scan(k: usize) -> Vec<Event> {
    let now = amoskys_sensors::now_ns();
    (1..=SCAN_PORTS)
        .map(|p| {
            Event::new(
                now + u64::from(p),
                "sim",
                "flows",
                EventBody::NetworkActivity(FlowRecord {
                    interface: "sim0".into(),
                    transport: Transport::Tcp,
                    src: attacker(k).into(),
                    src_port: 40_000,
                    dst: Ipv4Addr::new(192, 0, 2, 1).into(),
                    dst_port: p,
                    first_ns: now,
                    last_ns: now + u64::from(p),
                    forward: FlowCounters {
                        packets: 1,
                        bytes: 60,
                    },
                    reverse: FlowCounters {
                        packets: 1,
                        bytes: 60,
                    },
                    tcp_flags: TcpFlagCounts {
                        syn: 1,
                        syn_no_ack: 1,
                        rst: 1,
                        ..Default::default()
                    },
                    end: FlowEnd::End,
                }),
            )
        })
        .collect()
}

/// (alert id, subject, when received) per node.
pub(crate) type Seen = Arc<Mutex<Vec<Vec<(String, String, Instant)>>>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn watch(node: &Node, i: usize, seen: &Seen) -> tokio::task::JoinHandle<()> {
    let mut rx = node.subscribe_alerts();
    let seen = seen.clone();
    tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(a) => lock(&seen)[i].push((a.id, a.body.subject, Instant::now())),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return,
            }
        }
    })
}

/// Open files a node holds besides the connections it dials, measured at
/// 1,000 nodes: 6 of RocksDB (two directory handles, WAL, MANIFEST, LOG,
/// LOCK) and one or two table files, the mesh and API listeners, its link
/// to the Raft leader.
const FILES_PER_NODE: u64 = 12;

/// The soft limit on open files of this process, from /proc (Linux).
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Runs `s`; `progress` hears about each step.
pub async fn run(s: &Scenario, progress: &mut dyn FnMut(&str)) -> Result<Outcome, SimError> {
    // Each dial is a connection, with an end in each of two nodes.
    let needed = (s.nodes as u64 + 16) * (FILES_PER_NODE + 2 * s.degree as u64);
    if let Some(limit) = open_files_limit()
        && limit < needed
    {
        return Err(SimError::Setup(format!(
            "{} nodes need about {needed} open files and this process may open {limit}; raise the limit first (`ulimit -n {needed}`, as root above the hard limit)",
            s.nodes
        )));
    }
    let tmp = tempfile::tempdir().map_err(|e| SimError::Setup(e.to_string()))?;
    let started = Instant::now();
    let mut rng = Rng::new(s.seed ^ 0xD1A1);
    let mut dirs = Vec::new();
    let mut keys = Vec::new();
    for i in 0..s.nodes {
        let dir = tmp.path().join(format!("n{i}"));
        std::fs::create_dir_all(&dir).map_err(|e| SimError::Setup(e.to_string()))?;
        let (id, _) = Identity::load_or_create(&dir).map_err(|e| SimError::Setup(e.to_string()))?;
        keys.push(format!("\"{}\"", id.public_key_hex()));
        dirs.push(dir);
    }
    let admitted = format!("mesh.admitted=[{}]", keys.join(","));
    let mut nodes: Vec<Option<Node>> = Vec::new();
    let mut ports: Vec<u16> = Vec::new();
    let mut configs = Vec::new();
    let seen: Seen = Arc::new(Mutex::new(vec![Vec::new(); s.nodes]));
    let mut watchers = Vec::new();
    for i in 0..s.nodes {
        let mut boot = Vec::new();
        for _ in 0..s.degree.min(i) {
            let p = ports[rng.below(i)];
            if !boot.contains(&p) {
                boot.push(p);
            }
        }
        let cfg = config(&dirs[i], &admitted, &boot, &s.settings)?;
        let hooks = Hooks {
            site: s
                .federated
                .as_ref()
                .map(|f| crate::federated::behaviour(f, i))
                .unwrap_or_default(),
            ..Hooks::default()
        };
        let node = Node::start_with(cfg.clone(), hooks)
            .await
            .map_err(|e| SimError::Setup(format!("node {i}: {e}")))?;
        let port = mesh_port(&node)
            .await
            .ok_or(SimError::Setup("no mesh port".into()))?;
        ports.push(port);
        watchers.push(watch(&node, i, &seen));
        nodes.push(Some(node));
        // A restarted node comes back on the same port, where its peers
        // look for it.
        let mut cfg = cfg;
        cfg.mesh.listen = vec![format!("127.0.0.1:{port}")];
        configs.push(cfg);
        if (i + 1) % 10 == 0 || i + 1 == s.nodes {
            progress(&format!("{} of {} nodes started", i + 1, s.nodes));
        }
    }
    // Every node connected to some peer.
    let end = Instant::now() + Duration::from_secs(60);
    for n in nodes.iter().flatten() {
        while n
            .mesh()
            .is_some_and(|m| futures_peers(m).is_none_or(|c| c == 0))
            && Instant::now() < end
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(s.warmup_secs)).await;
    let start_seconds = started.elapsed().as_secs_f64();
    let connections: Vec<u64> = nodes
        .iter()
        .flatten()
        .filter_map(|n| n.mesh().and_then(futures_peers))
        .collect();
    let mean_peers = connections.iter().sum::<u64>() as f64 / connections.len().max(1) as f64;

    // Byzantine peers: keys no one admitted, publishing forged alerts.
    let mut byzantine = Vec::new();
    let mut forged_origins = BTreeSet::new();
    for b in 0..s.byzantine {
        let key = ed25519_dalek::SigningKey::from_bytes(&[(b as u8).wrapping_add(200); 32]);
        let kp = libp2p::identity::Keypair::ed25519_from_bytes(key.to_bytes())
            .map_err(|e| SimError::Setup(e.to_string()))?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Received>(16);
        let (mesh, task) = net::start(
            MeshConfig {
                bootstrap: vec![
                    format!("/ip4/127.0.0.1/tcp/{}", ports[0])
                        .parse()
                        .map_err(|_| SimError::Setup("bootstrap".into()))?,
                ],
                quic: false,
                ..MeshConfig::loopback(kp)
            },
            tx,
        )
        .await
        .map_err(|e| SimError::Setup(e.to_string()))?;
        tokio::spawn(async move { while rx.recv().await.is_some() {} });
        forged_origins.insert(mesh.peer_id().to_string());
        byzantine.push((mesh, key, task));
    }

    // Attacks and faults on their schedule.
    let plan = schedule(s);
    let mut faults = s.faults.clone();
    faults.sort_by_key(|f| f.at_ms);
    let mut faults = faults.into_iter().peekable();
    let mut injected: HashMap<String, Instant> = HashMap::new();
    let mut leaders: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
    let mut forged_sent = 0;
    let t0 = Instant::now();
    let mut clients = Clients::new(&s.clients, t0);
    let mut leader_watch = LeaderWatch::default();
    for (k, (at, target)) in plan.iter().enumerate() {
        let due = t0 + Duration::from_millis(*at);
        while Instant::now() < due {
            sample_leaders(&nodes, &mut leaders);
            clients.tick(&nodes, t0.elapsed().as_millis() as u64);
            leader_watch.tick(&nodes);
            tokio::time::sleep(
                Duration::from_millis(20).min(due.saturating_duration_since(Instant::now())),
            )
            .await;
        }
        while let Some(f) = faults.next_if(|f| f.at_ms <= *at) {
            let seed = s.seed ^ f.at_ms;
            apply(
                &f.kind,
                &mut nodes,
                &configs,
                &seen,
                &mut watchers,
                seed,
                progress,
            )
            .await;
            leader_watch.fault(&f.kind, &nodes);
        }
        // A killed target's attack goes to the next running node.
        let target = (0..s.nodes)
            .map(|d| (target + d) % s.nodes)
            .find(|&i| nodes[i].is_some());
        if let Some(t) = target.and_then(|t| nodes[t].as_ref()) {
            t.inject(scan(k));
            injected.insert(format!("source_ip:{}", attacker(k)), Instant::now());
        }
        for (mesh, key, _) in &byzantine {
            let body = AlertBody {
                seq: k as u64,
                time_ns: amoskys_sensors::now_ns(),
                severity: "high".into(),
                category: "discovery".into(),
                technique: "T1046".into(),
                rule: "port_scan_vertical".into(),
                score: 1.0,
                subject: "source_ip:198.51.100.66".into(),
                evidence: Vec::new(),
            };
            if mesh.publish(&Alert::sign(body, key)).await.is_ok() {
                forged_sent += 1;
            }
        }
        if (k + 1) % 10 == 0 || k + 1 == plan.len() {
            progress(&format!("{} of {} attacks", k + 1, plan.len()));
        }
    }
    for f in faults {
        let seed = s.seed ^ f.at_ms;
        apply(
            &f.kind,
            &mut nodes,
            &configs,
            &seen,
            &mut watchers,
            seed,
            progress,
        )
        .await;
        leader_watch.fault(&f.kind, &nodes);
    }

    let rounds = match &s.federated {
        Some(f) => {
            let mut rng = Rng::new(s.seed ^ 0xFEDA);
            for (i, n) in nodes.iter().enumerate() {
                if let Some(n) = n {
                    let events =
                        crate::federated::device_events(i, f.history_secs, false, &mut rng);
                    if let Err(e) = n.store().put_events(&events) {
                        progress(&format!("node {i}: site telemetry not stored: {e}"));
                    }
                }
            }
            crate::federated::rounds(f, s.seed, &nodes, progress).await
        }
        None => Vec::new(),
    };

    // Delivery: every running node holds every attack's alert.
    let expected_subjects: BTreeSet<String> = injected.keys().cloned().collect();
    let settle = Instant::now() + Duration::from_secs(s.settle_secs);
    let held = |nodes: &Vec<Option<Node>>| -> usize {
        nodes
            .iter()
            .flatten()
            .map(|n| {
                n.store()
                    .alerts(None, 1_000_000)
                    .map(|a| {
                        a.iter()
                            .filter(|x| expected_subjects.contains(&x.body.subject))
                            .map(|x| x.body.subject.clone())
                            .collect::<BTreeSet<_>>()
                            .len()
                    })
                    .unwrap_or(0)
            })
            .sum()
    };
    // What the watchers heard, counted cheaply while alerts still spread;
    // the stores (every alert decoded) are read every 5 s and at the end,
    // so that the observer takes little of the nodes' CPU.
    let announced = || -> usize {
        let seen = lock(&seen);
        (0..s.nodes)
            .filter(|&i| nodes[i].is_some())
            .map(|i| {
                seen[i]
                    .iter()
                    .filter(|(_, subject, _)| expected_subjects.contains(subject))
                    .map(|(_, subject, _)| subject)
                    .collect::<BTreeSet<_>>()
                    .len()
            })
            .sum()
    };
    let running = nodes.iter().flatten().count();
    let expected = running * expected_subjects.len();
    let mut delivered = held(&nodes);
    let mut next_read = Instant::now() + Duration::from_secs(5);
    while delivered < expected && Instant::now() < settle {
        sample_leaders(&nodes, &mut leaders);
        leader_watch.tick(&nodes);
        tokio::time::sleep(Duration::from_millis(250)).await;
        if announced() >= expected || Instant::now() >= next_read {
            delivered = held(&nodes);
            next_read = Instant::now() + Duration::from_secs(5);
        }
    }
    delivered = held(&nodes);
    progress(&format!("{delivered} of {expected} deliveries"));

    // Latency and delivery over time, from what each node received.
    let seen = lock(&seen).clone();
    let mut latencies = Vec::new();
    let mut times = Vec::new();
    let mut duplicates = 0;
    for per_node in &seen {
        let mut ids = BTreeSet::new();
        for (id, subject, at) in per_node {
            if !ids.insert(id.clone()) {
                duplicates += 1;
            }
            if let Some(t) = injected.get(subject) {
                latencies.push(at.saturating_duration_since(*t).as_secs_f64() * 1e3);
                times.push(at.saturating_duration_since(t0).as_secs_f64() * 1e3);
            }
        }
    }
    latencies.sort_by(f64::total_cmp);
    times.sort_by(f64::total_cmp);
    let total = (s.nodes * expected_subjects.len()).max(1) as f64;
    let delivery_over_time = times
        .iter()
        .enumerate()
        .map(|(i, t)| (*t, (i + 1) as f64 / total))
        .collect();

    // Invariants.
    let mut forged_accepted = 0;
    for n in nodes.iter().flatten() {
        if let Ok(a) = n.store().alerts(None, 1_000_000) {
            forged_accepted += a
                .iter()
                .filter(|x| forged_origins.contains(&x.origin))
                .count();
        }
    }
    let split: Vec<String> = leaders
        .iter()
        .filter(|(_, l)| l.len() > 1)
        .map(|(t, l)| format!("term {t}: {l:?}"))
        .collect();
    let invariants = vec![
        Invariant {
            name: "every honest alert delivered to every running node".into(),
            held: delivered == expected,
            detail: format!("{delivered} of {expected}"),
        },
        Invariant {
            name: "each alert received once per node".into(),
            held: duplicates == 0,
            detail: format!("{duplicates} duplicates"),
        },
        Invariant {
            name: "one leader per term".into(),
            held: split.is_empty(),
            detail: if split.is_empty() {
                format!("{} terms seen", leaders.len())
            } else {
                split.join("; ")
            },
        },
        Invariant {
            name: "no alert from a non-member accepted".into(),
            held: forged_accepted == 0,
            detail: format!("{forged_sent} forged alerts sent, {forged_accepted} stored"),
        },
    ];
    let mut invariants = invariants;
    invariants.extend(leader_watch.finish(&nodes).await);
    if !clients.is_empty() {
        progress("checking the clients' history");
        let settle = Duration::from_secs(s.settle_secs);
        invariants.extend(clients.finish(&nodes, settle).await);
    }
    let run_seconds = t0.elapsed().as_secs_f64();
    progress("stopping nodes");
    for (_, _, task) in byzantine {
        task.abort();
    }
    for w in watchers {
        w.abort();
    }
    for n in nodes.into_iter().flatten() {
        n.shutdown().await;
    }
    Ok(Outcome {
        scenario: s.clone(),
        start_seconds,
        run_seconds,
        delivered,
        expected,
        latencies_ms: latencies,
        delivery_over_time,
        invariants,
        forged_sent,
        rounds,
        mean_peers,
    })
}

fn futures_peers(m: &amoskys_mesh::MeshHandle) -> Option<u64> {
    Some(
        m.stats()
            .connected_peers
            .load(std::sync::atomic::Ordering::Relaxed),
    )
}
