//! Whether the leader still has a quorum, and how long a write waits.
//!
//! Every time bound here derives from the longest election timeout, the
//! *lease*: a follower that has not heard from its leader for that long
//! starts an election, so a leader that no quorum has acknowledged for a
//! lease has lost its quorum, whatever openraft's state still says.

use std::collections::BTreeSet;
use std::time::Duration;

use openraft::ServerState;
use serde::{Deserialize, Serialize};

use super::Cluster;
use crate::NodeId;
use crate::network::{RaftReply, RaftRequest};

/// A write waits at most this many leases end to end: one for the leader
/// to find its quorum lost, one for an election, one for the commit and
/// the forwarded answer.
const WRITE_LEASES: u32 = 3;

/// A view of the quorum: in `GET /api/v1/cluster` and in the error of a
/// write that could not commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quorum {
    /// A write can commit: on the leader, a quorum acknowledged it within
    /// the lease; elsewhere, a leader is known and enough voters were
    /// heard from.
    pub ok: bool,
    /// Voters in the membership.
    pub voters: usize,
    /// Voters heard from within half a lease, the viewer included.
    pub reachable: usize,
    /// Voters a commit needs (a majority).
    pub needed: usize,
    /// On the leader: milliseconds since a quorum last acknowledged it.
    pub last_quorum_ack_ms: Option<u64>,
    /// Whose view this is: the leader's when it answered, else this node's.
    pub seen_by: String,
}

impl Quorum {
    /// Fewer voters are reachable than a commit needs.
    pub fn short(&self) -> bool {
        self.reachable < self.needed
    }
}

impl Cluster {
    /// The longest election timeout: how long a leader may go without a
    /// quorum's acknowledgement before it counts as lost.
    pub fn lease(&self) -> Duration {
        self.settings.election_timeout.1
    }

    /// The longest a write (or a consistent read) waits before it fails:
    /// three leases.
    pub fn write_budget(&self) -> Duration {
        self.lease() * WRITE_LEASES
    }

    /// On the leader, true once no quorum has acknowledged it for a lease.
    pub(super) fn quorum_lost(
        &self,
        m: &openraft::RaftMetrics<NodeId, openraft::BasicNode>,
    ) -> bool {
        super::prevote::quorum_lost(m, self.lease())
    }

    /// This node's own view of the quorum.
    pub fn quorum_here(&self) -> Quorum {
        let m = self.raft.metrics().borrow().clone();
        let voters: BTreeSet<NodeId> = m.membership_config.voter_ids().collect();
        // A live voter answers every heartbeat, well within half a lease;
        // one that stopped has been silent longer by the time its loss
        // shows in the acknowledgements.
        let window = self.lease() / 2;
        let reachable = voters
            .iter()
            .filter(|v| {
                **v == self.settings.id
                    || self
                        .transport
                        .health
                        .silent_for(v)
                        .is_some_and(|s| s <= window)
            })
            .count();
        let needed = voters.len() / 2 + 1;
        let leading = m.state == ServerState::Leader;
        let ok = if leading {
            match m.millis_since_quorum_ack {
                Some(_) => !self.quorum_lost(&m),
                // Not acknowledged yet (just elected).
                None => reachable >= needed,
            }
        } else {
            m.current_leader.is_some() && reachable >= needed
        };
        Quorum {
            ok,
            voters: voters.len(),
            reachable,
            needed,
            last_quorum_ack_ms: if leading {
                m.millis_since_quorum_ack
            } else {
                None
            },
            seen_by: self.settings.id.to_string(),
        }
    }

    /// The quorum as the leader sees it (asked over the mesh, within a
    /// lease), or this node's view when there is no leader that answers.
    pub async fn quorum(&self) -> Quorum {
        let leader = self.raft.metrics().borrow().current_leader;
        if let Some(l) = leader.filter(|l| *l != self.settings.id)
            && let Ok(RaftReply::Quorum(q)) = self
                .transport
                .call(l, &RaftRequest::Quorum, self.lease())
                .await
        {
            return q;
        }
        self.quorum_here()
    }
}
