//! A running Raft member and what operators and the node do with it.
//!
//! Writes go to the leader: a follower forwards them over the mesh and
//! returns the leader's answer. Membership changes too. A read can be
//! linearizable: the leader confirms its leadership with a quorum and names
//! its commit index, and the reader waits until it has applied that index.
//!
//! Requests are checked against the Raft membership before Raft sees them:
//! only voters may ask for votes, only members may replicate to us (unless
//! we are still joining and know no members), propose or change membership.
//! With `[governance] approvals` above 1, the leader also refuses a
//! governed change another member forwards as a plain write
//! ([`governance::refuse_direct`]).
//!
//! A write waits at most [`Cluster::write_budget`] (three election
//! timeouts); a leader that has lost its quorum refuses it within one
//! (see [`Quorum`]).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use libp2p_identity::PeerId;
use openraft::{BasicNode, SnapshotPolicy};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::governance;
use crate::network::{AdminOp, Cut, RaftReply, RaftRequest, Transport};
use crate::store::{self, Applied, Database};
use crate::{NodeId, Raft};

mod join;
mod leader;
mod prevote;
mod quorum;
mod route;
mod telemetry;
pub use join::{JoinReply, JoinRequest, PendingJoin};
pub use leader::WriteError;
pub use quorum::Quorum;
pub use telemetry::RaftTelemetry;

/// Timing and identity of a member.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    pub id: NodeId,
    /// The node's name, shown to operators with its join request.
    pub name: String,
    /// Where peers reach this node (informational; the mesh routes by peer
    /// id).
    pub addr: String,
    pub heartbeat: Duration,
    /// Election timeout, randomised between the two.
    pub election_timeout: (Duration, Duration),
    /// A snapshot is built after this many entries since the last one.
    pub snapshot_every: u64,
    /// Entries kept behind a snapshot for followers that lag a little.
    pub keep_logs: u64,
}

impl ClusterSettings {
    pub fn new(id: NodeId, addr: String) -> Self {
        Self {
            id,
            name: String::new(),
            addr,
            heartbeat: Duration::from_millis(100),
            election_timeout: (Duration::from_millis(500), Duration::from_millis(1000)),
            snapshot_every: 5_000,
            keep_logs: 1_000,
        }
    }
}

/// How the leader manages the voter set (from the replicated policy).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MembershipPolicy {
    /// Voters the cluster keeps when it has enough members; the rest are
    /// learners.
    pub voters: usize,
    /// Replace a voter that stopped answering with a caught-up learner.
    pub auto_promote: bool,
    /// How long a voter may be silent before it is replaced.
    pub voter_down_secs: u64,
}

impl Default for MembershipPolicy {
    fn default() -> Self {
        Self {
            voters: 3,
            auto_promote: true,
            voter_down_secs: 10,
        }
    }
}

/// A member's view of the cluster, for `amoskys cluster status`.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterStatus {
    pub id: String,
    pub initialized: bool,
    pub state: String,
    pub term: u64,
    pub leader: Option<String>,
    pub voters: Vec<String>,
    pub learners: Vec<String>,
    pub last_log_index: Option<u64>,
    pub last_applied: Option<u64>,
    /// Whether writes can commit (this node's view; the API asks the
    /// leader, see [`Cluster::quorum`]).
    pub quorum: Quorum,
    /// Nodes that asked to join and wait for an operator.
    pub pending: Vec<PendingJoin>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot open the Raft storage: {0}")]
    Storage(String),
    #[error("no leader: the cluster is not initialised or is electing one ({0}); try again")]
    NoLeader(String),
    #[error(
        "quorum lost: {} of {} voters reachable ({} needed); {}; start or reconnect \
         the missing voters to restore it",
        quorum.reachable, quorum.voters, quorum.needed,
        if *read { "a consistent read needs it" } else { "the write was not committed" }
    )]
    QuorumLost { quorum: Quorum, read: bool },
    #[error(
        "the write was not confirmed within {0:?}; it may still commit: read the state \
         before trying again"
    )]
    Timeout(Duration),
    #[error("the leader refused: {0}")]
    Rejected(String),
    #[error("{0}")]
    Invalid(String),
    #[error("raft: {0}")]
    Raft(String),
}

/// One member of the cluster.
pub struct Cluster {
    raft: Raft,
    settings: ClusterSettings,
    transport: Transport,
    applied: watch::Receiver<Arc<Applied>>,
    audit: store::AuditReader,
    policy: Arc<Mutex<MembershipPolicy>>,
    /// `[governance] approvals` of the policy in force (see
    /// [`Cluster::set_approvals`]).
    approvals: Arc<AtomicU32>,
    allow: Arc<Mutex<HashSet<NodeId>>>,
    pending: Arc<Mutex<BTreeMap<NodeId, PendingJoin>>>,
    /// This node's hand-over from its previous key, until committed.
    handover: Mutex<Option<crate::rotation::Handover>>,
    steward: JoinHandle<()>,
    /// The election timer, with pre-vote ([`prevote`]).
    elector: prevote::Elector,
    timer: JoinHandle<()>,
    /// Leader changes and the leader's commit index, for [`Cluster::telemetry`].
    counters: Arc<telemetry::Counters>,
    watcher: JoinHandle<()>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("id", &self.settings.id)
            .finish()
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl Cluster {
    /// Opens the Raft storage in `db` and starts the member. RPCs go over
    /// `mesh`; without one the node can only be a cluster of one.
    pub async fn start(
        settings: ClusterSettings,
        db: Arc<dyn Database>,
        mesh: Option<amoskys_mesh::MeshHandle>,
    ) -> Result<Cluster, ClusterError> {
        let store::Opened {
            log,
            sm,
            applied,
            audit,
        } = store::open(db).map_err(|e| ClusterError::Storage(e.to_string()))?;
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let config = openraft::Config {
            cluster_name: "amoskys".into(),
            heartbeat_interval: ms(settings.heartbeat),
            election_timeout_min: ms(settings.election_timeout.0),
            election_timeout_max: ms(settings.election_timeout.1),
            // Chunks and batches stay well inside the mesh's 4 MiB limit.
            snapshot_max_chunk_size: 1 << 20,
            max_payload_entries: 256,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(settings.snapshot_every),
            max_in_snapshot_log_to_keep: settings.keep_logs,
            install_snapshot_timeout: 4_000,
            // Elections start from the pre-vote timer (prevote.rs) instead.
            enable_elect: false,
            ..Default::default()
        }
        .validate()
        .map_err(|e| ClusterError::Invalid(format!("raft settings: {e}")))?;
        let transport = Transport::new(mesh);
        let log_reader = log.clone();
        let raft = Raft::new(settings.id, Arc::new(config), transport.clone(), log, sm)
            .await
            .map_err(|e| ClusterError::Raft(e.to_string()))?;
        let elector = prevote::Elector {
            raft: raft.clone(),
            id: settings.id,
            timeout: settings.election_timeout,
            transport: transport.clone(),
            log: log_reader,
        };
        let timer = tokio::spawn(prevote::run(elector.clone()));
        let counters = Arc::new(telemetry::Counters::default());
        let watcher = tokio::spawn(telemetry::watch_leader(raft.metrics(), counters.clone()));
        let policy = Arc::new(Mutex::new(MembershipPolicy::default()));
        let steward = tokio::spawn(crate::steward::run(
            raft.clone(),
            settings.id,
            transport.clone(),
            policy.clone(),
            applied.clone(),
        ));
        Ok(Cluster {
            raft,
            settings,
            transport,
            applied,
            audit,
            policy,
            approvals: Arc::new(AtomicU32::new(1)),
            allow: Arc::default(),
            pending: Arc::default(),
            handover: Mutex::new(None),
            steward,
            elector,
            timer,
            counters,
            watcher,
        })
    }

    pub fn id(&self) -> NodeId {
        self.settings.id
    }

    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// The audit trail as applied here.
    pub fn audit(&self) -> &store::AuditReader {
        &self.audit
    }

    /// The applied state; changes with every applied entry.
    pub fn applied(&self) -> watch::Receiver<Arc<Applied>> {
        self.applied.clone()
    }

    /// Drops Raft traffic with chosen members (partition drills).
    pub fn cut(&self) -> &Cut {
        &self.transport.cut
    }

    /// Keys admitted automatically when they ask to join.
    pub fn set_allow_list(&self, keys: impl IntoIterator<Item = NodeId>) {
        *lock(&self.allow) = keys.into_iter().collect();
    }

    /// `[governance] approvals` of the policy in force. Above 1, as leader
    /// this node refuses a governed change (policy, removal, model
    /// activation) that another member forwards as a plain write: it must
    /// come as a proposal, and a removal only once its proposal passed.
    pub fn set_approvals(&self, approvals: u32) {
        self.approvals.store(approvals, Ordering::Relaxed);
    }

    pub fn set_membership_policy(&self, policy: MembershipPolicy) {
        *lock(&self.policy) = policy;
    }

    pub async fn is_initialized(&self) -> bool {
        self.raft.is_initialized().await.unwrap_or(false)
    }

    /// Makes this node and `others` (all voters) a new cluster. Only on
    /// the first node(s), once.
    pub async fn initialize(&self, others: &[(NodeId, String)]) -> Result<(), ClusterError> {
        let mut members = BTreeMap::new();
        members.insert(self.settings.id, BasicNode::new(&self.settings.addr));
        for (id, addr) in others {
            members.insert(*id, BasicNode::new(addr));
        }
        self.raft
            .initialize(members)
            .await
            .map_err(|e| ClusterError::Invalid(format!("cannot initialise: {e}")))
    }

    /// Voters and learners of the current membership.
    pub fn members(&self) -> (BTreeSet<NodeId>, BTreeSet<NodeId>) {
        let m = self.raft.metrics().borrow().membership_config.clone();
        let voters: BTreeSet<NodeId> = m.voter_ids().collect();
        let learners = m
            .nodes()
            .map(|(id, _)| *id)
            .filter(|id| !voters.contains(id))
            .collect();
        (voters, learners)
    }

    fn is_member(&self, node: &NodeId) -> bool {
        let (v, l) = self.members();
        v.contains(node) || l.contains(node)
    }

    pub fn status(&self) -> ClusterStatus {
        let m = self.raft.metrics().borrow().clone();
        let (voters, learners) = self.members();
        ClusterStatus {
            id: self.settings.id.to_string(),
            initialized: m.membership_config.nodes().next().is_some(),
            state: format!("{:?}", m.state),
            term: m.current_term,
            leader: m.current_leader.map(|l| l.to_string()),
            voters: voters.iter().map(ToString::to_string).collect(),
            learners: learners.iter().map(ToString::to_string).collect(),
            last_log_index: m.last_log_index,
            last_applied: m.last_applied.map(|l| l.index),
            quorum: self.quorum_here(),
            pending: self.pending(),
        }
    }

    /// Answers a member's [`amoskys_mesh::Service::Raft`] request.
    pub async fn serve(&self, peer: &PeerId, body: &[u8]) -> Result<Vec<u8>, String> {
        let from = NodeId::from_peer_id(peer).ok_or("the peer has no ed25519 key")?;
        if self.transport.cut.blocks(&from) {
            return Err("cut off".into());
        }
        let req: RaftRequest =
            serde_json::from_slice(body).map_err(|e| format!("malformed Raft request: {e}"))?;
        let (voters, learners) = self.members();
        let member = voters.contains(&from) || learners.contains(&from);
        if member {
            self.transport.health.record(from);
        }
        // A forwarded write leaves the forwarding member a lease of its
        // budget for the answer.
        let deadline = Instant::now() + self.write_budget() - self.lease();
        let reply = match req {
            RaftRequest::Vote(r) => {
                // A node that knows no members yet (initialised elsewhere)
                // learns them from the first leader it votes for.
                if !voters.contains(&from) && !voters.is_empty() {
                    return Err(format!("{from} is not a voter"));
                }
                RaftReply::Vote(self.raft.vote(r).await)
            }
            RaftRequest::PreVote { last_log } => {
                if !voters.contains(&from) {
                    return Err(format!("{from} is not a voter"));
                }
                RaftReply::PreVote(self.elector.grant(from, last_log).await)
            }
            RaftRequest::Append(r) => {
                // A node that is still joining knows no members yet.
                if !member && !voters.is_empty() {
                    return Err(format!("{from} is not a member"));
                }
                let leader_commit = r.leader_commit;
                let reply = self.raft.append_entries(r).await;
                self.counters.appended(leader_commit, &reply);
                RaftReply::Append(reply)
            }
            RaftRequest::Snapshot(r) => {
                if !member && !voters.is_empty() {
                    return Err(format!("{from} is not a member"));
                }
                RaftReply::Snapshot(self.raft.install_snapshot(r).await)
            }
            other => {
                if !member {
                    return Err(format!("{from} is not a member"));
                }
                match other {
                    RaftRequest::Propose(cmd) => {
                        let approvals = self.approvals.load(Ordering::Relaxed);
                        match governance::refuse_direct(approvals, &cmd) {
                            Some(why) => RaftReply::Proposed(Err(WriteError::Refused(why))),
                            None => RaftReply::Proposed(self.write_local(cmd, deadline).await),
                        }
                    }
                    RaftRequest::Admin(op) => {
                        let approvals = self.approvals.load(Ordering::Relaxed);
                        let refused = match &op {
                            AdminOp::Remove { node, .. } => governance::refuse_removal(
                                approvals,
                                &self.applied.borrow().state,
                                node,
                            ),
                            AdminOp::Admit { .. } | AdminOp::Rotate { .. } => None,
                        };
                        match refused {
                            Some(why) => RaftReply::Admin(Err(WriteError::Refused(why))),
                            None => RaftReply::Admin(self.admin_local(op, deadline).await),
                        }
                    }
                    RaftRequest::Quorum => RaftReply::Quorum(self.quorum_here()),
                    _ => RaftReply::ReadIndex(self.read_index(deadline).await),
                }
            }
        };
        serde_json::to_vec(&reply).map_err(|e| format!("cannot encode the answer: {e}"))
    }

    /// Stops Raft and the steward.
    pub async fn shutdown(&self) {
        self.steward.abort();
        self.timer.abort();
        self.watcher.abort();
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft did not stop cleanly");
        }
    }
}
