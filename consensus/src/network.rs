//! Raft RPCs over the mesh: each RPC is one [`Service::Raft`] request to the
//! target's peer id, JSON encoded. The same service carries what a follower
//! forwards to the leader (proposals, membership changes, read index).
//!
//! [`Cut`] drops traffic to and from chosen members at this layer; tests,
//! simulations and operators' drills use it to partition a cluster whose
//! nodes share one host.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use amoskys_mesh::{MeshHandle, Service};
use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, LogId};
use serde::{Deserialize, Serialize};
use tracing::Instrument;

use crate::cluster::{Quorum, WriteError};
use crate::state::{Command, Outcome};
use crate::{NodeId, TypeConfig};

/// What one member asks another.
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftRequest {
    Append(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    Snapshot(InstallSnapshotRequest<TypeConfig>),
    /// A write forwarded to the leader.
    Propose(Command),
    /// A membership change forwarded to the leader.
    Admin(AdminOp),
    /// The leader's committed index, for a linearizable read elsewhere.
    ReadIndex,
    /// The leader's view of its quorum, for a member's status.
    Quorum,
    /// Would the receiver vote for the sender, whose last log id this is?
    /// Changes no term (`cluster/prevote.rs`).
    PreVote {
        last_log: Option<LogId<NodeId>>,
    },
}

impl RaftRequest {
    /// The request's kind, as tracing spans name it.
    pub fn kind(&self) -> &'static str {
        match self {
            RaftRequest::Append(_) => "append",
            RaftRequest::Vote(_) => "vote",
            RaftRequest::Snapshot(_) => "snapshot",
            RaftRequest::Propose(_) => "propose",
            RaftRequest::Admin(_) => "admin",
            RaftRequest::ReadIndex => "read_index",
            RaftRequest::Quorum => "quorum",
            RaftRequest::PreVote { .. } => "pre_vote",
        }
    }
}

/// Membership changes only the leader makes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum AdminOp {
    Admit {
        node: NodeId,
        addr: String,
        by: NodeId,
    },
    Remove {
        node: NodeId,
        by: NodeId,
    },
    /// A member's hand-over to a new key, then its successor as a learner.
    Rotate {
        handover: Box<crate::rotation::Handover>,
        addr: String,
    },
}

/// The answer to a [`RaftRequest`] of the same kind.
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftReply {
    Append(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    Snapshot(Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>),
    Proposed(Result<(LogId<NodeId>, Outcome), WriteError>),
    Admin(Result<(), WriteError>),
    ReadIndex(Result<Option<LogId<NodeId>>, WriteError>),
    Quorum(Quorum),
    PreVote(bool),
}

/// Raft traffic this node drops, for tests, simulations and drills: members
/// cut off both ways, members it cannot reach but still answers (a one-way
/// partition), and a share of its own calls lost at random (a lossy link).
#[derive(Debug, Clone, Default)]
pub struct Cut(Arc<Mutex<CutState>>);

#[derive(Debug, Default)]
struct CutState {
    both: HashSet<NodeId>,
    outbound: HashSet<NodeId>,
    /// Calls lost per thousand, and the seeded draw that picks them.
    loss_permille: u32,
    draw: Option<rand::rngs::SmallRng>,
}

impl Cut {
    fn state(&self) -> std::sync::MutexGuard<'_, CutState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Drops all Raft traffic with `nodes` until [`Cut::heal`].
    pub fn isolate(&self, nodes: impl IntoIterator<Item = NodeId>) {
        self.state().both.extend(nodes);
    }

    /// Drops this node's calls to `nodes` while still answering theirs.
    pub fn mute_to(&self, nodes: impl IntoIterator<Item = NodeId>) {
        self.state().outbound.extend(nodes);
    }

    /// Loses `permille` of this node's calls, drawn from `seed` (0 stops it).
    pub fn set_loss(&self, permille: u32, seed: u64) {
        use rand::SeedableRng;
        let mut s = self.state();
        s.loss_permille = permille.min(1000);
        s.draw = Some(rand::rngs::SmallRng::seed_from_u64(seed));
    }

    /// Ends every cut, mute and loss.
    pub fn heal(&self) {
        *self.state() = CutState::default();
    }

    /// Whether traffic with `node` is cut both ways.
    pub fn blocks(&self, node: &NodeId) -> bool {
        self.state().both.contains(node)
    }

    /// Whether this node's next call to `node` is dropped.
    pub fn drops_call(&self, node: &NodeId) -> bool {
        let mut s = self.state();
        if s.both.contains(node) || s.outbound.contains(node) {
            return true;
        }
        let permille = s.loss_permille;
        match s.draw.as_mut() {
            Some(draw) if permille > 0 => rand::RngExt::random_range(draw, 0..1000u32) < permille,
            _ => false,
        }
    }
}

/// When each member last answered one of our RPCs or sent us one.
#[derive(Debug, Clone, Default)]
pub struct Health(Arc<Mutex<HashMap<NodeId, Instant>>>);

impl Health {
    pub(crate) fn record(&self, node: NodeId) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(node, Instant::now());
    }

    /// How long ago `node` last answered, if ever.
    pub fn silent_for(&self, node: &NodeId) -> Option<Duration> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(node)
            .map(Instant::elapsed)
    }
}

/// Why a call to a member failed, before Raft sees it.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("{0} is cut off")]
    Cut(NodeId),
    #[error("{0} has no ed25519 peer id")]
    NoPeer(NodeId),
    #[error("this node has no mesh")]
    NoMesh,
    #[error("request of {0} bytes is over the Raft limit")]
    TooLarge(usize),
    #[error("cannot encode the request: {0}")]
    Encode(String),
    #[error("malformed answer: {0}")]
    Decode(String),
    #[error("{0}")]
    Mesh(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// Sends [`RaftRequest`]s to members over the mesh.
#[derive(Debug, Clone)]
pub struct Transport {
    mesh: Option<MeshHandle>,
    pub(crate) cut: Cut,
    pub(crate) health: Health,
}

impl Transport {
    pub fn new(mesh: Option<MeshHandle>) -> Self {
        Self {
            mesh,
            cut: Cut::default(),
            health: Health::default(),
        }
    }

    pub fn mesh(&self) -> Option<&MeshHandle> {
        self.mesh.as_ref()
    }

    /// Dials `target` where its membership record says it listens, after a
    /// call found no connection to it, so the next call can reach it (two
    /// members may have been connected only through a third that is gone).
    pub(crate) async fn dial_member(&self, target: NodeId, addrs: &[libp2p::Multiaddr]) {
        if let (Some(mesh), Some(peer)) = (self.mesh(), target.peer_id()) {
            for a in addrs {
                let _ = mesh.dial(peer, a.clone()).await;
            }
        }
    }

    /// One request, one answer, within `ttl`, in a `raft_rpc` span
    /// (debug level: a leader sends a heartbeat to every member each
    /// heartbeat interval).
    pub async fn call(
        &self,
        target: NodeId,
        req: &RaftRequest,
        ttl: Duration,
    ) -> Result<RaftReply, CallError> {
        let span = tracing::debug_span!("raft_rpc", kind = req.kind(), %target);
        self.call_in_span(target, req, ttl).instrument(span).await
    }

    async fn call_in_span(
        &self,
        target: NodeId,
        req: &RaftRequest,
        ttl: Duration,
    ) -> Result<RaftReply, CallError> {
        if self.cut.drops_call(&target) {
            return Err(CallError::Cut(target));
        }
        let mesh = self.mesh.as_ref().ok_or(CallError::NoMesh)?;
        let peer = target.peer_id().ok_or(CallError::NoPeer(target))?;
        let body = serde_json::to_vec(req).map_err(|e| CallError::Encode(e.to_string()))?;
        if body.len() > Service::Raft.max_request() {
            return Err(CallError::TooLarge(body.len()));
        }
        let answer = tokio::time::timeout(ttl, mesh.request(peer, Service::Raft, body))
            .await
            .map_err(|_| CallError::Timeout(ttl))?
            .map_err(|e| CallError::Mesh(e.to_string()))?;
        if self.cut.blocks(&target) {
            return Err(CallError::Cut(target));
        }
        self.health.record(target);
        serde_json::from_slice(&answer).map_err(|e| CallError::Decode(e.to_string()))
    }
}

impl RaftNetworkFactory<TypeConfig> for Transport {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        PeerClient {
            target,
            transport: self.clone(),
            addrs: dialable(&node.addr),
        }
    }
}

/// The Raft connection to one member.
#[derive(Debug)]
pub struct PeerClient {
    target: NodeId,
    transport: Transport,
    /// Where the member said it listens (from the membership), to dial it
    /// when no connection is left (after a partition heals).
    addrs: Vec<libp2p::Multiaddr>,
}

/// The TCP addresses in a member's `host:port[,host:port]` that can be
/// dialled (not the unspecified address, not port 0).
pub(crate) fn dialable(addr: &str) -> Vec<libp2p::Multiaddr> {
    addr.split(',')
        .filter_map(|a| a.trim().parse::<std::net::SocketAddr>().ok())
        .filter(|a| !a.ip().is_unspecified() && a.port() != 0)
        .map(amoskys_mesh::net::tcp_multiaddr)
        .collect()
}

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

impl PeerClient {
    async fn send<E: std::error::Error>(
        &self,
        req: RaftRequest,
        option: &RPCOption,
        entries: u64,
    ) -> Result<RaftReply, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>> {
        match self
            .transport
            .call(self.target, &req, option.hard_ttl())
            .await
        {
            Ok(reply) => Ok(reply),
            Err(e @ CallError::Mesh(_)) => {
                self.transport.dial_member(self.target, &self.addrs).await;
                Err(RPCError::Unreachable(Unreachable::new(&e)))
            }
            Err(CallError::TooLarge(_)) => Err(RPCError::PayloadTooLarge(
                PayloadTooLarge::new_entries_hint((entries / 2).max(1)),
            )),
            Err(e @ (CallError::Decode(_) | CallError::Encode(_))) => {
                Err(RPCError::Network(NetworkError::new(&e)))
            }
            Err(e) => Err(RPCError::Unreachable(Unreachable::new(&e))),
        }
    }

    fn unexpected<E: std::error::Error>(
        &self,
    ) -> RPCError<NodeId, BasicNode, RaftError<NodeId, E>> {
        RPCError::Network(NetworkError::new(&CallError::Decode(
            "answer of another kind".into(),
        )))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        let n = rpc.entries.len() as u64;
        match self.send(RaftRequest::Append(rpc), &option, n).await? {
            RaftReply::Append(r) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(self.unexpected()),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        match self.send(RaftRequest::Snapshot(rpc), &option, 1).await? {
            RaftReply::Snapshot(r) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(self.unexpected()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        match self.send(RaftRequest::Vote(rpc), &option, 1).await? {
            RaftReply::Vote(r) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(self.unexpected()),
        }
    }
}
