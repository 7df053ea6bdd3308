//! What the leader does for the cluster's callers: writes, reads at its
//! commit index, and admission and removal of members.

use std::collections::BTreeSet;

use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers, LogId};

use super::now_ns;
use crate::network::AdminOp;
use crate::state::{Command, Outcome};
use crate::{NodeId, Raft};

pub(super) fn is_leader_change(e: &str) -> bool {
    e.contains("forward request to") || e.contains("unreachable") || e.contains("has to forward")
}

pub(super) async fn write_local(
    raft: &Raft,
    cmd: Command,
) -> Result<(LogId<NodeId>, Outcome), String> {
    match raft.client_write(cmd).await {
        Ok(r) => Ok((r.log_id, r.data)),
        Err(e) => Err(write_error(e)),
    }
}

fn write_error(e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>) -> String {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => format!(
            "has to forward to the leader ({})",
            f.leader_id.map_or("unknown".into(), |l| l.to_string())
        ),
        other => other.to_string(),
    }
}

pub(super) async fn read_index(raft: &Raft) -> Result<Option<LogId<NodeId>>, String> {
    raft.get_read_log_id()
        .await
        .map(|(read, _)| read)
        .map_err(|e| e.to_string())
}

/// Admission and removal, run on the leader.
pub(super) async fn admin_local(raft: &Raft, op: AdminOp) -> Result<(), String> {
    let membership = raft.metrics().borrow().membership_config.clone();
    match op {
        AdminOp::Admit { node, addr, by } => {
            // Join requests repeat (a joining node asks every peer); a
            // member is admitted once.
            if membership.nodes().any(|(id, _)| *id == node) {
                return Ok(());
            }
            write_local(
                raft,
                Command::Admit {
                    node,
                    addr: addr.clone(),
                    by,
                    time_ns: now_ns(),
                },
            )
            .await?;
            raft.add_learner(node, BasicNode::new(addr), false)
                .await
                .map_err(write_error)?;
        }
        AdminOp::Remove { node, by } => {
            let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
            if voters.contains(&node) {
                if voters.len() == 1 {
                    return Err("cannot remove the last voter".into());
                }
                raft.change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([node])), false)
                    .await
                    .map_err(write_error)?;
            } else if membership.nodes().any(|(id, _)| *id == node) {
                raft.change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([node])), false)
                    .await
                    .map_err(write_error)?;
            }
            write_local(
                raft,
                Command::Remove {
                    node,
                    by,
                    time_ns: now_ns(),
                },
            )
            .await?;
        }
    }
    Ok(())
}
