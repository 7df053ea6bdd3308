//! What a member reports about its Raft state, for the node's metrics.
//!
//! Most of it is read from openraft's metrics at the moment it is asked
//! ([`Cluster::telemetry`]); two things need history and are kept here:
//! how many times the leader changed, and (on a follower) the commit index
//! the leader last sent, which openraft does not report.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use openraft::raft::AppendEntriesResponse;
use openraft::{LogId, RaftMetrics};
use tokio::sync::watch;

use super::Cluster;
use crate::NodeId;

/// A member's Raft state at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RaftTelemetry {
    pub term: u64,
    pub is_leader: bool,
    /// Changes of the known leader this member has seen since it started
    /// (the first leader it learns of counts as one).
    pub leader_changes: u64,
    /// The last index in this member's log (appended, maybe not committed).
    pub last_log_index: u64,
    /// On the leader, the highest index a majority of voters hold; on a
    /// follower, the leader's commit index it last received (at most its
    /// own last index). Never below the applied index.
    pub commit_index: u64,
    /// The last index applied to the state machine.
    pub applied_index: u64,
    /// On the leader only: for every other member, the entries of the
    /// leader's log it does not hold yet.
    pub replication_lag: Vec<(NodeId, u64)>,
}

impl RaftTelemetry {
    /// Committed entries not applied yet.
    pub fn apply_lag(&self) -> u64 {
        self.commit_index.saturating_sub(self.applied_index)
    }
}

/// The history [`RaftTelemetry`] needs, updated as things happen.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    leader_changes: AtomicU64,
    /// The leader's commit index in its last accepted append.
    leader_commit: AtomicU64,
}

impl Counters {
    /// Notes the leader's commit index from an append this member accepted.
    pub(crate) fn appended<E>(
        &self,
        leader_commit: Option<LogId<NodeId>>,
        reply: &Result<AppendEntriesResponse<NodeId>, E>,
    ) {
        let accepted = matches!(
            reply,
            Ok(AppendEntriesResponse::Success | AppendEntriesResponse::PartialSuccess(_))
        );
        if let (true, Some(c)) = (accepted, leader_commit) {
            self.leader_commit.store(c.index, Ordering::Relaxed);
        }
    }
}

type Metrics = RaftMetrics<NodeId, openraft::BasicNode>;

/// Counts changes of the known leader until Raft stops.
pub(crate) async fn watch_leader(mut metrics: watch::Receiver<Metrics>, counters: Arc<Counters>) {
    let mut last = None;
    loop {
        let leader = metrics.borrow_and_update().current_leader;
        if leader.is_some() && leader != last {
            counters.leader_changes.fetch_add(1, Ordering::Relaxed);
            last = leader;
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

/// The highest index held by a majority of `voters`, from the leader's
/// matched index per member (absent: nothing matched).
fn quorum_index(voters: &BTreeSet<NodeId>, matched: impl Fn(&NodeId) -> u64) -> u64 {
    let mut held: Vec<u64> = voters.iter().map(matched).collect();
    if held.is_empty() {
        return 0;
    }
    held.sort_unstable_by(|a, b| b.cmp(a));
    held[held.len() / 2]
}

fn snapshot(m: &Metrics, counters: &Counters) -> RaftTelemetry {
    let last_log_index = m.last_log_index.unwrap_or(0);
    let applied_index = m.last_applied.map_or(0, |l| l.index);
    let is_leader = m.current_leader == Some(m.id);
    let (commit, replication_lag) = match (&m.replication, is_leader) {
        (Some(rep), true) => {
            let matched = |id: &NodeId| rep.get(id).copied().flatten().map_or(0, |l| l.index);
            let voters: BTreeSet<NodeId> = m.membership_config.voter_ids().collect();
            let lag = rep
                .keys()
                .filter(|id| **id != m.id)
                .map(|id| (*id, last_log_index.saturating_sub(matched(id))))
                .collect();
            (quorum_index(&voters, matched), lag)
        }
        _ => (
            counters
                .leader_commit
                .load(Ordering::Relaxed)
                .min(last_log_index),
            Vec::new(),
        ),
    };
    RaftTelemetry {
        term: m.current_term,
        is_leader,
        leader_changes: counters.leader_changes.load(Ordering::Relaxed),
        last_log_index,
        commit_index: commit.max(applied_index),
        applied_index,
        replication_lag,
    }
}

impl Cluster {
    /// This member's Raft state now, for metrics.
    pub fn telemetry(&self) -> RaftTelemetry {
        snapshot(&self.raft.metrics().borrow(), &self.counters)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> NodeId {
        NodeId([n; 32])
    }

    #[test]
    fn quorum_index_is_what_a_majority_holds() {
        let voters: BTreeSet<NodeId> = [id(1), id(2), id(3)].into();
        let at = |i: &NodeId| match i.0[0] {
            1 => 10,
            2 => 7,
            _ => 3,
        };
        assert_eq!(quorum_index(&voters, at), 7);
        let five: BTreeSet<NodeId> = (1..=5).map(id).collect();
        assert_eq!(quorum_index(&five, |i| u64::from(i.0[0])), 3);
        assert_eq!(quorum_index(&BTreeSet::new(), |_| 9), 0);
    }

    #[tokio::test]
    async fn a_leader_change_is_counted_once_and_a_gap_is_not_one() {
        let mut m = Metrics::new_initial(id(1));
        let (tx, rx) = watch::channel(m.clone());
        let counters = Arc::new(Counters::default());
        let task = tokio::spawn(watch_leader(rx, counters.clone()));
        let mut send = |leader: Option<NodeId>| {
            m.current_leader = leader;
            m.current_term += 1;
            tx.send(m.clone()).expect("the watcher is running");
        };
        let settle = async |want: u64| {
            for _ in 0..200 {
                if counters.leader_changes.load(Ordering::Relaxed) == want {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            panic!("leader changes never reached {want}");
        };
        send(Some(id(2)));
        settle(1).await;
        send(None);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        send(Some(id(2)));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert_eq!(counters.leader_changes.load(Ordering::Relaxed), 1);
        send(Some(id(3)));
        settle(2).await;
        drop(tx);
        tokio::time::timeout(std::time::Duration::from_secs(5), task)
            .await
            .expect("the watcher ends with Raft")
            .expect("the watcher does not panic");
    }
}
