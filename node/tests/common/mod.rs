//! Helpers shared by the node's integration tests.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use amoskys_node::Config;
use amoskys_node::config::Source;

/// A valid configuration for a test node: its own data dir, an API on a free
/// loopback port, procfs scanning fast.
pub fn test_config(data_dir: &Path) -> Config {
    Config::load(&[
        Source::Embedded,
        Source::Set(vec![
            format!("node.data_dir={}", data_dir.display()),
            "api.listen=127.0.0.1:0".into(),
            "mesh.listen=[\"127.0.0.1:0\"]".into(),
            "sensors.procfs.interval_ms=20".into(),
        ]),
    ])
    .expect("test config loads")
}

/// A test node's configuration with the flows and eBPF sensors off (they
/// need root) and `extra` `KEY=VALUE` settings on top.
pub fn quiet_config(data_dir: &Path, extra: &[&str]) -> Config {
    let mut sets = vec![
        format!("node.data_dir={}", data_dir.display()),
        "api.listen=127.0.0.1:0".into(),
        "mesh.listen=[\"127.0.0.1:0\"]".into(),
        "sensors.procfs.interval_ms=20".into(),
        "sensors.flows.enabled=false".into(),
        "sensors.ebpf.enabled=false".into(),
    ];
    sets.extend(extra.iter().map(|s| s.to_string()));
    Config::load(&[Source::Embedded, Source::Set(sets)]).expect("test config loads")
}

/// A node's id and the path of its local admin credential, as `GET
/// /healthz` tells a client on the same host.
pub async fn health(addr: SocketAddr) -> (String, std::path::PathBuf) {
    let v: serde_json::Value = reqwest::Client::new()
        .get(format!("http://{addr}/healthz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("API answers")
        .json()
        .await
        .expect("JSON health");
    (
        v["id"].as_str().expect("node id").to_owned(),
        v["admin_key"].as_str().expect("admin key path").into(),
    )
}

/// The `Authorization` header for one request, signed now by `key` for the
/// node `node_id` (the format of docs/SECURITY.md).
pub fn authorization(
    key: &ed25519_dalek::SigningKey,
    node_id: &str,
    method: &str,
    path_and_query: &str,
    body: &[u8],
) -> String {
    let ts_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64;
    amoskys_node::auth::sign_request(
        key,
        &amoskys_node::auth::RequestParts {
            node_id,
            method,
            path_and_query,
            body,
        },
        ts_ms,
        &rand::random(),
    )
}

/// The `Authorization` header of the node's local admin for one request.
pub async fn admin_authorization(
    addr: SocketAddr,
    method: &str,
    path_and_query: &str,
    body: &[u8],
) -> String {
    let (id, key_path) = health(addr).await;
    let key = amoskys_node::auth::load_signing_key(&key_path).expect("local admin key");
    authorization(&key, &id, method, path_and_query, body)
}

/// Signs a built request as the node's local admin, over exactly the path,
/// query and body reqwest will send.
pub async fn sign_as_admin(addr: SocketAddr, req: &mut reqwest::Request) {
    let url = req.url();
    let path_and_query = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    let body = req
        .body()
        .and_then(|b| b.as_bytes())
        .unwrap_or_default()
        .to_vec();
    let auth = admin_authorization(addr, req.method().as_str(), &path_and_query, &body).await;
    req.headers_mut()
        .insert("authorization", auth.parse().expect("header value"));
}

/// GET a path of a node's API as its local admin; returns status and body.
pub async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let auth = admin_authorization(addr, "GET", path, b"").await;
    let resp = reqwest::Client::new()
        .get(format!("http://{addr}{path}"))
        .header("authorization", auth)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("API answers");
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("body"))
}

/// GET and parse JSON.
pub async fn get_json(addr: SocketAddr, path: &str) -> (u16, serde_json::Value) {
    let (status, body) = get(addr, path).await;
    (status, serde_json::from_str(&body).expect("JSON body"))
}

/// Whether the tests run as root (user namespaces, other accounts, raw
/// sockets need it).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
}

/// Two network namespaces joined by a veth pair, `addrs[i]`/30 on the
/// namespace `names[i]`, loopback up in both; removed when dropped. Needs
/// root.
pub struct VethPair {
    pub names: [String; 2],
}

impl VethPair {
    /// `tag` (a few letters) keeps the names of concurrent tests apart.
    pub fn new(tag: &str, addrs: [&str; 2]) -> Self {
        let pid = std::process::id();
        let pair = VethPair {
            names: [format!("amk-{tag}1-{pid}"), format!("amk-{tag}2-{pid}")],
        };
        let devs = [format!("amk{tag}1{pid}"), format!("amk{tag}2{pid}")];
        for n in &pair.names {
            ip(&["netns", "add", n]);
        }
        ip(&[
            "link", "add", &devs[0], "type", "veth", "peer", "name", &devs[1],
        ]);
        for i in 0..2 {
            let (ns, dev) = (&pair.names[i], &devs[i]);
            ip(&["link", "set", dev, "netns", ns]);
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{}/30", addrs[i]),
                "dev",
                dev,
            ]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        pair
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", n])
                .status();
        }
    }
}

fn ip(args: &[&str]) {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .expect("ip runs");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits until the one-node cluster of a fresh node has recorded its first
/// admin (the node's local admin key).
pub async fn first_admin(addr: SocketAddr) {
    eventually(Duration::from_secs(20), || async {
        let (_, v) = get_json(addr, "/api/v1/operators").await;
        v["operators"]
            .as_array()
            .is_some_and(|ops| !ops.is_empty())
            .then_some(())
    })
    .await
    .expect("the first admin is recorded");
}

/// How many voters the node at `addr` sees.
pub async fn voters(addr: SocketAddr) -> usize {
    let (_, v) = get_json(addr, "/api/v1/cluster").await;
    v["cluster"]["voters"].as_array().map_or(0, Vec::len)
}

/// Waits up to 30 s until the node at `addr` sees `n` voters; fails with
/// what it sees then (voters, learners, leader, pending joins).
pub async fn wait_voters(addr: SocketAddr, n: usize) {
    let seen = eventually(Duration::from_secs(30), || async {
        (voters(addr).await == n).then_some(())
    })
    .await;
    if seen.is_none() {
        let (_, cluster) = get_json(addr, "/api/v1/cluster").await;
        let (_, members) = get_json(addr, "/api/v1/members").await;
        panic!("{n} voters not seen from {addr} in 30 s:\ncluster {cluster}\nmembers {members}");
    }
}

/// The configuration of one of [`three_voters`]: allow-listed, fast
/// elections (400-800 ms), bootstrapping from `bootstrap` (a mesh port).
pub fn voter_config(dir: &Path, admitted: &str, bootstrap: Option<u16>) -> Config {
    let mut sets = vec![
        admitted.to_owned(),
        "sensors.procfs.enabled=false".into(),
        "learning.enabled=false".into(),
        "cluster.heartbeat_ms=100".into(),
        "cluster.election_min_ms=400".into(),
        "cluster.election_max_ms=800".into(),
    ];
    if let Some(port) = bootstrap {
        sets.push(format!("mesh.bootstrap=[\"127.0.0.1:{port}\"]"));
    }
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    quiet_config(dir, &sets)
}

/// Three allow-listed nodes with fast elections (400-800 ms): the first
/// forms the cluster, the others join it, and each sees three voters.
pub async fn three_voters(dirs: &[tempfile::TempDir], admitted: &str) -> [amoskys_node::Node; 3] {
    let start = |config: Config| async move {
        amoskys_node::Node::start(config)
            .await
            .expect("node starts")
    };
    let a = start(voter_config(dirs[0].path(), admitted, None)).await;
    eventually(Duration::from_secs(10), || async {
        (voters(a.api_addr()).await == 1).then_some(())
    })
    .await
    .expect("the first node is a cluster of one");
    let port = mesh_port(&a).await;
    let b = start(voter_config(dirs[1].path(), admitted, Some(port))).await;
    let c = start(voter_config(dirs[2].path(), admitted, Some(port))).await;
    for n in [&a, &b, &c] {
        wait_voters(n.api_addr(), 3).await;
    }
    [a, b, c]
}

/// Polls `probe` until it returns `Some`, for at most `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if let Some(v) = probe().await {
            return Some(v);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    None
}

/// `n` data directories, each with a fresh node key, and the
/// `mesh.admitted=[…]` setting that admits all of them.
pub fn keyed_dirs(n: usize) -> (Vec<tempfile::TempDir>, String) {
    let dirs: Vec<tempfile::TempDir> = (0..n).map(|_| tempfile::tempdir().expect("dir")).collect();
    let keys: Vec<String> = dirs
        .iter()
        .map(|d| {
            let id = amoskys_node::identity::Identity::generate();
            id.write(&d.path().join(amoskys_node::identity::KEY_FILE), false)
                .expect("key written");
            format!("\"{}\"", id.public_key_hex())
        })
        .collect();
    (dirs, format!("mesh.admitted=[{}]", keys.join(",")))
}

/// The TCP port a node's mesh listens on.
pub async fn mesh_port(n: &amoskys_node::Node) -> u16 {
    let mesh = n.mesh().expect("mesh runs");
    eventually(Duration::from_secs(10), || async {
        mesh.listen_addrs().await.ok()?.iter().find_map(|m| {
            m.iter().find_map(|p| match p {
                libp2p::multiaddr::Protocol::Tcp(port) => Some(port),
                _ => None,
            })
        })
    })
    .await
    .expect("the mesh listens on TCP")
}

/// Any request to a node's API as its local admin, with an optional text
/// or JSON body; returns status and the JSON answer.
pub async fn send(
    addr: SocketAddr,
    method: reqwest::Method,
    path: &str,
    body: Option<String>,
) -> (u16, serde_json::Value) {
    let auth = admin_authorization(
        addr,
        method.as_str(),
        path,
        body.as_deref().unwrap_or_default().as_bytes(),
    )
    .await;
    let mut req = reqwest::Client::new()
        .request(method, format!("http://{addr}{path}"))
        .header("authorization", auth)
        .timeout(Duration::from_secs(20));
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b);
    }
    let resp = req.send().await.expect("API answers");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or_default())
}

/// A signed alert from a fixed test key, `seq` seconds after a fixed time:
/// what a test stores to have an alert to act on.
pub fn test_alert(seq: u64, rule: &str) -> amoskys_mesh::Alert {
    amoskys_mesh::Alert::sign(
        amoskys_mesh::AlertBody {
            seq,
            time_ns: 1_800_000_000_000_000_000 + seq * 1_000_000_000,
            severity: "high".into(),
            category: "discovery".into(),
            technique: "T1046".into(),
            rule: rule.into(),
            score: 0.9,
            subject: "source_ip:192.0.2.7".into(),
            evidence: Vec::new(),
        },
        &ed25519_dalek::SigningKey::from_bytes(&[9; 32]),
    )
}

/// A vertical port scan from `src` as the flow sensor reports it: one
/// unanswered SYN to each of 64 ports of 10.0.0.1.
pub fn scan(src: std::net::Ipv4Addr) -> Vec<amoskys_sensors::Event> {
    use amoskys_sensors::event::{FlowCounters, FlowEnd, TcpFlagCounts};
    use amoskys_sensors::{Event, EventBody, FlowRecord, Transport};
    let now = amoskys_sensors::now_ns();
    (0..64u16)
        .map(|i| {
            Event::new(
                now,
                "test",
                "flows",
                EventBody::NetworkActivity(FlowRecord {
                    interface: "eth0".into(),
                    transport: Transport::Tcp,
                    src: src.into(),
                    src_port: 40_000 + i,
                    dst: std::net::Ipv4Addr::new(10, 0, 0, 1).into(),
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

/// Raises one alert on `n` (a [`scan`] from `src`) and returns it.
pub async fn raise(n: &amoskys_node::Node, src: std::net::Ipv4Addr) -> amoskys_mesh::Alert {
    let mut rx = n.subscribe_alerts();
    let me = n.identity().peer_id().to_string();
    n.inject(scan(src));
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(a) = rx.recv().await
                && a.origin == me
                && a.body.subject.ends_with(&src.to_string())
            {
                return a;
            }
        }
    })
    .await
    .expect("the scan raises an alert")
}

/// A flow from 10.0.0.5 to `dst`, as the flow sensor would report it now.
pub fn flow_to(dst: std::net::Ipv4Addr) -> amoskys_sensors::Event {
    use amoskys_sensors::event::{FlowCounters, FlowEnd, TcpFlagCounts};
    use amoskys_sensors::{Event, EventBody, FlowRecord, Transport};
    use std::net::Ipv4Addr;
    let now = amoskys_sensors::now_ns();
    Event::new(
        now,
        "test",
        "flows",
        EventBody::NetworkActivity(FlowRecord {
            interface: "eth0".into(),
            transport: Transport::Tcp,
            src: Ipv4Addr::new(10, 0, 0, 5).into(),
            src_port: 43_210,
            dst: dst.into(),
            dst_port: 443,
            first_ns: now,
            last_ns: now,
            forward: FlowCounters {
                packets: 3,
                bytes: 300,
            },
            reverse: FlowCounters {
                packets: 2,
                bytes: 200,
            },
            tcp_flags: TcpFlagCounts::default(),
            end: FlowEnd::End,
        }),
    )
}
