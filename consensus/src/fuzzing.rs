//! Entry points for fuzzing: each takes the body of a request or answer as
//! a peer sends it over [`amoskys_mesh::Service::Raft`] or
//! [`amoskys_mesh::Service::Join`], decodes it as the cluster does, and
//! applies what a follower would apply (the commands of appended entries,
//! a forwarded write, a snapshot's state) to a state machine in memory,
//! without RocksDB. The targets of `consensus/fuzz/` call one function
//! each, and `tests/fuzz_corpus.rs` replays the seed corpora and the
//! regressions through the same functions in plain `cargo test`.

use std::sync::OnceLock;

use openraft::EntryPayload;

use crate::cluster::JoinRequest;
use crate::network::{AdminOp, RaftReply, RaftRequest};
use crate::state::{ClusterState, Command};
use crate::store::decode_snapshot;
use crate::{JoinReply, NodeId, governance};

/// The node that receives the seed requests (a Raft member).
pub const RECEIVER_SEED: [u8; 32] = [1; 32];
/// The node that asks to join in the seed join requests.
pub const JOINER_SEED: [u8; 32] = [2; 32];

/// A node id from an ed25519 seed.
pub fn node_id(seed: &[u8; 32]) -> NodeId {
    NodeId(
        ed25519_dalek::SigningKey::from_bytes(seed)
            .verifying_key()
            .to_bytes(),
    )
}

/// The receiver's and the joiner's ids, derived once.
fn ids() -> (NodeId, NodeId) {
    static IDS: OnceLock<(NodeId, NodeId)> = OnceLock::new();
    *IDS.get_or_init(|| (node_id(&RECEIVER_SEED), node_id(&JOINER_SEED)))
}

/// Applies `cmd` as the state machine does, and the checks a member makes
/// before it proposes a forwarded write.
fn apply(state: &mut ClusterState, cmd: &Command, index: u64) {
    let _ = governance::refuse_direct(2, cmd);
    let _ = state.apply_entry(cmd, index);
}

/// A Raft request from a member: decoded, then its commands applied in
/// memory (append entries, a forwarded write, a whole snapshot).
pub fn raft_request(bytes: &[u8]) {
    let Ok(req) = serde_json::from_slice::<RaftRequest>(bytes) else {
        return;
    };
    let _ = req.kind();
    let mut state = ClusterState::default();
    match req {
        RaftRequest::Append(r) => {
            for e in r.entries.iter().take(64) {
                if let EntryPayload::Normal(cmd) = &e.payload {
                    apply(&mut state, cmd, e.log_id.index);
                }
            }
        }
        RaftRequest::Propose(cmd) => apply(&mut state, &cmd, 1),
        RaftRequest::Admin(AdminOp::Remove { node, .. }) => {
            let _ = governance::refuse_removal(2, &state, &node);
        }
        RaftRequest::Admin(AdminOp::Rotate { handover, .. }) => {
            let _ = handover.check(&handover.rotation.new);
        }
        RaftRequest::Snapshot(r) if r.offset == 0 && r.done => snapshot(&r.data),
        _ => {}
    }
}

/// A member's answer to a Raft request, decoded as the caller does.
pub fn raft_reply(bytes: &[u8]) {
    let _ = serde_json::from_slice::<RaftReply>(bytes);
}

/// A snapshot's data, decoded as it is installed; its state then takes
/// further commands.
pub fn snapshot(bytes: &[u8]) {
    if let Ok((applied, audit)) = decode_snapshot(bytes) {
        let mut state = applied.state;
        let _ = audit.len();
        let (receiver, joiner) = ids();
        let cmd = Command::Remove {
            node: joiner,
            by: receiver,
            time_ns: 1,
        };
        apply(
            &mut state,
            &cmd,
            applied.last_applied.map_or(1, |l| l.index + 1),
        );
    }
}

/// A join request from any peer (the only service open to strangers),
/// decoded as the cluster does; a hand-over is checked as from the joiner.
pub fn join_request(bytes: &[u8]) {
    if let Ok(req) = serde_json::from_slice::<JoinRequest>(bytes)
        && let Some(h) = req.handover
    {
        let _ = h.check(&ids().1);
    }
}

/// A member's answer to a join request, decoded as the joiner does.
pub fn join_reply(bytes: &[u8]) {
    let _ = serde_json::from_slice::<JoinReply>(bytes);
}
