//! A caller's writes, membership changes and consistent reads go to the
//! leader: run here when this node leads, forwarded over the mesh
//! otherwise, tried again while the leadership changes, and all within
//! [`Cluster::write_budget`].

use std::sync::Arc;
use std::time::Duration;

use openraft::LogId;
use tokio::time::Instant;

use super::{Cluster, ClusterError, WriteError, lock};
use crate::NodeId;
use crate::network::{AdminOp, CallError, RaftReply, RaftRequest};
use crate::state::{Command, Outcome};
use crate::store::Applied;

/// Pause between tries.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

impl Cluster {
    /// The leader, once one is known, but not after `deadline`.
    async fn leader(&self, deadline: Instant) -> Option<NodeId> {
        let wait = deadline.saturating_duration_since(Instant::now());
        self.raft
            .wait(Some(wait))
            .metrics(|m| m.current_leader.is_some(), "a leader")
            .await
            .ok()
            .and_then(|m| m.current_leader)
    }

    /// Commits `cmd` through the leader, wherever it is, and returns its
    /// log id and outcome.
    pub async fn propose(&self, cmd: Command) -> Result<(LogId<NodeId>, Outcome), ClusterError> {
        let cmd = &cmd;
        self.on_leader(|leader, deadline| async move {
            if leader == self.settings.id {
                return self.write_local(cmd.clone(), deadline).await;
            }
            match self
                .forward(leader, RaftRequest::Propose(cmd.clone()), deadline)
                .await?
            {
                RaftReply::Proposed(r) => r,
                _ => Err(WriteError::Refused("answer of another kind".into())),
            }
        })
        .await
    }

    /// Admits `node` as a learner (the steward makes it a voter when the
    /// voter set needs one).
    pub async fn admit(&self, node: NodeId, addr: String) -> Result<(), ClusterError> {
        let by = self.settings.id;
        self.admin(AdminOp::Admit { node, addr, by }).await?;
        lock(&self.pending).remove(&node);
        Ok(())
    }

    /// Removes `node` from the membership; it is not admitted again
    /// automatically.
    pub async fn remove(&self, node: NodeId) -> Result<(), ClusterError> {
        let by = self.settings.id;
        self.admin(AdminOp::Remove { node, by }).await
    }

    /// Commits a member's hand-over to a new key and adds the successor
    /// as a learner (the steward makes it a voter in the old key's place).
    pub async fn rotate(
        &self,
        handover: crate::rotation::Handover,
        addr: String,
    ) -> Result<(), ClusterError> {
        self.admin(AdminOp::Rotate {
            handover: Box::new(handover),
            addr,
        })
        .await
    }

    async fn admin(&self, op: AdminOp) -> Result<(), ClusterError> {
        let op = &op;
        self.on_leader(|leader, deadline| async move {
            if leader == self.settings.id {
                return self.admin_local(op.clone(), deadline).await;
            }
            match self
                .forward(leader, RaftRequest::Admin(op.clone()), deadline)
                .await?
            {
                RaftReply::Admin(r) => r,
                _ => Err(WriteError::Refused("answer of another kind".into())),
            }
        })
        .await
    }

    /// Runs `attempt` against the current leader, again ([`RETRY_PAUSE`]
    /// apart) while the leadership changes, all within the write budget.
    /// Out of time, says whether a lost quorum is why.
    async fn on_leader<T, F, Fut>(&self, mut attempt: F) -> Result<T, ClusterError>
    where
        F: FnMut(NodeId, Instant) -> Fut,
        Fut: std::future::Future<Output = Result<T, WriteError>>,
    {
        let budget = self.write_budget();
        let deadline = Instant::now() + budget;
        let mut last = None;
        loop {
            let Some(leader) = self.leader(deadline).await else {
                break;
            };
            match attempt(leader, deadline).await {
                Ok(done) => return Ok(done),
                Err(WriteError::QuorumLost(quorum)) => {
                    return Err(ClusterError::QuorumLost {
                        quorum,
                        read: false,
                    });
                }
                Err(WriteError::Refused(e)) => return Err(ClusterError::Rejected(e)),
                Err(WriteError::Timeout(_)) => return Err(ClusterError::Timeout(budget)),
                Err(e) => last = Some(e),
            }
            if Instant::now() + RETRY_PAUSE >= deadline {
                break;
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
        let quorum = self.quorum_here();
        if quorum.short() {
            return Err(ClusterError::QuorumLost {
                quorum,
                read: false,
            });
        }
        Err(ClusterError::NoLeader(last.map_or_else(
            || format!("none elected within {budget:?}"),
            |e| e.to_string(),
        )))
    }

    /// Sends `req` to the leader and waits for its answer until `deadline`,
    /// but only while the leader is heard from: a live leader reaches its
    /// followers every heartbeat, and a request to one that stopped may
    /// never be answered. Nothing is sent to a leader silent for half a
    /// lease.
    async fn forward(
        &self,
        leader: NodeId,
        req: RaftRequest,
        deadline: Instant,
    ) -> Result<RaftReply, WriteError> {
        let window = self.lease() / 2;
        let silent = || {
            self.transport
                .health
                .silent_for(&leader)
                .is_some_and(|s| s > window)
        };
        if silent() {
            return Err(WriteError::Unreachable(format!(
                "{leader}: not heard from for over {window:?}"
            )));
        }
        let gone = async {
            while !silent() {
                tokio::time::sleep(self.settings.heartbeat).await;
            }
        };
        let ttl = deadline.saturating_duration_since(Instant::now());
        tokio::select! {
            biased;
            r = self.transport.call(leader, &req, ttl) => match r {
                Ok(reply) => Ok(reply),
                // The leader may have committed it: do not try again.
                Err(CallError::Timeout(t)) => Err(WriteError::Timeout(
                    u64::try_from(t.as_millis()).unwrap_or(u64::MAX),
                )),
                Err(e) => Err(WriteError::Unreachable(format!("{leader}: {e}"))),
            },
            () = gone => Err(WriteError::Unreachable(format!(
                "{leader}: stopped answering (silent for over {window:?})"
            ))),
        }
    }

    /// The applied state, after everything committed before the call.
    pub async fn read_linearizable(&self) -> Result<Arc<Applied>, ClusterError> {
        let index = self
            .on_leader(|leader, deadline| async move {
                if leader == self.settings.id {
                    return self.read_index(deadline).await;
                }
                match self
                    .forward(leader, RaftRequest::ReadIndex, deadline)
                    .await?
                {
                    RaftReply::ReadIndex(r) => r,
                    _ => Err(WriteError::Refused("answer of another kind".into())),
                }
            })
            .await
            .map_err(|e| match e {
                ClusterError::QuorumLost { quorum, .. } => {
                    ClusterError::QuorumLost { quorum, read: true }
                }
                other => other,
            })?;
        if let Some(index) = index {
            self.raft
                .wait(Some(self.write_budget()))
                .applied_index_at_least(Some(index.index), "read index")
                .await
                .map_err(|e| ClusterError::Raft(e.to_string()))?;
        }
        Ok(self.applied.borrow().clone())
    }
}
