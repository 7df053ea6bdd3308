//! The libp2p swarm, run as an actor task behind a [`MeshHandle`].
//!
//! One identity (the node's ed25519 key) and one port per listen address:
//! TCP with noise and yamux, and QUIC on the same UDP port. With a
//! pre-shared network key (libp2p private network) the transport is TCP
//! only, wrapped in the PSK handshake: QUIC cannot carry it, and a peer
//! without the key cannot complete a connection.
//!
//! Alerts travel on one gossipsub topic. Every message is held until it is
//! checked ([`crate::gossip::Validator`]) and the receiver has stored it;
//! only then is it accepted and forwarded, so an alert is never relayed by a
//! node that could lose it. A bad message is rejected (the relaying peer's
//! score drops) and counted by reason.
//!
//! The mesh serves its members only ([`gate`]): a peer whose key is not
//! admitted may ask to join and nothing else, and is disconnected after
//! that ([`members`]). Members tell each other whom they are connected to
//! ([`view`]).
//!
//! Tracing: each connection has a `mesh_connection` span (peer, connection,
//! dialer) from its opening to its close, entered while the actor handles
//! its events; each reconciliation a `sync` span (peer) from the summary of
//! our holdings to the peer's answer.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageId};
use libp2p::request_response::{OutboundRequestId, ResponseChannel};
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, mdns};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

mod exchange;
mod frames;
mod gate;
mod handle;
mod members;
mod swarm;
mod view;

use handle::Command;
pub use handle::{
    InboundRequest, MeshConfig, MeshError, MeshHandle, MeshStats, PeerInfo, Received, Tapped,
};

use gate::{Admitted, GateEvent};
use members::{JOIN_SWEEP, Joiner};
pub use members::{JOIN_WINDOW, MAX_JOINERS};
use swarm::{Behaviour, BehaviourEvent, build_swarm, quic_multiaddr};
pub use swarm::{tcp_multiaddr, tcp_socket};
pub use view::{
    MAX_NAME_CHARS, MAX_VIEW_BYTES, MAX_VIEW_PEERS, PeerView, VIEW_EVERY, VIEW_FRESH, VIEW_WAIT,
    ViewPeer,
};

use crate::alert::Alert;
use crate::gossip::Validator;
use crate::rpc::RpcResponse;
use crate::sync::{AlertLedger, SYNC_BATCH, SyncRequest, SyncResponse};

/// The gossipsub topic of alerts (versioned with the alert format).
pub const ALERT_TOPIC: &str = "/amoskys/alerts/1";
const PROTOCOL_VERSION: &str = "/amoskys/1.0.0";
/// Bootstrap peers that are not connected are dialled again this often.
const REDIAL_EVERY: Duration = Duration::from_secs(5);
const COMMAND_QUEUE: usize = 1024;
/// Received alerts waiting for the receiver to store them.
const MAX_PENDING: usize = 4096;
pub(crate) const SYNC_PROTOCOL: &str = "/amoskys/sync/1";
/// Every connected peer is reconciled with this often (and on connecting).
const SYNC_EVERY: Duration = Duration::from_secs(60);
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a received alert waits for the node to store it before it is
/// not passed on.
const STORE_WAIT: Duration = Duration::from_secs(10);
const KAD_PROTOCOL: &str = "/amoskys/kad/1";
/// A Kademlia walk for more peers runs this often, while fewer than
/// `TARGET_PEERS` are connected.
const KAD_EVERY: Duration = Duration::from_secs(30);
/// Peers found by Kademlia are dialled while fewer than this are connected.
const TARGET_PEERS: usize = 8;

/// Starts the mesh task; verified alerts from peers go to `received`.
pub async fn start(
    cfg: MeshConfig,
    received: mpsc::Sender<Received>,
) -> Result<(MeshHandle, JoinHandle<()>), MeshError> {
    let mut swarm = build_swarm(&cfg)?;
    let topic = IdentTopic::new(ALERT_TOPIC);
    let admitted: Admitted = Arc::new(cfg.validator.admitted.iter().copied().collect());
    swarm.behaviour_mut().members.set_admitted(admitted.clone());
    swarm
        .behaviour_mut()
        .gossipsub()
        .subscribe(&topic)
        .map_err(|e| MeshError::Transport(e.to_string()))?;
    for addr in &cfg.listen {
        let mut addrs = vec![tcp_multiaddr(*addr)];
        if cfg.quic && cfg.psk.is_none() {
            addrs.push(quic_multiaddr(*addr));
        }
        for a in addrs {
            swarm.listen_on(a.clone()).map_err(|e| MeshError::Listen {
                addr: a.to_string(),
                reason: error_chain(&e),
            })?;
        }
    }
    let peer_id = *swarm.local_peer_id();
    let stats = Arc::new(MeshStats::default());
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
    let actor = Actor {
        swarm,
        topic,
        validator: Validator::new(cfg.validator.clone()),
        bootstrap: cfg.bootstrap.clone(),
        received,
        stats: stats.clone(),
        peers: HashMap::new(),
        work: FuturesUnordered::new(),
        ledger: cfg.ledger.clone(),
        requests: cfg.requests.clone(),
        outbound: HashMap::new(),
        tap: cfg.tap.clone(),
        delay: Duration::ZERO,
        admitted,
        joiners: HashMap::new(),
        name: String::new(),
        view_asked: HashMap::new(),
        connections: HashMap::new(),
        syncs: HashMap::new(),
    };
    let task = tokio::spawn(actor.run(rx));
    let views = view::Views::default();
    Ok((
        MeshHandle {
            tx,
            peer_id,
            stats,
            views,
        },
        task,
    ))
}

struct PeerState {
    address: Multiaddr,
    since: Instant,
    rtt: Option<Duration>,
    connections: u32,
}

/// Work finished off the swarm loop.
enum Done {
    /// The receiver stored (or not) a gossiped alert.
    Stored(MessageId, PeerId, bool),
    /// An alert fetched by reconciliation, now stored: gossip it on.
    Forward(Vec<u8>),
    /// Our holdings, to ask a peer for what we lack (in the sync's span).
    Holdings(PeerId, Result<crate::sync::Holdings, String>, tracing::Span),
    /// What a peer lacks, to answer its request.
    Missing(ResponseChannel<SyncResponse>, Result<Vec<Alert>, String>),
    /// The node's answer to a peer's request.
    Reply(ResponseChannel<RpcResponse>, RpcResponse),
    /// Nothing left to do (a delayed hand-over finished).
    Idle,
}

type Work = std::pin::Pin<Box<dyn Future<Output = Done> + Send>>;

struct Actor {
    swarm: Swarm<Behaviour>,
    topic: IdentTopic,
    validator: Validator,
    bootstrap: Vec<Multiaddr>,
    received: mpsc::Sender<Received>,
    stats: Arc<MeshStats>,
    peers: HashMap<PeerId, PeerState>,
    work: FuturesUnordered<Work>,
    ledger: Option<Arc<dyn AlertLedger>>,
    requests: Option<mpsc::Sender<InboundRequest>>,
    outbound: HashMap<OutboundRequestId, oneshot::Sender<Result<Vec<u8>, String>>>,
    tap: Option<mpsc::UnboundedSender<Tapped>>,
    /// Added to every gossip message and request this node receives.
    delay: Duration,
    /// The admitted members' keys (the validator's, shared with the gate).
    admitted: Admitted,
    /// Connections of peers that were not admitted when they connected.
    joiners: HashMap<ConnectionId, Joiner>,
    /// This node's name, in the views it gives.
    name: String,
    /// When each connected member last had our view.
    view_asked: HashMap<PeerId, Instant>,
    /// Each open connection's span, until it closes.
    connections: HashMap<ConnectionId, tracing::Span>,
    /// Each sync request's span, until its answer or failure.
    syncs: HashMap<OutboundRequestId, tracing::Span>,
}

impl Actor {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut redial = tokio::time::interval(REDIAL_EVERY);
        let mut resync = tokio::time::interval(SYNC_EVERY);
        let mut walk = tokio::time::interval(KAD_EVERY);
        let mut sweep = tokio::time::interval(JOIN_SWEEP);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(c) => self.command(c),
                    None => return,
                },
                event = self.swarm.select_next_some() => self.event(event),
                Some(done) = self.work.next(), if !self.work.is_empty() => self.done(done),
                _ = redial.tick() => self.redial(),
                _ = sweep.tick(), if !self.joiners.is_empty() => self.sweep_joiners(),
                _ = walk.tick() => {
                    let short = self.peers.len() < TARGET_PEERS;
                    if let Some(k) = self.swarm.behaviour_mut().kad().filter(|_| short) {
                        let _ = k.bootstrap();
                    }
                }
                _ = resync.tick() => {
                    let members = &self.swarm.behaviour().members;
                    let peers: Vec<PeerId> =
                        self.peers.keys().filter(|p| members.is_open(p)).copied().collect();
                    for p in peers {
                        self.sync_with(p);
                    }
                }
            }
        }
    }

    fn done(&mut self, done: Done) {
        match done {
            Done::Stored(id, from, stored) => {
                let acceptance = if stored {
                    MessageAcceptance::Accept
                } else {
                    MessageAcceptance::Ignore
                };
                self.swarm
                    .behaviour_mut()
                    .gossipsub()
                    .report_message_validation_result(&id, &from, acceptance);
            }
            Done::Forward(bytes) => {
                self.tap(|| Tapped::Gossip(bytes.clone()));
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub()
                    .publish(self.topic.clone(), bytes);
            }
            Done::Holdings(peer, Ok(holdings), span) => {
                // Only over a member's connection (a request to anyone else
                // would dial it).
                if self.swarm.behaviour().members.is_open(&peer) {
                    self.tap(|| Tapped::SyncRequest(holdings.clone()));
                    let id = self
                        .swarm
                        .behaviour_mut()
                        .sync()
                        .send_request(&peer, SyncRequest { holdings });
                    self.syncs.insert(id, span);
                }
            }
            Done::Holdings(_, Err(e), span) => {
                let _in = span.entered();
                tracing::warn!(error = %e, "cannot summarise held alerts");
            }
            Done::Missing(channel, result) => {
                let mut alerts = result.unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "cannot list alerts for a peer");
                    Vec::new()
                });
                let more = alerts.len() > SYNC_BATCH;
                alerts.truncate(SYNC_BATCH);
                let response = SyncResponse {
                    alerts: alerts.iter().map(Alert::encode).collect(),
                    more,
                };
                self.tap(|| Tapped::SyncResponse(response.alerts.clone()));
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .sync()
                    .send_response(channel, response);
            }
            Done::Idle => {}
            Done::Reply(channel, response) => {
                self.tap_response(&response);
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .rpc
                    .send_response(channel, response);
            }
        }
    }

    /// Copies a message to the tap, when there is one.
    fn tap(&self, message: impl FnOnce() -> Tapped) {
        if let Some(t) = &self.tap {
            let _ = t.send(message());
        }
    }

    fn tap_response(&self, r: &RpcResponse) {
        self.tap(|| Tapped::Response {
            service: r.service,
            result: r.result.clone(),
        });
    }

    fn redial(&mut self) {
        let connected: Vec<Multiaddr> = self.peers.values().map(|p| p.address.clone()).collect();
        for addr in self.bootstrap.clone() {
            let known = connected
                .iter()
                .any(|c| c.to_string().starts_with(&addr.to_string()));
            if !known && let Err(e) = self.swarm.dial(addr.clone()) {
                tracing::debug!(%addr, error = %e, "bootstrap dial failed");
            }
        }
    }

    fn command(&mut self, c: Command) {
        match c {
            Command::Publish(bytes, reply) => {
                self.tap(|| Tapped::Gossip(bytes.clone()));
                let r = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub()
                    .publish(self.topic.clone(), bytes);
                let r = match r {
                    Ok(_) => {
                        self.stats.published.fetch_add(1, Ordering::Relaxed);
                        Ok(())
                    }
                    // Alone in the mesh: nothing to send to, not an error;
                    // peers fetch it when they connect.
                    Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => Ok(()),
                    Err(e) => Err(MeshError::Publish(e.to_string())),
                };
                let _ = reply.send(r);
            }
            Command::Peers(reply) => {
                let gossip = self.swarm.behaviour().members.inner().gossipsub.inner();
                let list = self
                    .peers
                    .iter()
                    .map(|(id, p)| PeerInfo {
                        id: id.to_string(),
                        address: p.address.to_string(),
                        latency_ms: p.rtt.map(|d| d.as_secs_f64() * 1e3),
                        score: gossip.peer_score(id),
                        connected_for_secs: p.since.elapsed().as_secs(),
                    })
                    .collect();
                let _ = reply.send(list);
            }
            Command::ListenAddrs(reply) => {
                let _ = reply.send(self.swarm.listeners().cloned().collect());
            }
            Command::Remember(id) => self.validator.remember(&id),
            Command::SetAdmitted(keys) => self.set_admitted(keys),
            Command::SetRetired(keys) => self.validator.set_retired(keys),
            Command::SetName(name) => self.name = name,
            Command::Impair(delay) => self.delay = delay,
            Command::Dial(peer, addr) => {
                if !self.peers.contains_key(&peer) {
                    self.swarm.add_peer_address(peer, addr.clone());
                    if let Err(e) = self.swarm.dial(addr.with_p2p(peer).unwrap_or_else(|a| a)) {
                        tracing::debug!(%peer, error = %e, "dial failed");
                    }
                }
            }
            Command::Block(peers, block) => {
                let list = &mut self.swarm.behaviour_mut().blocked;
                for p in peers {
                    if block {
                        list.block_peer(p);
                    } else {
                        list.unblock_peer(p);
                    }
                }
            }
            Command::Request(peer, request, reply) => {
                self.tap(|| Tapped::Request {
                    service: request.service,
                    body: request.body.clone(),
                });
                let id = self.swarm.behaviour_mut().rpc.send_request(&peer, request);
                self.outbound.insert(id, reply);
            }
        }
    }

    fn event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Members(GateEvent::Inner(e))) => {
                self.member_event(e);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Members(GateEvent::Refused {
                peer,
                protocol,
            })) => self.refused(peer, &protocol),
            SwarmEvent::Behaviour(BehaviourEvent::Rpc(e)) => self.rpc_event(e),
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                // Dialled whether admitted or not: this is how a new node on
                // the LAN reaches the members to ask to join.
                for (peer, addr) in found {
                    if !self.peers.contains_key(&peer) {
                        let _ = self.swarm.dial(addr);
                    }
                }
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => {
                let span = tracing::info_span!(
                    "mesh_connection",
                    peer = %peer_id,
                    connection = %connection_id,
                    dialer = endpoint.is_dialer()
                );
                let _in = span.clone().entered();
                self.connections.insert(connection_id, span);
                let dialled = endpoint
                    .is_dialer()
                    .then(|| endpoint.get_remote_address().clone());
                self.joined(peer_id, connection_id, dialled);
                let p = self.peers.entry(peer_id).or_insert(PeerState {
                    address: endpoint.get_remote_address().clone(),
                    since: Instant::now(),
                    rtt: None,
                    connections: 0,
                });
                p.connections += 1;
                if !self.joiners.contains_key(&connection_id) {
                    self.sync_with(peer_id);
                }
                self.stats
                    .connected_peers
                    .store(self.peers.len() as u64, Ordering::Relaxed);
                tracing::debug!(peer = %peer_id, "peer connected");
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                cause,
                ..
            } => {
                // The connection's span ends here.
                let _in = self
                    .connections
                    .remove(&connection_id)
                    .map(tracing::Span::entered);
                tracing::debug!(peer = %peer_id, cause = ?cause, "connection closed");
                self.joiners.remove(&connection_id);
                if let Some(p) = self.peers.get_mut(&peer_id) {
                    p.connections = p.connections.saturating_sub(1);
                    if p.connections == 0 {
                        self.peers.remove(&peer_id);
                        self.view_asked.remove(&peer_id);
                    }
                }
                self.stats
                    .connected_peers
                    .store(self.peers.len() as u64, Ordering::Relaxed);
            }
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "mesh listening");
            }
            _ => {}
        }
    }
}

/// The ed25519 public key inside an ed25519 PeerId (other key types have
/// none).
pub fn ed25519_key(peer: &PeerId) -> Option<[u8; 32]> {
    let key = libp2p::identity::PublicKey::try_decode_protobuf(peer.as_ref().digest()).ok()?;
    Some(key.try_into_ed25519().ok()?.to_bytes())
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// An error with every cause behind it: libp2p's transport errors often say
/// nothing themselves and keep the reason ("address in use") in a source.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        let text = err.to_string();
        if !text.trim().is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = err.source();
    }
    if parts.is_empty() {
        format!("{e:?}")
    } else {
        parts.join(": ")
    }
}
