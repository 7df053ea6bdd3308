//! An outsider for the mesh's tests, written as a plain rust-libp2p swarm
//! with default settings: its own gossipsub, identify, ping, Kademlia on
//! `/amoskys/kad/1`, the sync protocol over libp2p's CBOR codec and the
//! request protocol spoken byte by byte. None of the mesh's swarm code.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use amoskys_mesh::Holdings;
use amoskys_mesh::net::ALERT_TOPIC;
use amoskys_mesh::sync::{SyncRequest, SyncResponse};
use futures::prelude::*;
use libp2p::identity::Keypair;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, gossipsub, identify, kad, noise, ping, tcp, yamux,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub fn keypair(seed: u8) -> Keypair {
    Keypair::ed25519_from_bytes([seed; 32]).expect("ed25519 key")
}

/// The request protocol on the wire: a service byte and the body; the
/// answer is the service byte, a status byte (0 ok) and the body.
#[derive(Debug, Clone, Default)]
pub struct RawCodec;

async fn read_all<T: AsyncRead + Unpin + Send>(io: &mut T) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    io.take(1 << 20).read_to_end(&mut buf).await?;
    Ok(buf)
}

impl request_response::Codec for RawCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<Vec<u8>> {
        read_all(io).await
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<Vec<u8>> {
        read_all(io).await
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Vec<u8>,
    ) -> std::io::Result<()> {
        io.write_all(&req).await?;
        io.close().await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Vec<u8>,
    ) -> std::io::Result<()> {
        io.write_all(&res).await?;
        io.close().await
    }
}

#[derive(NetworkBehaviour)]
struct Stranger {
    gossipsub: gossipsub::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    kad: kad::Behaviour<kad::store::MemoryStore>,
    sync: request_response::cbor::Behaviour<SyncRequest, SyncResponse>,
    rpc: request_response::Behaviour<RawCodec>,
}

/// What the outsider saw.
#[derive(Debug, Default)]
pub struct Seen {
    pub gossip: Vec<Vec<u8>>,
    pub sync_answers: Vec<SyncResponse>,
    pub sync_failures: usize,
    /// Peers Kademlia told it about (query results and routing table).
    pub kad_peers: HashSet<PeerId>,
    pub kad_queries_done: usize,
    pub identified: usize,
    /// Answers to requests: status byte and body.
    pub answers: Vec<(u8, Vec<u8>)>,
    pub connected: HashSet<PeerId>,
    pub closed: usize,
}

pub enum Cmd {
    Dial(PeerId, Multiaddr),
    Sync(PeerId),
    Kad,
    Request(PeerId, Vec<u8>),
    Publish(Vec<u8>),
}

pub struct Outsider {
    pub id: PeerId,
    tx: mpsc::UnboundedSender<Cmd>,
    seen: Arc<Mutex<Seen>>,
    task: JoinHandle<()>,
}

impl Drop for Outsider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Outsider {
    pub fn send(&self, c: Cmd) {
        self.tx.send(c).expect("outsider runs");
    }

    pub fn seen<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&self.seen.lock().expect("lock"))
    }
}

pub fn swarm_of<B: NetworkBehaviour>(seed: u8, behaviour: impl FnOnce(&Keypair) -> B) -> Swarm<B> {
    libp2p::SwarmBuilder::with_existing_identity(keypair(seed))
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .expect("tcp")
        .with_behaviour(|k| behaviour(k))
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build()
}

/// An outsider with default settings; `frame` raises its gossip frame
/// limit (to send frames the mesh refuses).
pub fn outsider(seed: u8, frame: usize) -> Outsider {
    let mut swarm = swarm_of(seed, |k| {
        let id = k.public().to_peer_id();
        let gossip_cfg = gossipsub::ConfigBuilder::default()
            .max_transmit_size(frame)
            .build()
            .expect("gossipsub config");
        Stranger {
            gossipsub: gossipsub::Behaviour::new(
                gossipsub::MessageAuthenticity::Signed(k.clone()),
                gossip_cfg,
            )
            .expect("gossipsub"),
            identify: identify::Behaviour::new(identify::Config::new(
                "/amoskys/1.0.0".into(),
                k.public(),
            )),
            ping: ping::Behaviour::default(),
            kad: kad::Behaviour::with_config(
                id,
                kad::store::MemoryStore::new(id),
                kad::Config::new(StreamProtocol::new("/amoskys/kad/1")),
            ),
            sync: request_response::cbor::Behaviour::new(
                [(
                    StreamProtocol::new("/amoskys/sync/1"),
                    ProtocolSupport::Full,
                )],
                request_response::Config::default().with_request_timeout(Duration::from_secs(5)),
            ),
            rpc: request_response::Behaviour::new(
                [(StreamProtocol::new("/amoskys/rpc/1"), ProtocolSupport::Full)],
                request_response::Config::default().with_request_timeout(Duration::from_secs(5)),
            ),
        }
    });
    let topic = gossipsub::IdentTopic::new(ALERT_TOPIC);
    swarm
        .behaviour_mut()
        .gossipsub
        .subscribe(&topic)
        .expect("subscribe");
    let id = *swarm.local_peer_id();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (tx, mut rx) = mpsc::unbounded_channel::<Cmd>();
    let record = seen.clone();
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                cmd = rx.recv() => {
                    let Some(cmd) = cmd else { return };
                    let b = swarm.behaviour_mut();
                    match cmd {
                        Cmd::Dial(peer, addr) => {
                            b.kad.add_address(&peer, addr.clone());
                            let _ = swarm.dial(addr);
                        }
                        Cmd::Sync(peer) => {
                            let _ = b.sync.send_request(&peer, SyncRequest { holdings: Holdings::default() });
                        }
                        Cmd::Kad => {
                            let _ = b.kad.get_closest_peers(PeerId::random());
                        }
                        Cmd::Request(peer, bytes) => {
                            let _ = b.rpc.send_request(&peer, bytes);
                        }
                        Cmd::Publish(bytes) => {
                            let _ = b.gossipsub.publish(topic.clone(), bytes);
                        }
                    }
                }
                event = swarm.select_next_some() => {
                    let mut s = record.lock().expect("lock");
                    match event {
                        SwarmEvent::Behaviour(StrangerEvent::Gossipsub(gossipsub::Event::Message { message, .. })) => {
                            s.gossip.push(message.data);
                        }
                        SwarmEvent::Behaviour(StrangerEvent::Sync(request_response::Event::Message {
                            message: request_response::Message::Response { response, .. }, ..
                        })) => s.sync_answers.push(response),
                        SwarmEvent::Behaviour(StrangerEvent::Sync(request_response::Event::OutboundFailure { .. })) => {
                            s.sync_failures += 1;
                        }
                        SwarmEvent::Behaviour(StrangerEvent::Rpc(request_response::Event::Message {
                            message: request_response::Message::Response { response, .. }, ..
                        })) => {
                            let status = response.get(1).copied().unwrap_or(u8::MAX);
                            s.answers.push((status, response.get(2..).unwrap_or_default().to_vec()));
                        }
                        SwarmEvent::Behaviour(StrangerEvent::Kad(kad::Event::OutboundQueryProgressed {
                            result: kad::QueryResult::GetClosestPeers(r), step, ..
                        })) => {
                            let peers = match r {
                                Ok(ok) => ok.peers,
                                Err(kad::GetClosestPeersError::Timeout { peers, .. }) => peers,
                            };
                            s.kad_peers.extend(peers.into_iter().map(|p| p.peer_id));
                            if step.last {
                                s.kad_queries_done += 1;
                            }
                        }
                        SwarmEvent::Behaviour(StrangerEvent::Kad(kad::Event::RoutingUpdated { peer, .. })) => {
                            s.kad_peers.insert(peer);
                        }
                        SwarmEvent::Behaviour(StrangerEvent::Identify(identify::Event::Received { .. })) => {
                            s.identified += 1;
                        }
                        SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                            s.connected.insert(peer_id);
                        }
                        SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => {
                            s.connected.remove(&peer_id);
                            s.closed += 1;
                        }
                        _ => {}
                    }
                }
            }
        }
    });
    Outsider { id, tx, seen, task }
}
