//! Alert gossip over real libp2p sockets on loopback: five meshes in a
//! star around a bootstrap node, forwarding only what each has stored;
//! forged, tampered, unknown, replayed, oversized and garbage messages
//! relayed by a member rejected and counted while good alerts still flow; a
//! pre-shared key that keeps strangers out; QUIC beside TCP unless turned
//! off. (What a peer that is not admitted gets: `tests/members.rs`.)

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use amoskys_mesh::net::{self, tcp_multiaddr};
use amoskys_mesh::{
    Alert, AlertBody, AlertLedger, Holdings, MeshConfig, MeshHandle, Received, Reject,
    ValidatorConfig,
};
use ed25519_dalek::SigningKey;
use libp2p::Multiaddr;
use libp2p::identity::Keypair;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(20);

fn keypair(k: &SigningKey) -> Keypair {
    Keypair::ed25519_from_bytes(k.to_bytes()).expect("ed25519 key")
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().expect("addr")
}

/// Every alert a test node holds (its own and its peers'), in memory.
#[derive(Debug, Default)]
struct Ledger {
    alerts: Mutex<Vec<Alert>>,
}

impl AlertLedger for Ledger {
    fn holdings(&self) -> Result<Holdings, String> {
        let held = self.alerts.lock().map_err(|e| e.to_string())?;
        Ok(Holdings::from_pairs(
            held.iter().map(|a| (a.origin_key.clone(), a.body.seq)),
        ))
    }

    fn missing(&self, theirs: &Holdings, limit: usize) -> Result<Vec<Alert>, String> {
        let held = self.alerts.lock().map_err(|e| e.to_string())?;
        Ok(held
            .iter()
            .filter(|a| !theirs.contains(&a.origin_key, a.body.seq))
            .take(limit)
            .cloned()
            .collect())
    }
}

struct Node {
    key: SigningKey,
    handle: MeshHandle,
    /// Alerts received from peers (gossip and sync).
    got: Arc<Mutex<Vec<Alert>>>,
    ledger: Arc<Ledger>,
    tasks: Vec<JoinHandle<()>>,
}

impl Node {
    async fn raise(&self, a: &Alert) {
        self.ledger.alerts.lock().expect("lock").push(a.clone());
        self.handle.publish(a).await.expect("publish");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn node(
    seed: u8,
    admitted: &[[u8; 32]],
    bootstrap: Vec<Multiaddr>,
    psk: Option<[u8; 32]>,
) -> Node {
    node_with(seed, admitted, bootstrap, psk, Arc::default()).await
}

/// A node over an existing store (a restart).
async fn node_with(
    seed: u8,
    admitted: &[[u8; 32]],
    bootstrap: Vec<Multiaddr>,
    psk: Option<[u8; 32]>,
    ledger: Arc<Ledger>,
) -> Node {
    let opts = Opts {
        kademlia: true,
        stores: true,
    };
    node_opts(seed, admitted, bootstrap, psk, ledger, opts).await
}

struct Opts {
    kademlia: bool,
    /// Whether the receiver stores what it gets (false: a full disk).
    stores: bool,
}

async fn node_opts(
    seed: u8,
    admitted: &[[u8; 32]],
    bootstrap: Vec<Multiaddr>,
    psk: Option<[u8; 32]>,
    ledger: Arc<Ledger>,
    opts: Opts,
) -> Node {
    let key = SigningKey::from_bytes(&[seed; 32]);
    let (tx, mut rx) = mpsc::channel::<Received>(1024);
    let (handle, task) = net::start(
        MeshConfig {
            bootstrap,
            kademlia: opts.kademlia,
            psk,
            validator: ValidatorConfig {
                admitted: admitted.to_vec(),
                ..ValidatorConfig::default()
            },
            ledger: Some(ledger.clone()),
            ..MeshConfig::loopback(keypair(&key))
        },
        tx,
    )
    .await
    .expect("mesh starts");
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    let held = ledger.clone();
    // The receiver "stores" in memory and acknowledges (or refuses).
    let store = tokio::spawn(async move {
        while let Some(r) = rx.recv().await {
            if !opts.stores {
                let _ = r.stored.send(false);
                continue;
            }
            sink.lock().expect("lock").push(r.alert.clone());
            // Stored idempotently by id, as the node's store does.
            let mut h = held.alerts.lock().expect("lock");
            if !h.iter().any(|a| a.id == r.alert.id) {
                h.push(r.alert);
            }
            drop(h);
            let _ = r.stored.send(true);
        }
    });
    Node {
        key,
        handle,
        got,
        ledger,
        tasks: vec![task, store],
    }
}

async fn tcp_addr(n: &Node) -> Multiaddr {
    let end = Instant::now() + WAIT;
    loop {
        let addrs = n.handle.listen_addrs().await.expect("addrs");
        if let Some(a) = addrs.into_iter().find(|a| a.to_string().contains("/tcp/")) {
            return a;
        }
        assert!(Instant::now() < end, "no listen address");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn alert(key: &SigningKey, seq: u64, age: Duration) -> Alert {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64;
    Alert::sign(
        AlertBody {
            seq,
            time_ns: now - age.as_nanos() as u64,
            severity: "high".into(),
            category: "reconnaissance".into(),
            technique: "T1046".into(),
            rule: "port_scan_vertical".into(),
            score: 1.0,
            subject: "source_ip:192.0.2.9".into(),
            evidence: vec![("ports".into(), "25".into())],
        },
        key,
    )
}

async fn until(what: &str, mut ok: impl FnMut() -> bool) {
    let end = Instant::now() + WAIT;
    while !ok() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn connected(n: &Node, peers: usize) {
    let end = Instant::now() + WAIT;
    while n.handle.peers().await.expect("peers").len() < peers {
        assert!(Instant::now() < end, "peers did not connect");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn ids(n: &Node) -> HashSet<String> {
    n.got
        .lock()
        .expect("lock")
        .iter()
        .map(|a| a.id.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_reach_every_node_and_bad_messages_are_rejected() {
    let seeds = [1u8, 2, 3, 4, 5];
    let admitted: Vec<[u8; 32]> = seeds
        .iter()
        .chain(&[6, 7])
        .map(|s| SigningKey::from_bytes(&[*s; 32]).verifying_key().to_bytes())
        .collect();
    let hub = node(1, &admitted, vec![], None).await;
    let hub_addr = tcp_addr(&hub).await;
    let mut nodes = vec![hub];
    for s in &seeds[1..] {
        nodes.push(node(*s, &admitted, vec![hub_addr.clone()], None).await);
    }
    connected(&nodes[0], 4).await;
    for n in &nodes[1..] {
        connected(n, 1).await;
    }
    // Subscriptions travel after connecting; give gossipsub a heartbeat.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // One alert from each node reaches the four others, through the hub.
    let started = Instant::now();
    let mut sent = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let a = alert(&n.key, 1, Duration::ZERO);
        n.raise(&a).await;
        sent.push((i, a.id));
    }
    until("every alert on every node", || {
        nodes.iter().enumerate().all(|(i, n)| {
            let have = ids(n);
            sent.iter().all(|(j, id)| *j == i || have.contains(id))
        })
    })
    .await;
    let spread = started.elapsed();
    assert!(spread < Duration::from_secs(10), "{spread:?}");
    for n in &nodes {
        assert_eq!(n.got.lock().expect("lock").len(), 4, "exactly once each");
    }

    // A rogue member relays bad messages; one is an alert of a key never
    // admitted.
    let rogue = node(7, &admitted, vec![hub_addr.clone()], None).await;
    connected(&rogue, 1).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stranger = SigningKey::from_bytes(&[66; 32]);
    let member = SigningKey::from_bytes(&[2; 32]);
    let mut tampered = alert(&member, 10, Duration::ZERO);
    tampered.body.subject = "source_ip:198.51.100.7".into();
    let mut forged = alert(&member, 11, Duration::ZERO);
    forged.signature = alert(&stranger, 11, Duration::ZERO).signature;
    let bad: Vec<(Vec<u8>, Reject)> = vec![
        (
            alert(&stranger, 1, Duration::ZERO).encode(),
            Reject::NotAdmitted,
        ),
        (tampered.encode(), Reject::Signature),
        (forged.encode(), Reject::Signature),
        (
            alert(&member, 12, Duration::from_secs(3600)).encode(),
            Reject::Stale,
        ),
        (
            vec![b'{'; amoskys_mesh::alert::MAX_ALERT_BYTES + 100],
            Reject::Oversized,
        ),
        (b"\xffnot an alert".to_vec(), Reject::Decode),
    ];
    let hub_stats = nodes[0].handle.stats().clone();
    // A replay of an alert already held is a duplicate, not a new alert.
    rogue
        .handle
        .publish_bytes(alert(&nodes[1].key, 1, Duration::ZERO).encode())
        .await
        .expect("sent");
    until("the replay counted", || {
        hub_stats.rejected(Reject::Duplicate) >= 1
    })
    .await;
    for (bytes, _) in &bad {
        rogue
            .handle
            .publish_bytes(bytes.clone())
            .await
            .expect("sent");
    }
    until("every bad message counted at the hub", || {
        bad.iter().all(|(_, r)| hub_stats.rejected(*r) >= 1)
    })
    .await;
    assert_eq!(hub_stats.rejected(Reject::Signature), 2);
    // Each reject lowered the rogue's score at the hub.
    let rogue_id = rogue.handle.peer_id().to_string();
    let score = nodes[0]
        .handle
        .peers()
        .await
        .expect("peers")
        .into_iter()
        .find(|p| p.id == rogue_id)
        .and_then(|p| p.score)
        .expect("the hub scores the rogue");
    assert!(score < 0.0, "score {score}");

    // Good alerts still flow, and nothing bad was stored anywhere.
    let later = alert(&nodes[3].key, 2, Duration::ZERO);
    nodes[3].raise(&later).await;
    until("the later alert everywhere", || {
        nodes
            .iter()
            .enumerate()
            .all(|(i, n)| i == 3 || ids(n).contains(&later.id))
    })
    .await;
    for n in &nodes {
        for a in n.got.lock().expect("lock").iter() {
            a.verify().expect("only verified alerts are stored");
            assert_ne!(
                a.origin_key,
                hex::encode(stranger.verifying_key().as_bytes())
            );
        }
    }

    // A node that joins late fetches everything it missed from the hub, once.
    let late = node(6, &admitted, vec![hub_addr], None).await;
    until("the late node holds all six alerts", || {
        late.got.lock().expect("lock").len() >= 6
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = late.got.lock().expect("lock").clone();
    let distinct: HashSet<&str> = got.iter().map(|a| a.id.as_str()).collect();
    assert_eq!((got.len(), distinct.len()), (6, 6), "no duplicates");
    assert!(distinct.contains(later.id.as_str()));
    assert!(
        late.handle
            .stats()
            .synced
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 6
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_the_network_key_cannot_connect() {
    let psk = [9u8; 32];
    let members: Vec<[u8; 32]> = [1u8, 2]
        .iter()
        .map(|s| SigningKey::from_bytes(&[*s; 32]).verifying_key().to_bytes())
        .collect();
    let a = node(1, &members, vec![], Some(psk)).await;
    let a_addr = tcp_addr(&a).await;
    let b = node(2, &members, vec![a_addr.clone()], Some(psk)).await;
    connected(&b, 1).await;
    connected(&a, 1).await;

    let stranger = node(3, &[], vec![a_addr.clone()], None).await;
    let wrong = node(4, &[], vec![a_addr], Some([8u8; 32])).await;
    // Both dial at once and again every 5 s; give them two rounds.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(stranger.handle.peers().await.expect("peers").is_empty());
    assert!(wrong.handle.peers().await.expect("peers").is_empty());
    assert_eq!(a.handle.peers().await.expect("peers").len(), 1);
    let _ = tcp_multiaddr(loopback());
}

/// The transports a mesh listens on, once it listens.
async fn listening_on(quic: bool) -> (bool, bool) {
    let (tx, _rx) = mpsc::channel::<Received>(16);
    let (handle, task) = net::start(
        MeshConfig {
            quic,
            ..MeshConfig::loopback(keypair(&SigningKey::from_bytes(&[5; 32])))
        },
        tx,
    )
    .await
    .expect("mesh starts");
    let has =
        |addrs: &[Multiaddr], proto: &str| addrs.iter().any(|a| a.to_string().contains(proto));
    let end = Instant::now() + WAIT;
    let mut addrs = Vec::new();
    while Instant::now() < end && !has(&addrs, "/tcp/") {
        tokio::time::sleep(Duration::from_millis(50)).await;
        addrs = handle.listen_addrs().await.expect("listen addrs");
    }
    // A QUIC listener reports within a moment of the TCP one.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let addrs = handle.listen_addrs().await.expect("listen addrs");
    task.abort();
    (has(&addrs, "/tcp/"), has(&addrs, "/quic-v1"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_listens_beside_tcp_unless_turned_off() {
    assert_eq!(listening_on(true).await, (true, true));
    assert_eq!(listening_on(false).await, (true, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kademlia_finds_peers_beyond_the_bootstrap_list() {
    // A chain: 3 knows only 2, 2 knows only 1; all three are members
    // (Kademlia hands out members only).
    let members: Vec<[u8; 32]> = (1..=3u8)
        .map(|s| SigningKey::from_bytes(&[s; 32]).verifying_key().to_bytes())
        .collect();
    let one = node(1, &members, vec![], None).await;
    let two = node(2, &members, vec![tcp_addr(&one).await], None).await;
    let three = node(3, &members, vec![tcp_addr(&two).await], None).await;
    let one_id = one.handle.peer_id().to_string();
    let end = Instant::now() + WAIT;
    loop {
        let peers = three.handle.peers().await.expect("peers");
        if peers.iter().any(|p| p.id == one_id) {
            break;
        }
        assert!(Instant::now() < end, "3 never found 1: {peers:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_partition_heals_every_node_holds_every_alert_once() {
    let admitted: Vec<[u8; 32]> = (1..=5u8)
        .map(|s| SigningKey::from_bytes(&[s; 32]).verifying_key().to_bytes())
        .collect();
    let hub = node(1, &admitted, vec![], None).await;
    let hub_addr = tcp_addr(&hub).await;
    let mut nodes = vec![hub];
    for s in 2..=5u8 {
        nodes.push(node(s, &admitted, vec![hub_addr.clone()], None).await);
    }
    for n in &nodes[1..] {
        connected(n, 1).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // Nodes 4 and 5 are cut off: their meshes stop, their stores stay.
    let cut: Vec<Node> = nodes.drain(3..).collect();
    let cut_off: Vec<(u8, Arc<Ledger>, SigningKey)> = cut
        .iter()
        .zip([4u8, 5])
        .map(|(n, s)| (s, n.ledger.clone(), n.key.clone()))
        .collect();
    drop(cut);
    // Both sides raise alerts meanwhile.
    for n in &nodes {
        n.raise(&alert(&n.key, 1, Duration::ZERO)).await;
    }
    for (_, ledger, key) in &cut_off {
        ledger
            .alerts
            .lock()
            .expect("lock")
            .push(alert(key, 1, Duration::ZERO));
    }
    until("the connected side holds its three alerts", || {
        nodes
            .iter()
            .all(|n| n.ledger.alerts.lock().expect("lock").len() == 3)
    })
    .await;

    // The partition heals: 4 and 5 come back over their stores.
    for (seed, ledger, _) in cut_off {
        nodes.push(node_with(seed, &admitted, vec![hub_addr.clone()], None, ledger).await);
    }
    until("every node holds all five alerts", || {
        nodes
            .iter()
            .all(|n| n.ledger.alerts.lock().expect("lock").len() >= 5)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for n in &nodes {
        let held = n.ledger.alerts.lock().expect("lock").clone();
        let ids: HashSet<&str> = held.iter().map(|a| a.id.as_str()).collect();
        assert_eq!((held.len(), ids.len()), (5, 5), "every alert, once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_fetched_by_reconciliation_is_passed_on_only_once_stored() {
    // a — b — c in a line. b's store refuses everything (a full disk). a
    // holds an alert it raised while cut off; b fetches it when a connects.
    // Forwarded before it was stored, it would reach c by gossip.
    let admitted: Vec<[u8; 32]> = (1..=3u8)
        .map(|s| SigningKey::from_bytes(&[s; 32]).verifying_key().to_bytes())
        .collect();
    let line = |stores| Opts {
        kademlia: false,
        stores,
    };
    let b = node_opts(2, &admitted, vec![], None, Arc::default(), line(false)).await;
    let b_addr = tcp_addr(&b).await;
    let c = node_opts(
        3,
        &admitted,
        vec![b_addr.clone()],
        None,
        Arc::default(),
        line(true),
    )
    .await;
    connected(&c, 1).await;
    // Let gossipsub graft b and c into one mesh.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let a_ledger = Arc::new(Ledger::default());
    let held = alert(&SigningKey::from_bytes(&[1; 32]), 1, Duration::ZERO);
    a_ledger.alerts.lock().expect("lock").push(held.clone());
    let a = node_opts(1, &admitted, vec![b_addr], None, a_ledger, line(true)).await;
    connected(&a, 1).await;
    until("b fetched the alert from a", || {
        b.handle
            .stats()
            .synced
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(ids(&c).is_empty(), "c got an alert b never stored");
    let peers = c.handle.peers().await.expect("peers");
    assert_eq!(peers.len(), 1, "c reaches a only through b: {peers:?}");
}
