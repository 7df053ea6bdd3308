//! What the leader does for the cluster's callers: writes, reads at its
//! commit index, and admission and removal of members. Each waits only
//! while the leader has a quorum, and never past a deadline.

use std::collections::BTreeSet;
use std::future::Future;

use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers, LogId, ServerState};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::quorum::Quorum;
use super::{Cluster, now_ns};
use crate::NodeId;
use crate::network::AdminOp;
use crate::state::{Command, Outcome};

/// Why the leader did not do what it was asked (also the answer to a
/// forwarding member).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
pub enum WriteError {
    /// This node is not the leader (the leader it knows, if any).
    #[error("has to forward to the leader ({})", .0.map_or("unknown".into(), |l| l.to_string()))]
    NotLeader(Option<NodeId>),
    /// The leader could not be asked (set by the forwarding member).
    #[error("leader unreachable: {0}")]
    Unreachable(String),
    #[error("quorum lost: {} of {} voters reachable ({} needed)", .0.reachable, .0.voters, .0.needed)]
    QuorumLost(Quorum),
    /// No answer within the deadline: the write may still commit.
    #[error("not confirmed within {0} ms")]
    Timeout(u64),
    #[error("{0}")]
    Refused(String),
    /// Another membership change is not committed yet; asked again until
    /// the deadline (a join and a removal can race).
    #[error("busy: {0}")]
    Busy(String),
}

fn write_error<E: std::error::Error>(e: RaftError<NodeId, E>) -> WriteError {
    match e {
        RaftError::APIError(e) => WriteError::Refused(e.to_string()),
        RaftError::Fatal(e) => WriteError::Refused(format!("raft stopped: {e}")),
    }
}

fn client_write_error(e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>) -> WriteError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
            WriteError::NotLeader(f.leader_id)
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(
            ChangeMembershipError::InProgress(e),
        )) => WriteError::Busy(e.to_string()),
        other => write_error(other),
    }
}

impl Cluster {
    /// Runs `op` on the leader until it ends, the leader has gone a lease
    /// without a quorum's acknowledgement, or `deadline` passes.
    async fn leading<T>(
        &self,
        deadline: Instant,
        op: impl Future<Output = Result<T, WriteError>>,
    ) -> Result<T, WriteError> {
        let waits = deadline.saturating_duration_since(Instant::now());
        let mut metrics = self.raft.metrics();
        let m = metrics.borrow_and_update().clone();
        if m.state != ServerState::Leader {
            return Err(WriteError::NotLeader(m.current_leader));
        }
        if self.quorum_lost(&m) {
            return Err(WriteError::QuorumLost(self.quorum_here()));
        }
        // Metrics are refreshed at every Raft tick (1.5 heartbeats), so a
        // lost quorum shows within a lease and a tick.
        let lost = async {
            loop {
                if metrics.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
                if self.quorum_lost(&metrics.borrow_and_update()) {
                    return;
                }
            }
        };
        tokio::select! {
            biased;
            r = op => r,
            () = lost => Err(WriteError::QuorumLost(self.quorum_here())),
            () = tokio::time::sleep_until(deadline) => {
                let q = self.quorum_here();
                Err(if q.ok {
                    WriteError::Timeout(u64::try_from(waits.as_millis()).unwrap_or(u64::MAX))
                } else {
                    WriteError::QuorumLost(q)
                })
            }
        }
    }

    /// Commits `cmd` if this node is the leader.
    pub(super) async fn write_local(
        &self,
        cmd: Command,
        deadline: Instant,
    ) -> Result<(LogId<NodeId>, Outcome), WriteError> {
        self.leading(deadline, async {
            self.raft
                .client_write(cmd)
                .await
                .map(|r| (r.log_id, r.data))
                .map_err(client_write_error)
        })
        .await
    }

    /// The leader's commit index, confirmed with a quorum.
    pub(super) async fn read_index(
        &self,
        deadline: Instant,
    ) -> Result<Option<LogId<NodeId>>, WriteError> {
        self.leading(deadline, async {
            self.raft
                .get_read_log_id()
                .await
                .map(|(read, _)| read)
                .map_err(write_error)
        })
        .await
    }

    /// Admission and removal, run on the leader.
    pub(super) async fn admin_local(
        &self,
        op: AdminOp,
        deadline: Instant,
    ) -> Result<(), WriteError> {
        self.leading(deadline, self.admin_unguarded(op)).await
    }

    async fn admin_unguarded(&self, op: AdminOp) -> Result<(), WriteError> {
        let raft = &self.raft;
        let membership = raft.metrics().borrow().membership_config.clone();
        let write = |cmd| async move {
            raft.client_write(cmd)
                .await
                .map(|_| ())
                .map_err(client_write_error)
        };
        match op {
            AdminOp::Admit { node, addr, by } => {
                // Join requests repeat (a joining node asks every peer); a
                // member is admitted once.
                if membership.nodes().any(|(id, _)| *id == node) {
                    return Ok(());
                }
                write(Command::Admit {
                    node,
                    addr: addr.clone(),
                    by,
                    time_ns: now_ns(),
                })
                .await?;
                raft.add_learner(node, BasicNode::new(addr), false)
                    .await
                    .map_err(client_write_error)?;
            }
            AdminOp::Remove { node, by } => {
                let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
                if voters.contains(&node) {
                    if voters.len() == 1 {
                        return Err(WriteError::Refused("cannot remove the last voter".into()));
                    }
                    raft.change_membership(
                        ChangeMembers::RemoveVoters(BTreeSet::from([node])),
                        false,
                    )
                    .await
                    .map_err(client_write_error)?;
                } else if membership.nodes().any(|(id, _)| *id == node) {
                    raft.change_membership(
                        ChangeMembers::RemoveNodes(BTreeSet::from([node])),
                        false,
                    )
                    .await
                    .map_err(client_write_error)?;
                }
                write(Command::Remove {
                    node,
                    by,
                    time_ns: now_ns(),
                })
                .await?;
            }
            AdminOp::Rotate { handover, addr } => {
                let r = &handover.rotation;
                let done = self.applied.borrow().state.retired.get(&r.old).cloned();
                match done {
                    Some(d) if d.successor == r.new => {}
                    Some(d) => {
                        return Err(WriteError::Refused(format!(
                            "{} handed over to {} already",
                            r.old, d.successor
                        )));
                    }
                    None => {
                        if !membership.nodes().any(|(id, _)| *id == r.old) {
                            return Err(WriteError::Refused(format!(
                                "{} is not a member; only a member can hand over its key",
                                r.old
                            )));
                        }
                        let outcome = raft
                            .client_write(handover.command())
                            .await
                            .map(|w| w.data)
                            .map_err(client_write_error)?;
                        if let Outcome::Rejected(why) = outcome {
                            return Err(WriteError::Refused(why));
                        }
                    }
                }
                // The steward swaps it in for the old key once caught up.
                if !membership.nodes().any(|(id, _)| *id == r.new) {
                    raft.add_learner(r.new, BasicNode::new(addr), false)
                        .await
                        .map_err(client_write_error)?;
                }
            }
        }
        Ok(())
    }
}
