//! Multi-site approval of the changes that affect every site: a policy
//! change, a member removal or a model activation. With the policy's
//! `[governance] approvals = K` above 1, such a change is first a
//! [`Proposal`] in the replicated state, and is applied only once admins
//! on K distinct nodes (with K distinct operator keys) have approved it;
//! the proposer's approval is the first.
//!
//! Everything here is part of [`ClusterState::apply`] and as deterministic:
//! time comes only from the commands (the proposer's and each approver's
//! clock as they committed it), never from the clock of the node that
//! applies. A proposal whose expiry is before an approval's time is marked
//! expired by that approval and never applies.
//!
//! The K and the expiry of a proposal are fixed by its proposer from the
//! policy in force when it is made; a change of `approvals` itself is a
//! policy change and so needs the approvals in force before it. A member
//! removal changes the Raft membership, which only the leader can do: its
//! proposal turns [`ProposalStatus::Approved`] here, and the node that
//! gave the last approval has the leader run it (`Command::Remove` then
//! marks it applied).
//!
//! The leader refuses a governed change that another member forwards as a
//! plain write while approvals are needed ([`refuse_direct`],
//! [`refuse_removal`]); a member that is the leader is trusted, as Raft
//! trusts it with every entry.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::NodeId;
use crate::state::{ClusterState, Command, Outcome};

/// Largest `approvals` a policy may ask for (the largest voter set).
pub const MAX_APPROVALS: u32 = 9;
/// Default and range of `proposal_ttl_secs`: a day, from a second to 30 days.
pub const DEFAULT_TTL_SECS: u64 = 86_400;
pub const TTL_SECS_MIN: u64 = 1;
pub const TTL_SECS_MAX: u64 = 30 * 86_400;
/// Open proposals the state holds; more are refused until some close.
pub const MAX_OPEN: usize = 16;
/// Closed proposals (applied, expired, failed) kept for `proposals list`.
pub const CLOSED_HISTORY: usize = 32;
/// Longest operator name or key in an approval.
const MAX_WHO: usize = 128;

/// The `[governance]` section of the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GovernancePolicy {
    /// Distinct nodes whose admins must approve a governed change: 1 (the
    /// default) commits it at once; at most [`MAX_APPROVALS`], and at most
    /// the number of voters when the policy is set.
    pub approvals: u32,
    /// How long a proposal waits for its approvals
    /// ([`TTL_SECS_MIN`]..=[`TTL_SECS_MAX`]).
    pub proposal_ttl_secs: u64,
}

impl Default for GovernancePolicy {
    fn default() -> Self {
        Self {
            approvals: 1,
            proposal_ttl_secs: DEFAULT_TTL_SECS,
        }
    }
}

impl GovernancePolicy {
    /// Every problem, each naming its key under `governance.`.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !(1..=MAX_APPROVALS).contains(&self.approvals) {
            out.push(format!(
                "governance.approvals: {} is out of range (expected 1 to {MAX_APPROVALS}, and at most the number of voters)",
                self.approvals
            ));
        }
        if !(TTL_SECS_MIN..=TTL_SECS_MAX).contains(&self.proposal_ttl_secs) {
            out.push(format!(
                "governance.proposal_ttl_secs: {} is out of range (expected {TTL_SECS_MIN} to {TTL_SECS_MAX})",
                self.proposal_ttl_secs
            ));
        }
        out
    }
}

/// Whether a command needs approval when `approvals` is above 1.
pub fn is_governed(cmd: &Command) -> bool {
    matches!(
        cmd,
        Command::SetPolicy { .. } | Command::Remove { .. } | Command::ActivateModel { .. }
    )
}

/// Why the leader refuses `cmd`, forwarded by another member as a plain
/// write, while `approvals` is above 1: a governed change must come as a
/// proposal. `None` when it may be committed.
pub fn refuse_direct(approvals: u32, cmd: &Command) -> Option<String> {
    let inner = match cmd {
        Command::Audited {
            command: Some(c), ..
        } => c.as_ref(),
        other => other,
    };
    (approvals > 1 && is_governed(inner)).then(|| {
        format!(
            "governance.approvals is {approvals}: this change needs the approval of admins on {approvals} nodes; propose it through a node's API"
        )
    })
}

/// Why the leader refuses a member's removal forwarded by another member
/// while `approvals` is above 1: only one whose proposal passed runs.
pub fn refuse_removal(approvals: u32, state: &ClusterState, node: &NodeId) -> Option<String> {
    (approvals > 1 && approved_removal(state, node).is_none()).then(|| {
        format!(
            "governance.approvals is {approvals}: removing {node} needs an approved proposal; propose it through a node's API"
        )
    })
}

/// One approval: the node whose API took it and the operator who signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub node: NodeId,
    pub operator: String,
    /// The operator's ed25519 key, 64 hex digits.
    pub key: String,
    /// The approving node's clock when it sent the approval.
    pub time_ns: u64,
}

/// A governed change as proposed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewProposal {
    /// The exact command that applies once approved.
    pub command: Command,
    /// Approvals needed (the policy's `approvals` when it was made).
    pub needed: u32,
    pub expires_ns: u64,
    /// The proposer, its first approval; its time is the proposal's.
    pub by: Approval,
}

/// Where a proposal stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ProposalStatus {
    /// Waiting for approvals.
    Open,
    /// Approved; a membership change the leader runs next.
    Approved,
    /// Approved and applied.
    Applied,
    /// Approved, but the state refused the command (a model version gone).
    Failed { reason: String },
    /// Not approved by its expiry; it never applies.
    Expired,
}

/// A proposal in the replicated state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    pub id: u64,
    pub command: Command,
    pub needed: u32,
    pub created_ns: u64,
    pub expires_ns: u64,
    /// In the order given; one per node and per operator key.
    pub approvals: Vec<Approval>,
    #[serde(flatten)]
    pub status: ProposalStatus,
    /// When it left `Open`, by the closing command's time.
    pub closed_ns: Option<u64>,
}

impl Proposal {
    /// The proposer (the first approval).
    pub fn proposer(&self) -> Option<&Approval> {
        self.approvals.first()
    }
}

/// The proposals of the replicated state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Governance {
    pub proposals: BTreeMap<u64, Proposal>,
    /// The last id given (ids are never reused).
    pub last_id: u64,
}

impl Governance {
    pub fn open(&self) -> impl Iterator<Item = &Proposal> {
        self.proposals
            .values()
            .filter(|p| p.status == ProposalStatus::Open)
    }

    /// Marks open proposals that expired before `now_ns` and drops the
    /// oldest closed ones beyond [`CLOSED_HISTORY`].
    fn sweep(&mut self, now_ns: u64) {
        for p in self.proposals.values_mut() {
            if p.status == ProposalStatus::Open && now_ns > p.expires_ns {
                p.status = ProposalStatus::Expired;
                p.closed_ns = Some(now_ns);
            }
        }
        let closed: Vec<u64> = self
            .proposals
            .values()
            .filter(|p| !matches!(p.status, ProposalStatus::Open | ProposalStatus::Approved))
            .map(|p| p.id)
            .collect();
        for id in closed
            .iter()
            .take(closed.len().saturating_sub(CLOSED_HISTORY))
        {
            self.proposals.remove(id);
        }
    }
}

fn check_approval(a: &Approval) -> Result<(), String> {
    if a.operator.is_empty() || a.operator.len() > MAX_WHO {
        return Err(format!("approval operator must be 1 to {MAX_WHO} bytes"));
    }
    if a.key.len() != 64 || !a.key.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("approval key must be 64 hex digits".into());
    }
    Ok(())
}

/// Applies `Command::Propose`.
pub(crate) fn propose(state: &mut ClusterState, p: &NewProposal) -> Outcome {
    let now = p.by.time_ns;
    if !is_governed(&p.command) {
        return Outcome::Rejected(
            "only a policy change, a member removal or a model activation can be proposed".into(),
        );
    }
    if !(2..=MAX_APPROVALS).contains(&p.needed) {
        return Outcome::Rejected(format!(
            "a proposal needs 2 to {MAX_APPROVALS} approvals, not {} (with 1 the change is committed directly)",
            p.needed
        ));
    }
    let ttl = p.expires_ns.saturating_sub(now);
    if ttl == 0 || ttl > TTL_SECS_MAX.saturating_mul(1_000_000_000) {
        return Outcome::Rejected(format!(
            "a proposal expires {TTL_SECS_MIN} to {TTL_SECS_MAX} seconds after it is made"
        ));
    }
    if let Err(reason) = check_approval(&p.by) {
        return Outcome::Rejected(reason);
    }
    let gov = &mut state.governance;
    gov.sweep(now);
    if gov.open().count() >= MAX_OPEN {
        return Outcome::Rejected(format!(
            "{MAX_OPEN} proposals are open, the most the cluster holds; approve them or let them expire"
        ));
    }
    gov.last_id += 1;
    let id = gov.last_id;
    gov.proposals.insert(
        id,
        Proposal {
            id,
            command: p.command.clone(),
            needed: p.needed,
            created_ns: now,
            expires_ns: p.expires_ns,
            approvals: vec![p.by.clone()],
            status: ProposalStatus::Open,
            closed_ns: None,
        },
    );
    Outcome::Proposal {
        id,
        approvals: 1,
        needed: p.needed,
    }
}

/// Applies `Command::Approve`: records the approval and, with enough of
/// them, applies the proposal's command.
pub(crate) fn approve(state: &mut ClusterState, id: u64, a: &Approval) -> Outcome {
    if let Err(reason) = check_approval(a) {
        return Outcome::Rejected(reason);
    }
    state.governance.sweep(a.time_ns);
    let Some(p) = state.governance.proposals.get_mut(&id) else {
        return Outcome::Rejected(format!(
            "no proposal {id} (it never existed or is long closed)"
        ));
    };
    match &p.status {
        ProposalStatus::Open => {}
        ProposalStatus::Expired => {
            return Outcome::Rejected(format!(
                "proposal {id} expired at {} ns without its {} approvals; it never applies (propose the change again)",
                p.expires_ns, p.needed
            ));
        }
        other => {
            return Outcome::Rejected(format!(
                "proposal {id} is already closed ({})",
                status_name(other)
            ));
        }
    }
    if let Some(prev) = p.approvals.iter().find(|x| x.node == a.node) {
        return Outcome::Rejected(format!(
            "node {} already approved proposal {id} (operator {}); an approval from an admin on another node is needed",
            a.node, prev.operator
        ));
    }
    if let Some(prev) = p.approvals.iter().find(|x| x.key == a.key) {
        return Outcome::Rejected(format!(
            "operator {} already approved proposal {id} (on node {}); another operator must approve",
            a.operator, prev.node
        ));
    }
    p.approvals.push(a.clone());
    let approvals = u32::try_from(p.approvals.len()).unwrap_or(u32::MAX);
    if approvals < p.needed {
        return Outcome::Proposal {
            id,
            approvals,
            needed: p.needed,
        };
    }
    p.closed_ns = Some(a.time_ns);
    if let Command::Remove { node, .. } = p.command {
        p.status = ProposalStatus::Approved;
        return Outcome::RemovalApproved { id, node };
    }
    let command = p.command.clone();
    let outcome = state.apply(&command);
    if let Some(p) = state.governance.proposals.get_mut(&id) {
        p.status = match &outcome {
            Outcome::Rejected(reason) => ProposalStatus::Failed {
                reason: reason.clone(),
            },
            _ => ProposalStatus::Applied,
        };
    }
    Outcome::Passed {
        id,
        outcome: Box::new(outcome),
    }
}

/// After `Command::Remove` of `node`: its approved removal proposals are
/// applied.
pub(crate) fn removed(state: &mut ClusterState, node: &NodeId) {
    for p in state.governance.proposals.values_mut() {
        if p.status == ProposalStatus::Approved
            && matches!(&p.command, Command::Remove { node: n, .. } if n == node)
        {
            p.status = ProposalStatus::Applied;
        }
    }
}

/// The approved removal waiting to run for `node`, if any.
pub fn approved_removal(state: &ClusterState, node: &NodeId) -> Option<u64> {
    state
        .governance
        .proposals
        .values()
        .find(|p| {
            p.status == ProposalStatus::Approved
                && matches!(&p.command, Command::Remove { node: n, .. } if n == node)
        })
        .map(|p| p.id)
}

/// A status as one word.
pub fn status_name(s: &ProposalStatus) -> &'static str {
    match s {
        ProposalStatus::Open => "open",
        ProposalStatus::Approved => "approved",
        ProposalStatus::Applied => "applied",
        ProposalStatus::Failed { .. } => "failed",
        ProposalStatus::Expired => "expired",
    }
}

#[cfg(test)]
mod tests;
