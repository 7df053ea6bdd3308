//! The mesh serves only its members, tried from outside: an outsider built
//! here as a plain rust-libp2p swarm (its own behaviours: gossipsub, the
//! sync protocol over libp2p's CBOR codec, the request protocol spoken byte
//! by byte, Kademlia and identify; none of the mesh's swarm code) connects
//! to two members that admit each other. It subscribes, asks for alerts,
//! queries Kademlia and asks to join: it gets a join answer and nothing
//! else, every refusal is counted, it is disconnected, and the members'
//! alerts keep flowing. Admitted later, it is served; removed, it is cut
//! off. A member's frame over gossipsub's size limit is counted too.

mod outsider;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use amoskys_mesh::net::{self, MAX_JOINERS};
use amoskys_mesh::{
    Alert, AlertBody, AlertLedger, Holdings, InboundRequest, MeshConfig, MeshHandle, Received,
    Reject, Service, ValidatorConfig,
};
use ed25519_dalek::SigningKey;
use futures::StreamExt;
use libp2p::swarm::dummy;
use libp2p::{Multiaddr, PeerId};
use outsider::{Cmd, Outsider, keypair, outsider, swarm_of};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(20);

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn admitted(seeds: &[u8]) -> Vec<[u8; 32]> {
    seeds
        .iter()
        .map(|s| key(*s).verifying_key().to_bytes())
        .collect()
}

fn alert(seed: u8, seq: u64) -> Alert {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64;
    Alert::sign(
        AlertBody {
            seq,
            time_ns: now,
            severity: "high".into(),
            category: "reconnaissance".into(),
            technique: "T1046".into(),
            rule: "port_scan_vertical".into(),
            score: 1.0,
            subject: "source_ip:192.0.2.9".into(),
            evidence: vec![("ports".into(), "25".into())],
        },
        &key(seed),
    )
}

async fn until(what: &str, mut ok: impl FnMut() -> bool) {
    let end = Instant::now() + WAIT;
    while !ok() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---- Members: the mesh as a node runs it ----

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

struct Member {
    handle: MeshHandle,
    ledger: Arc<Ledger>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Member {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Member {
    async fn raise(&self, a: &Alert) {
        self.ledger.alerts.lock().expect("lock").push(a.clone());
        self.handle.publish(a).await.expect("publish");
    }

    fn holds(&self, id: &str) -> bool {
        self.ledger
            .alerts
            .lock()
            .expect("lock")
            .iter()
            .any(|a| a.id == id)
    }

    fn rejected(&self, r: Reject) -> u64 {
        self.handle.stats().rejected(r)
    }

    async fn tcp_addr(&self) -> Multiaddr {
        let end = Instant::now() + WAIT;
        loop {
            let addrs = self.handle.listen_addrs().await.expect("addrs");
            if let Some(a) = addrs.into_iter().find(|a| a.to_string().contains("/tcp/")) {
                return a;
            }
            assert!(Instant::now() < end, "no listen address");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn connected_to(&self, peer: PeerId) -> bool {
        let id = peer.to_string();
        let peers = self.handle.peers().await.expect("peers");
        peers.iter().any(|p| p.id == id)
    }
}

/// A member with Kademlia on, holding what it raises and receives, that
/// answers join requests with "pending" (as a node does for a key no
/// operator has admitted yet).
async fn member(seed: u8, members: &[u8], bootstrap: Vec<Multiaddr>) -> Member {
    let (tx, mut rx) = mpsc::channel::<Received>(1024);
    let (req_tx, mut req_rx) = mpsc::channel::<InboundRequest>(64);
    let ledger = Arc::new(Ledger::default());
    let (handle, task) = net::start(
        MeshConfig {
            bootstrap,
            kademlia: true,
            quic: false,
            validator: ValidatorConfig {
                admitted: admitted(members),
                ..ValidatorConfig::default()
            },
            ledger: Some(ledger.clone()),
            requests: Some(req_tx),
            ..MeshConfig::loopback(keypair(seed))
        },
        tx,
    )
    .await
    .expect("mesh starts");
    let held = ledger.clone();
    let store = tokio::spawn(async move {
        while let Some(r) = rx.recv().await {
            let mut h = held.alerts.lock().expect("lock");
            if !h.iter().any(|a| a.id == r.alert.id) {
                h.push(r.alert);
            }
            drop(h);
            let _ = r.stored.send(true);
        }
    });
    let serve = tokio::spawn(async move {
        while let Some(r) = req_rx.recv().await {
            let answer = match r.service {
                Service::Join => Ok(b"pending".to_vec()),
                other => Err(format!("no {} here", other.as_str())),
            };
            let _ = r.reply.send(answer);
        }
    });
    Member {
        handle,
        ledger,
        tasks: vec![task, store, serve],
    }
}

fn join_request() -> Vec<u8> {
    let mut bytes = vec![4u8];
    bytes.extend_from_slice(br#"{"addr":"127.0.0.1:9","name":"stranger"}"#);
    bytes
}

/// Two members that admit each other, a connected, and b holding a's
/// first alert.
async fn pair() -> (Member, Member) {
    let a = member(1, &[1, 2], vec![]).await;
    let a_addr = a.tcp_addr().await;
    let b = member(2, &[1, 2], vec![a_addr]).await;
    let (a_id, b_id) = (a.handle.peer_id(), b.handle.peer_id());
    let end = Instant::now() + WAIT;
    while !(a.connected_to(b_id).await && b.connected_to(a_id).await) {
        assert!(Instant::now() < end, "members did not connect");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Subscriptions travel after connecting; give gossipsub a heartbeat.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let first = alert(1, 1);
    a.raise(&first).await;
    until("the first alert at b", || b.holds(&first.id)).await;
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outsider_gets_a_join_answer_and_nothing_else() {
    let (a, b) = pair().await;
    let a_id = a.handle.peer_id();
    let b_id = b.handle.peer_id();
    let o = outsider(9, 65536);
    o.send(Cmd::Dial(a_id, a.tcp_addr().await));
    until("the outsider connected", || {
        o.seen(|s| s.connected.contains(&a_id))
    })
    .await;

    // It asks for every stored alert, walks Kademlia and asks for a Raft
    // vote, while the members keep raising alerts.
    o.send(Cmd::Sync(a_id));
    o.send(Cmd::Kad);
    o.send(Cmd::Request(a_id, b"\x01vote".to_vec()));
    let second = alert(2, 1);
    b.raise(&second).await;
    let third = alert(1, 2);
    a.raise(&third).await;
    until("honest alerts flowed", || {
        a.holds(&second.id) && b.holds(&third.id)
    })
    .await;
    until("the outsider's queries finished", || {
        o.seen(|s| s.sync_failures >= 1 && s.kad_queries_done >= 1 && !s.answers.is_empty())
    })
    .await;

    // Refused, each counted.
    until("every refusal counted at a", || {
        [
            Reject::OutsiderGossip,
            Reject::OutsiderSync,
            Reject::OutsiderKad,
            Reject::OutsiderOther,
            Reject::OutsiderRequest,
        ]
        .iter()
        .all(|r| a.rejected(*r) >= 1)
    })
    .await;
    o.seen(|s| {
        assert!(
            s.gossip.is_empty(),
            "no alert by gossip: {}",
            s.gossip.len()
        );
        assert!(s.sync_answers.is_empty(), "no sync answer");
        assert!(!s.kad_peers.contains(&b_id), "no member's id by Kademlia");
        assert_eq!(s.identified, 0, "identify told it nothing");
        assert!(!s.connected.contains(&b_id), "no member dialled it");
        assert_eq!(s.answers, vec![(1, b"not an admitted member".to_vec())]);
    });

    // Its join is answered, and then it is disconnected.
    o.send(Cmd::Request(a_id, join_request()));
    until("the join answered", || o.seen(|s| s.answers.len() == 2)).await;
    assert_eq!(o.seen(|s| s.answers[1].clone()), (0, b"pending".to_vec()));
    let answered = Instant::now();
    until("the outsider disconnected", || {
        o.seen(|s| !s.connected.contains(&a_id))
    })
    .await;
    assert!(
        answered.elapsed() < Duration::from_secs(5),
        "{:?}",
        answered.elapsed()
    );
    assert!(!a.connected_to(o.id).await);

    // Alerts still flow, and the outsider never got one.
    let fourth = alert(2, 2);
    b.raise(&fourth).await;
    until("the fourth alert at a", || a.holds(&fourth.id)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(o.seen(|s| s.gossip.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outsider_admitted_later_is_served_and_cut_off_when_removed() {
    let (a, _b) = pair().await;
    let a_id = a.handle.peer_id();
    let a_addr = a.tcp_addr().await;
    let o = outsider(9, 65536);
    o.send(Cmd::Dial(a_id, a_addr.clone()));
    until("the outsider connected", || {
        o.seen(|s| s.connected.contains(&a_id))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    a.raise(&alert(1, 2)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(o.seen(|s| s.gossip.is_empty()), "not admitted: no alert");

    // Admitted (as the Raft membership would do through the handle): on its
    // next connection it is served, gossip and sync alike.
    a.handle
        .set_admitted(admitted(&[1, 2, 9]))
        .await
        .expect("admitted");
    // Its connection is still a joiner's, which ends once its join is
    // answered.
    o.send(Cmd::Request(a_id, join_request()));
    until("the joiner's connection ended", || {
        o.seen(|s| !s.answers.is_empty() && !s.connected.contains(&a_id))
    })
    .await;
    o.send(Cmd::Dial(a_id, a_addr));
    until("the outsider reconnected", || {
        o.seen(|s| s.connected.contains(&a_id))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let fresh = alert(1, 3);
    a.raise(&fresh).await;
    until("the admitted peer got the alert by gossip", || {
        o.seen(|s| s.gossip.contains(&fresh.encode()))
    })
    .await;
    o.send(Cmd::Sync(a_id));
    until("the admitted peer got a sync answer", || {
        o.seen(|s| s.sync_answers.iter().any(|r| r.alerts.len() >= 3))
    })
    .await;

    // Removed: disconnected at once, and no longer served.
    let closed = o.seen(|s| s.closed);
    a.handle
        .set_admitted(admitted(&[1, 2]))
        .await
        .expect("removed");
    until("the removed peer disconnected", || {
        o.seen(|s| s.closed > closed && !s.connected.contains(&a_id))
    })
    .await;
    assert!(!a.connected_to(o.id).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joiners_are_bounded_and_oversized_frames_are_counted() {
    let (a, b) = pair().await;
    let a_id = a.handle.peer_id();
    let a_addr = a.tcp_addr().await;

    // More outsiders than joiner places: the rest are refused, counted.
    let mut crowd = Vec::new();
    for i in 0..MAX_JOINERS + 3 {
        let mut s = swarm_of(100 + i as u8, |_| dummy::Behaviour);
        s.dial(a_addr.clone()).expect("dial");
        crowd.push(tokio::spawn(async move {
            loop {
                let _ = s.select_next_some().await;
            }
        }));
    }
    until("three joiners refused", || {
        a.rejected(Reject::JoinersFull) >= 3
    })
    .await;
    let end = Instant::now() + WAIT;
    loop {
        let peers = a.handle.peers().await.expect("peers").len();
        if peers <= MAX_JOINERS + 1 {
            break;
        }
        assert!(Instant::now() < end, "{peers} peers");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(a.rejected(Reject::JoinersFull), 3);
    for c in crowd {
        c.abort();
    }

    // A member (admitted) whose gossip frame is over the limit: the frame
    // is refused and counted; alerts keep flowing.
    a.handle
        .set_admitted(admitted(&[1, 2, 8]))
        .await
        .expect("admitted");
    let m = outsider(8, 1 << 20);
    let end = Instant::now() + WAIT;
    while !o_connected(&m, a_id) {
        assert!(Instant::now() < end, "the member never connected");
        m.send(Cmd::Dial(a_id, a_addr.clone()));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    m.send(Cmd::Publish(vec![b'{'; 64 << 10]));
    until("the oversized frame counted", || {
        a.rejected(Reject::OversizedFrame) >= 1
    })
    .await;
    let after = alert(2, 1);
    b.raise(&after).await;
    until("alerts still flow", || a.holds(&after.id)).await;
}

fn o_connected(o: &Outsider, peer: PeerId) -> bool {
    o.seen(|s| s.connected.contains(&peer))
}
