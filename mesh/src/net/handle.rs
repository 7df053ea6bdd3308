//! The mesh's public types and the typed handle that sends commands to
//! the swarm task.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use libp2p::identity::Keypair;
use libp2p::{Multiaddr, PeerId};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::alert::Alert;
use crate::gossip::{Reject, ValidatorConfig};
use crate::rpc::{RpcRequest, Service};
use crate::sync::AlertLedger;

/// How the mesh runs.
#[derive(Debug, Clone)]
pub struct MeshConfig {
    pub keypair: Keypair,
    /// Each address listens on TCP, and on QUIC (UDP, same port) when
    /// `quic` is on and no pre-shared key is set.
    pub listen: Vec<SocketAddr>,
    /// Peers dialled at start and whenever they are not connected (the
    /// air-gapped case needs nothing else).
    pub bootstrap: Vec<Multiaddr>,
    /// Find peers on the local network by multicast DNS.
    pub mdns: bool,
    /// Find peers of peers through a Kademlia DHT (for meshes larger than a
    /// bootstrap list).
    pub kademlia: bool,
    /// Listen on QUIC beside TCP (ignored with a pre-shared key).
    pub quic: bool,
    /// Closes the mesh to peers without this key.
    pub psk: Option<[u8; 32]>,
    pub validator: ValidatorConfig,
    /// What this node holds, for reconciliation; without it the node
    /// neither asks nor answers.
    pub ledger: Option<Arc<dyn AlertLedger>>,
    /// Where requests from admitted peers go ([`crate::rpc`]); without it
    /// every request is answered with an error.
    pub requests: Option<mpsc::Sender<InboundRequest>>,
    /// Gets a copy of every application message this node puts on the
    /// wire (tests and labs that prove what crosses between nodes).
    pub tap: Option<mpsc::UnboundedSender<Tapped>>,
}

impl MeshConfig {
    /// A mesh on an ephemeral loopback port that dials no one and finds no
    /// one by itself, for tests, labs and simulations: mDNS and Kademlia
    /// off, QUIC on, no network key, default validation, no ledger, request
    /// handler or tap. Set the fields that differ.
    pub fn loopback(keypair: Keypair) -> MeshConfig {
        MeshConfig {
            keypair,
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
            bootstrap: Vec::new(),
            mdns: false,
            kademlia: false,
            quic: true,
            psk: None,
            validator: ValidatorConfig::default(),
            ledger: None,
            requests: None,
            tap: None,
        }
    }
}

/// A copy of a message this node sent. Gossipsub also relays other
/// nodes' alert messages unchanged and sends control messages that carry
/// only message ids; libp2p's identify, ping and Kademlia carry addresses
/// and keys.
#[derive(Debug, Clone)]
pub enum Tapped {
    /// An alert published (or republished after reconciliation).
    Gossip(Vec<u8>),
    /// What this node holds, sent to reconcile.
    SyncRequest(crate::sync::Holdings),
    /// Alerts sent to a peer that lacked them.
    SyncResponse(Vec<Vec<u8>>),
    Request {
        service: Service,
        body: Vec<u8>,
    },
    Response {
        service: Service,
        result: Result<Vec<u8>, String>,
    },
}

/// A request from an admitted peer. Answer on `reply` within the service's
/// timeout.
#[derive(Debug)]
pub struct InboundRequest {
    pub peer: PeerId,
    pub service: Service,
    pub body: Vec<u8>,
    pub reply: oneshot::Sender<Result<Vec<u8>, String>>,
}

/// An alert received from the mesh, verified, to be stored. Answer `true`
/// once it is stored (it is then forwarded), `false` if it could not be.
#[derive(Debug)]
pub struct Received {
    pub alert: Alert,
    /// The peer that relayed it (not necessarily its origin).
    pub from: PeerId,
    pub stored: oneshot::Sender<bool>,
}

/// Counters of the mesh, read by the node's metrics.
#[derive(Debug, Default)]
pub struct MeshStats {
    pub published: AtomicU64,
    pub received: AtomicU64,
    /// Alerts fetched by reconciliation.
    pub synced: AtomicU64,
    pub connected_peers: AtomicU64,
    rejected: [AtomicU64; Reject::ALL.len()],
}

impl MeshStats {
    pub fn rejected(&self, reason: Reject) -> u64 {
        self.rejected[reason as usize].load(Ordering::Relaxed)
    }

    pub(super) fn reject(&self, reason: Reject) {
        self.rejected[reason as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// A connected peer, for `GET /api/v1/peers` and `GET /api/v1/node`.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct PeerInfo {
    pub id: String,
    pub address: String,
    /// Last ping round trip, milliseconds.
    pub latency_ms: Option<f64>,
    /// Gossipsub peer score.
    pub score: Option<f64>,
    pub connected_for_secs: u64,
}

/// Why the mesh could not start or a command failed.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    #[error("cannot build the transport: {0}")]
    Transport(String),
    #[error(
        "cannot listen on {addr}: {reason} (mesh.listen: is another node or program using this port?)"
    )]
    Listen { addr: String, reason: String },
    #[error("cannot publish: {0}")]
    Publish(String),
    #[error("the mesh has stopped")]
    Stopped,
    #[error("{service} request to {peer} failed: {reason}")]
    Request {
        service: &'static str,
        peer: PeerId,
        reason: String,
    },
}

pub(super) enum Command {
    Publish(Vec<u8>, oneshot::Sender<Result<(), MeshError>>),
    Peers(oneshot::Sender<Vec<PeerInfo>>),
    ListenAddrs(oneshot::Sender<Vec<Multiaddr>>),
    Remember(String),
    SetAdmitted(Vec<[u8; 32]>),
    SetRetired(Vec<([u8; 32], u64)>),
    SetName(String),
    Block(Vec<PeerId>, bool),
    Dial(PeerId, Multiaddr),
    Impair(std::time::Duration),
    Request(PeerId, RpcRequest, oneshot::Sender<Result<Vec<u8>, String>>),
}

/// The typed handle to the mesh task. Cloning it is cheap; the task ends
/// when every handle is dropped.
#[derive(Debug, Clone)]
pub struct MeshHandle {
    pub(super) tx: mpsc::Sender<Command>,
    pub(super) peer_id: PeerId,
    pub(super) stats: Arc<MeshStats>,
    /// Members' views this node asked for ([`super::view`]).
    pub(super) views: super::view::Views,
}

impl MeshHandle {
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    pub fn stats(&self) -> &Arc<MeshStats> {
        &self.stats
    }

    /// Gossips one of our own alerts.
    pub async fn publish(&self, alert: &Alert) -> Result<(), MeshError> {
        self.send(Command::Remember(alert.id.clone())).await?;
        self.publish_bytes(alert.encode()).await
    }

    /// Gossips `bytes` as they are. Receivers validate everything; this is
    /// how tests and tools put malformed messages on the wire.
    pub async fn publish_bytes(&self, bytes: Vec<u8>) -> Result<(), MeshError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Publish(bytes, tx)).await?;
        rx.await.map_err(|_| MeshError::Stopped)?
    }

    /// Sends a request to `peer` and waits for its answer, at most the
    /// service's timeout.
    pub async fn request(
        &self,
        peer: PeerId,
        service: Service,
        body: Vec<u8>,
    ) -> Result<Vec<u8>, MeshError> {
        let fail = |reason: String| MeshError::Request {
            service: service.as_str(),
            peer,
            reason,
        };
        let (tx, rx) = oneshot::channel();
        self.send(Command::Request(peer, RpcRequest { service, body }, tx))
            .await?;
        match tokio::time::timeout(service.timeout(), rx).await {
            Ok(Ok(Ok(body))) => Ok(body),
            Ok(Ok(Err(reason))) => Err(fail(reason)),
            Ok(Err(_)) => Err(MeshError::Stopped),
            Err(_) => Err(fail(format!("no answer within {:?}", service.timeout()))),
        }
    }

    /// Replaces the admitted members' keys (from the replicated
    /// membership).
    pub async fn set_admitted(&self, keys: Vec<[u8; 32]>) -> Result<(), MeshError> {
        self.send(Command::SetAdmitted(keys)).await
    }

    /// Replaces the retired node keys and the last alert sequence number
    /// each signed (see [`crate::gossip::Validator::set_retired`]).
    pub async fn set_retired(&self, keys: Vec<([u8; 32], u64)>) -> Result<(), MeshError> {
        self.send(Command::SetRetired(keys)).await
    }

    /// Closes every connection with `peers` and refuses new ones
    /// (`block = true`), or allows them again.
    pub async fn block(&self, peers: Vec<PeerId>, block: bool) -> Result<(), MeshError> {
        self.send(Command::Block(peers, block)).await
    }

    /// Dials `peer` at `addr` unless it is connected (a member whose
    /// address the caller knows, e.g. from the Raft membership).
    pub async fn dial(&self, peer: PeerId, addr: Multiaddr) -> Result<(), MeshError> {
        self.send(Command::Dial(peer, addr)).await
    }

    /// Makes this node's links slow: every gossip message and request it
    /// receives waits `delay` before it is handled (and forwarded), and
    /// every answer it gives waits as long. For labs and simulations;
    /// `Duration::ZERO` lifts it.
    pub async fn impair(&self, delay: std::time::Duration) -> Result<(), MeshError> {
        self.send(Command::Impair(delay)).await
    }

    /// Connected peers.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, MeshError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Peers(tx)).await?;
        rx.await.map_err(|_| MeshError::Stopped)
    }

    /// Addresses the mesh listens on (ports resolved).
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, MeshError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::ListenAddrs(tx)).await?;
        rx.await.map_err(|_| MeshError::Stopped)
    }

    pub(super) async fn send(&self, c: Command) -> Result<(), MeshError> {
        self.tx.send(c).await.map_err(|_| MeshError::Stopped)
    }
}
