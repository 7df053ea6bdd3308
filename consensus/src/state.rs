//! The replicated state: policy versions, member records, retired node
//! keys, the model registry, the operators and the proposals awaiting
//! approval, and the commands that change them.
//!
//! [`ClusterState::apply`] is a pure, deterministic function of the state
//! and a committed command; every node applies the same commands in the
//! same order and ends in the same state. A command that is invalid against
//! the state (activating a version that does not exist) is committed but
//! changes nothing and answers [`Outcome::Rejected`] (one exception: a
//! refused proposal or approval still marks the proposals it finds expired).

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::NodeId;
use crate::audit::{self, AuditEntry, AuditHead, AuditRecord};
use crate::governance::{self, Approval, Governance, NewProposal};
use crate::operators::{self, Operators, Role};
use crate::rotation::{self, NodeRotation, Retired};

/// Largest policy document.
pub const MAX_POLICY_BYTES: usize = 64 * 1024;
/// Policy versions kept, the one in force included.
pub const POLICY_HISTORY: usize = 32;
/// Largest free-text field (model metrics names, addresses, comments).
const MAX_TEXT: usize = 1024;
/// Largest round settings document.
const MAX_ROUND_SPEC: usize = 16 * 1024;
/// Federated rounds kept, the open ones included.
pub const ROUND_HISTORY: usize = 100;

/// A change to the replicated state, proposed by a member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// A new policy document (validated by the proposer before it is
    /// proposed).
    SetPolicy {
        document: String,
        author: NodeId,
        time_ns: u64,
    },
    /// Records who admitted a node (Raft membership itself holds the role).
    Admit {
        node: NodeId,
        addr: String,
        by: NodeId,
        time_ns: u64,
    },
    /// Records a removal, so the node is not admitted again automatically.
    Remove {
        node: NodeId,
        by: NodeId,
        time_ns: u64,
    },
    /// A new model version; its number is assigned on apply.
    RegisterModel(NewModel),
    /// Makes a registered version the one every node uses (pin or roll
    /// back).
    ActivateModel {
        version: u64,
        by: NodeId,
        time_ns: u64,
    },
    /// Opens a federated round; its id is assigned on apply.
    StartRound(NewRound),
    /// Ends an open round without a model (too few updates by the
    /// deadline).
    AbandonRound {
        id: u64,
        reason: String,
        time_ns: u64,
    },
    /// Adds an operator or changes its key or role (rules: [`operators`]).
    SetOperator {
        name: String,
        key: String,
        role: Role,
        by: String,
        time_ns: u64,
    },
    /// Removes an operator; never the last admin.
    RemoveOperator {
        name: String,
        by: String,
        time_ns: u64,
    },
    /// Gives an operator a new key; both keys sign
    /// [`operators::rotation_statement`] (hex signatures).
    RotateOperator {
        name: String,
        key: String,
        old_sig: String,
        new_sig: String,
        time_ns: u64,
    },
    /// A governed change waiting for approvals (rules: [`governance`]).
    Propose(Box<NewProposal>),
    /// An approval of an open proposal; the last one needed applies it.
    Approve { id: u64, approval: Approval },
    /// A member hands its identity over to a new node key
    /// ([`rotation`](crate::rotation)).
    RotateNode(Box<NodeRotation>),
    /// An audit record, alone or with the command it records: both are
    /// committed in this one entry ([`audit`](crate::audit)).
    Audited {
        record: AuditRecord,
        command: Option<Box<Command>>,
    },
}

/// A federated round as proposed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewRound {
    /// The model it trains (an entity kind).
    pub kind: String,
    /// Registry version the participants start from.
    pub base: Option<u64>,
    pub participants: Vec<NodeId>,
    pub aggregator: NodeId,
    pub deadline_ns: u64,
    /// The learning layer's settings (rule, epochs, privacy), as JSON.
    pub spec: String,
    pub started_by: NodeId,
    pub time_ns: u64,
}

/// How a round stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum RoundStatus {
    Open,
    Done { version: u64 },
    Abandoned { reason: String },
}

/// A federated round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundRecord {
    pub id: u64,
    #[serde(flatten)]
    pub round: NewRound,
    #[serde(flatten)]
    pub status: RoundStatus,
}

/// The answer to a committed command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    /// Blank and membership entries.
    Nothing,
    Policy {
        version: u64,
    },
    Admitted,
    Removed,
    Model {
        version: u64,
    },
    Activated {
        version: u64,
    },
    Round {
        id: u64,
    },
    Abandoned {
        id: u64,
    },
    OperatorSet {
        name: String,
    },
    OperatorRemoved {
        name: String,
    },
    /// A proposal made or approved, still short of its approvals.
    Proposal {
        id: u64,
        approvals: u32,
        needed: u32,
    },
    /// A proposal got its last approval and its command was applied, with
    /// this outcome.
    Passed {
        id: u64,
        outcome: Box<Outcome>,
    },
    /// A member removal got its last approval; the leader runs it next.
    RemovalApproved {
        id: u64,
        node: NodeId,
    },
    /// A node key handed over to its successor.
    Rotated {
        old: NodeId,
        new: NodeId,
    },
    /// An audit record that stands alone, as entry `seq`.
    Recorded {
        seq: u64,
    },
    /// Committed but invalid against the state; nothing changed.
    Rejected(String),
}

/// One policy version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyRecord {
    pub version: u64,
    pub sha256: String,
    pub document: String,
    pub author: NodeId,
    pub time_ns: u64,
}

/// How a member was admitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberRecord {
    pub addr: String,
    pub admitted_by: NodeId,
    pub admitted_ns: u64,
}

/// A model version as proposed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewModel {
    /// SHA-256 of the model blob, hex.
    pub sha256: String,
    /// Feature schema the model expects.
    pub schema: String,
    pub parent: Option<u64>,
    /// The federated round that produced it, if any.
    pub round: Option<u64>,
    pub participants: Vec<NodeId>,
    pub metrics: BTreeMap<String, f64>,
    pub author: NodeId,
    pub time_ns: u64,
    /// Make it the active version once registered.
    pub activate: bool,
}

/// A registered model version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelVersion {
    pub version: u64,
    #[serde(flatten)]
    pub model: NewModel,
}

/// Everything the state machine holds besides Raft's own membership.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterState {
    /// Oldest first; the last one is in force.
    pub policies: VecDeque<PolicyRecord>,
    pub members: BTreeMap<NodeId, MemberRecord>,
    /// Removed nodes and when; not admitted again automatically.
    pub removed: BTreeMap<NodeId, u64>,
    pub models: BTreeMap<u64, ModelVersion>,
    pub active_model: Option<u64>,
    #[serde(default)]
    pub rounds: BTreeMap<u64, RoundRecord>,
    /// Operators by name (absent from states written before operators).
    #[serde(default)]
    pub operators: Operators,
    /// Proposals of governed changes (absent from older states).
    #[serde(default)]
    pub governance: Governance,
    /// The end of the audit trail (the entries are stored beside the
    /// state, see [`store`](crate::store)).
    #[serde(default)]
    pub audit: AuditHead,
    /// Node keys handed over to a successor (absent from older states).
    #[serde(default)]
    pub retired: BTreeMap<NodeId, Retired>,
}

impl ClusterState {
    /// The policy in force.
    pub fn policy(&self) -> Option<&PolicyRecord> {
        self.policies.back()
    }

    pub fn active_model(&self) -> Option<&ModelVersion> {
        self.active_model.and_then(|v| self.models.get(&v))
    }

    /// Applies one committed command.
    pub fn apply(&mut self, cmd: &Command) -> Outcome {
        self.apply_entry(cmd, 0).0
    }

    /// Applies the command committed at `log_index`, with the audit entry
    /// it appends, if any.
    pub fn apply_entry(&mut self, cmd: &Command, log_index: u64) -> (Outcome, Option<AuditEntry>) {
        match cmd {
            Command::Audited { record, command } => {
                audit::apply(self, record, command.as_deref(), log_index)
            }
            other => (self.apply_plain(other), None),
        }
    }

    /// Applies a command that carries no audit record.
    pub(crate) fn apply_plain(&mut self, cmd: &Command) -> Outcome {
        match cmd {
            Command::SetPolicy {
                document,
                author,
                time_ns,
            } => {
                if document.len() > MAX_POLICY_BYTES {
                    return Outcome::Rejected(format!(
                        "policy of {} bytes is over the limit of {MAX_POLICY_BYTES}",
                        document.len()
                    ));
                }
                let version = self.policy().map_or(1, |p| p.version + 1);
                self.policies.push_back(PolicyRecord {
                    version,
                    sha256: hex::encode(Sha256::digest(document.as_bytes())),
                    document: document.clone(),
                    author: *author,
                    time_ns: *time_ns,
                });
                while self.policies.len() > POLICY_HISTORY {
                    self.policies.pop_front();
                }
                Outcome::Policy { version }
            }
            Command::Admit {
                node,
                addr,
                by,
                time_ns,
            } => {
                self.removed.remove(node);
                self.members.insert(
                    *node,
                    MemberRecord {
                        addr: truncate(addr),
                        admitted_by: *by,
                        admitted_ns: *time_ns,
                    },
                );
                Outcome::Admitted
            }
            Command::Remove { node, time_ns, .. } => {
                self.members.remove(node);
                self.removed.insert(*node, *time_ns);
                governance::removed(self, node);
                Outcome::Removed
            }
            Command::RegisterModel(model) => {
                if let Err(reason) = check_model(model, self) {
                    return Outcome::Rejected(reason);
                }
                let version = self.models.keys().next_back().map_or(1, |v| v + 1);
                self.models.insert(
                    version,
                    ModelVersion {
                        version,
                        model: model.clone(),
                    },
                );
                if model.activate {
                    self.active_model = Some(version);
                }
                if let Some(r) = model.round.and_then(|id| self.rounds.get_mut(&id))
                    && r.status == RoundStatus::Open
                {
                    r.status = RoundStatus::Done { version };
                }
                Outcome::Model { version }
            }
            Command::ActivateModel { version, .. } => {
                if !self.models.contains_key(version) {
                    return Outcome::Rejected(format!("no model version {version}"));
                }
                self.active_model = Some(*version);
                Outcome::Activated { version: *version }
            }
            Command::StartRound(round) => {
                if round.spec.len() > MAX_ROUND_SPEC || round.kind.len() > MAX_TEXT {
                    return Outcome::Rejected("round settings are too large".into());
                }
                if round.participants.is_empty() {
                    return Outcome::Rejected("a round needs participants".into());
                }
                if let Some(b) = round.base
                    && !self.models.contains_key(&b)
                {
                    return Outcome::Rejected(format!("base model version {b} does not exist"));
                }
                let id = self.rounds.keys().next_back().map_or(1, |v| v + 1);
                self.rounds.insert(
                    id,
                    RoundRecord {
                        id,
                        round: round.clone(),
                        status: RoundStatus::Open,
                    },
                );
                while self.rounds.len() > ROUND_HISTORY {
                    self.rounds.pop_first();
                }
                Outcome::Round { id }
            }
            Command::AbandonRound { id, reason, .. } => match self.rounds.get_mut(id) {
                Some(r) if r.status == RoundStatus::Open => {
                    r.status = RoundStatus::Abandoned {
                        reason: truncate(reason),
                    };
                    Outcome::Abandoned { id: *id }
                }
                Some(_) => Outcome::Rejected(format!("round {id} is not open")),
                None => Outcome::Rejected(format!("no round {id}")),
            },
            Command::SetOperator {
                name,
                key,
                role,
                by,
                time_ns,
            } => operators::set(&mut self.operators, name, key, *role, by, *time_ns),
            Command::RemoveOperator { name, .. } => operators::remove(&mut self.operators, name),
            Command::RotateOperator {
                name,
                key,
                old_sig,
                new_sig,
                ..
            } => operators::rotate(&mut self.operators, name, key, old_sig, new_sig),
            Command::Propose(p) => governance::propose(self, p),
            Command::Approve { id, approval } => governance::approve(self, *id, approval),
            Command::RotateNode(r) => rotation::apply(self, r),
            Command::Audited { .. } => {
                Outcome::Rejected("an audited command cannot carry another".into())
            }
        }
    }
}

fn truncate(s: &str) -> String {
    let mut end = s.len().min(MAX_TEXT);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

fn check_model(m: &NewModel, state: &ClusterState) -> Result<(), String> {
    if m.sha256.len() != 64 || !m.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "model sha256 `{}` is not 64 hex digits",
            truncate(&m.sha256)
        ));
    }
    if m.schema.is_empty() || m.schema.len() > MAX_TEXT {
        return Err("model schema must be 1 to 1024 bytes".into());
    }
    if let Some(p) = m.parent
        && !state.models.contains_key(&p)
    {
        return Err(format!("parent model version {p} does not exist"));
    }
    if m.metrics.len() > 64 || m.metrics.keys().any(|k| k.len() > MAX_TEXT) {
        return Err("at most 64 model metrics with short names".into());
    }
    if m.participants.len() > 100_000 {
        return Err("too many participants".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests;
