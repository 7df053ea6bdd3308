//! The steward: on the leader, keeps the voter set at the policy's size
//! from caught-up learners, replaces a voter that has been silent too
//! long (it stays a member, as a learner), and finishes key hand-overs: a
//! retired key's successor takes its place among the voters once caught
//! up, and the retired key leaves the membership.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::{ChangeMembers, ServerState};

use tokio::sync::watch;

use crate::cluster::{MembershipPolicy, lock};
use crate::network::Transport;
use crate::store::Applied;
use crate::{NodeId, Raft};

/// How often the steward looks at the voter set.
const EVERY: Duration = Duration::from_millis(500);
/// A learner this close to the leader's log may become a voter.
const CAUGHT_UP: u64 = 100;
/// A learner heard from this recently may become a voter.
const RECENT: Duration = Duration::from_secs(3);

/// On the leader: grows the voter set to the policy's size from caught-up
/// learners, and replaces a voter that has been silent too long.
pub(crate) async fn run(
    raft: Raft,
    me: NodeId,
    transport: Transport,
    policy: Arc<Mutex<MembershipPolicy>>,
    applied: watch::Receiver<Arc<Applied>>,
) {
    let mut tick = tokio::time::interval(EVERY);
    // When this node became leader; silence is measured from then at most.
    let mut leading_since: Option<tokio::time::Instant> = None;
    loop {
        tick.tick().await;
        let m = raft.metrics().borrow().clone();
        if m.state != ServerState::Leader {
            leading_since = None;
            continue;
        }
        let since = *leading_since.get_or_insert_with(tokio::time::Instant::now);
        let policy = lock(&policy).clone();
        let voters: BTreeSet<NodeId> = m.membership_config.voter_ids().collect();
        let last = m.last_log_index.unwrap_or(0);
        let caught_up = |id: &NodeId| {
            let matched = m
                .replication
                .as_ref()
                .and_then(|r| r.get(id).cloned().flatten())
                .map_or(0, |l| l.index);
            matched + CAUGHT_UP >= last
                && transport.health.silent_for(id).is_some_and(|s| s < RECENT)
        };
        let learners: Vec<NodeId> = m
            .membership_config
            .nodes()
            .map(|(id, _)| *id)
            .filter(|id| !voters.contains(id) && caught_up(id))
            .collect();
        let down = Duration::from_secs(policy.voter_down_secs);
        let dead: Vec<NodeId> = voters
            .iter()
            .filter(|v| **v != me)
            .filter(|v| {
                since.elapsed() > down && transport.health.silent_for(v).is_none_or(|s| s > down)
            })
            .copied()
            .collect();
        let retired = applied.borrow().state.retired.clone();
        let handover = retired.iter().find_map(|(old, r)| {
            let member = m.membership_config.nodes().any(|(id, _)| id == old);
            if voters.contains(old) {
                // The successor takes the old key's seat once caught up.
                learners.contains(&r.successor).then(|| {
                    let mut next = voters.clone();
                    next.remove(old);
                    next.insert(r.successor);
                    ChangeMembers::ReplaceAllVoters(next)
                })
            } else {
                member.then(|| ChangeMembers::RemoveNodes(BTreeSet::from([*old])))
            }
        });
        let change = if handover.is_some() {
            handover
        } else if voters.len() < policy.voters && !learners.is_empty() {
            let add: BTreeSet<NodeId> = learners
                .iter()
                .take(policy.voters - voters.len())
                .copied()
                .collect();
            Some(ChangeMembers::AddVoterIds(add))
        } else if policy.auto_promote && !dead.is_empty() && !learners.is_empty() {
            let mut next = voters.clone();
            for (d, l) in dead.iter().zip(&learners) {
                next.remove(d);
                next.insert(*l);
            }
            Some(ChangeMembers::ReplaceAllVoters(next))
        } else {
            None
        };
        if let Some(change) = change {
            tracing::info!(?change, "changing the voter set");
            // Replaced voters stay members, as learners.
            if let Err(e) = raft.change_membership(change, true).await {
                tracing::warn!(error = %e, "voter change failed");
            }
        }
    }
}
