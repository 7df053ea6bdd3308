//! Pre-vote (Raft thesis §9.6): a voter asks the others whether they would
//! vote for it before it starts an election, and starts one only when a
//! majority says yes.
//!
//! openraft's own election timer is off (`Config::enable_elect = false`);
//! [`run`] is the election timer instead. A voter that has not heard from a
//! leader for a randomised election timeout sends [`RaftRequest::PreVote`]
//! to every other voter. A voter grants it unless it still hears from a
//! leader (within the shortest election timeout), is itself a leader with a
//! quorum, or holds a log newer than the asker's. A pre-vote changes no
//! term. So a voter cut off from the others never raises its term, and when
//! the cut heals it rejoins as a follower of the leader that kept the
//! cluster going, instead of forcing an election with its higher term.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use openraft::storage::RaftLogStorage;
use openraft::{LogId, ServerState};

use crate::network::{CallError, RaftReply, RaftRequest, Transport, dialable};
use crate::{NodeId, Raft};

/// How often the timer looks at the node's state.
const TICK: Duration = Duration::from_millis(25);

/// What the election timer and the pre-vote answers need of a member.
#[derive(Clone)]
pub(super) struct Elector {
    pub(super) raft: Raft,
    pub(super) id: NodeId,
    /// The election timeout's range.
    pub(super) timeout: (Duration, Duration),
    pub(super) transport: Transport,
    pub(super) log: crate::store::LogStore,
}

/// A leader that no quorum acknowledged for a `lease` has lost its quorum.
pub(super) fn quorum_lost(
    m: &openraft::RaftMetrics<NodeId, openraft::BasicNode>,
    lease: Duration,
) -> bool {
    m.state == ServerState::Leader
        && m.millis_since_quorum_ack
            .is_some_and(|ms| u128::from(ms) > lease.as_millis())
}

impl Elector {
    /// This node's last log id, as its log store holds it.
    async fn last_log_id(&self) -> Option<LogId<NodeId>> {
        let mut log = self.log.clone();
        log.get_log_state().await.ok().and_then(|s| s.last_log_id)
    }

    /// `node` was heard from within the shortest election timeout.
    fn hears_from(&self, node: NodeId) -> bool {
        self.transport
            .health
            .silent_for(&node)
            .is_some_and(|s| s < self.timeout.0)
    }

    /// Whether this node would vote for `candidate`, whose last log id is
    /// `last_log`, were it to start an election now.
    pub(super) async fn grant(&self, candidate: NodeId, last_log: Option<LogId<NodeId>>) -> bool {
        let m = self.raft.metrics().borrow().clone();
        if m.state == ServerState::Leader && !quorum_lost(&m, self.timeout.1) {
            return false;
        }
        if let Some(leader) = m.current_leader
            && leader != candidate
            && leader != self.id
            && self.hears_from(leader)
        {
            return false;
        }
        last_log >= self.last_log_id().await
    }

    /// One pre-vote round: true when a majority of the voters (this node
    /// included) would vote for it.
    async fn pre_vote(
        &self,
        voters: &BTreeSet<NodeId>,
        membership: &openraft::Membership<NodeId, openraft::BasicNode>,
    ) -> bool {
        let last_log = self.last_log_id().await;
        let asks = voters.iter().filter(|v| **v != self.id).map(|v| {
            let req = RaftRequest::PreVote { last_log };
            async move {
                match self.transport.call(*v, &req, self.timeout.0).await {
                    Ok(RaftReply::PreVote(granted)) => granted,
                    Err(CallError::Mesh(_)) => {
                        // Not connected (perhaps only through a leader that
                        // is gone): dial it, so the next round reaches it.
                        if let Some(node) = membership.get_node(v) {
                            self.transport.dial_member(*v, &dialable(&node.addr)).await;
                        }
                        false
                    }
                    _ => false,
                }
            }
        });
        let granted = 1 + futures::future::join_all(asks)
            .await
            .into_iter()
            .filter(|g| *g)
            .count();
        granted * 2 > voters.len()
    }

    /// A randomised election timeout in the configured range.
    fn next_timeout(&self) -> Duration {
        let (min, max) = self.timeout;
        let spread = u64::try_from(max.saturating_sub(min).as_millis()).unwrap_or(u64::MAX);
        min + Duration::from_millis(rand::random_range(0..=spread))
    }
}

/// The member's election timer, until the task is aborted.
pub(super) async fn run(e: Elector) {
    let mut due = Instant::now() + e.next_timeout();
    loop {
        tokio::time::sleep(TICK).await;
        let m = e.raft.metrics().borrow().clone();
        let voters: BTreeSet<NodeId> = m.membership_config.voter_ids().collect();
        let waiting = !voters.contains(&e.id)
            || m.state == ServerState::Leader
            || m.current_leader
                .is_some_and(|l| l != e.id && e.hears_from(l));
        if waiting {
            due = Instant::now() + e.next_timeout();
            continue;
        }
        if Instant::now() < due {
            continue;
        }
        if e.pre_vote(&voters, m.membership_config.membership()).await {
            tracing::info!(
                term = m.current_term,
                "pre-vote granted by a majority; starting an election"
            );
            if let Err(err) = e.raft.trigger().elect().await {
                tracing::warn!(error = %err, "cannot start an election");
                return;
            }
        } else {
            tracing::debug!(term = m.current_term, "pre-vote refused; the term stays");
        }
        due = Instant::now() + e.next_timeout();
    }
}
