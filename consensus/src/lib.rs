//! Raft-replicated state of the AMOSKYS mesh: detection policy, membership
//! (admitted node keys, voters and learners) and the model registry.
//!
//! - [`id`]: a node id is the node's ed25519 public key (its peer id);
//! - [`state`]: the replicated state and the pure, deterministic apply of
//!   committed [`Command`]s;
//! - [`operators`]: the operators (name, ed25519 key, role) in that state
//!   and the rules their commands obey;
//! - [`governance`]: proposals of changes that need admins of several
//!   nodes to approve them (`[governance] approvals`);
//! - [`rotation`]: a member's hand-over to a new node key, signed by both
//!   keys; the old key's alerts verify up to its last sequence number;
//! - [`audit`]: the audit trail, signed records committed with the
//!   commands they record, a hash chain, and its offline check;
//! - [`store`]: openraft's log storage and state machine (storage v2) in the
//!   node's RocksDB column families `raft_log` and `raft_state`, snapshots
//!   included;
//! - [`network`]: Raft RPCs over the mesh's request-response protocol, so a
//!   node has one port and one identity;
//! - [`cluster`]: a running Raft member: initialise, propose (writes on a
//!   follower go to the leader), admit and remove members, linearizable
//!   reads, join requests, and the steward that keeps a small voter set and
//!   promotes learners when voters are lost;
//! - [`lab`]: in-process members on loopback for tests, benchmarks and
//!   simulations;
//! - [`fuzzing`]: one entry per decoder a peer reaches, for the fuzz
//!   targets of `consensus/fuzz/` and the corpus replay in `tests/`.
//!
//! This crate knows the mesh, never the node: the node passes its database
//! and mesh handle in and reads the applied state from a watch channel.

pub mod audit;
pub mod cluster;
pub mod fuzzing;
pub mod governance;
pub mod id;
pub mod lab;
pub mod network;
pub mod operators;
pub mod rotation;
pub mod state;
mod steward;
pub mod store;

use std::io::Cursor;

pub use audit::{AuditEntry, AuditRecord, ChainCheck, ChainError, ExportHead, ExportLine};
pub use cluster::{
    Cluster, ClusterError, ClusterSettings, ClusterStatus, JoinReply, MembershipPolicy,
    PendingJoin, Quorum,
};
pub use governance::{Approval, GovernancePolicy, NewProposal, Proposal, ProposalStatus};
pub use id::NodeId;
pub use operators::{OperatorRecord, Role};
pub use rotation::{NodeRotation, Retired};
pub use state::{
    ClusterState, Command, ModelVersion, NewModel, NewRound, Outcome, PolicyRecord, RoundRecord,
    RoundStatus,
};
pub use store::{Applied, Database};

openraft::declare_raft_types!(
    /// The openraft types of AMOSKYS.
    pub TypeConfig:
        D = Command,
        R = Outcome,
        NodeId = NodeId,
        Node = openraft::BasicNode,
        SnapshotData = Cursor<Vec<u8>>,
);

/// The openraft instance of a node.
pub type Raft = openraft::Raft<TypeConfig>;
