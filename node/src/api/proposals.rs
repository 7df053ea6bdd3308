//! Changes that need admins of several nodes (`[governance] approvals`,
//! consensus/src/governance.rs): the write handlers of a policy change, a
//! member removal and a model activation ask [`propose_if_governed`]
//! first, and `GET /api/v1/proposals` and
//! `POST /api/v1/proposals/{id}/approve` list and approve the proposals.
//!
//! Answers: `202` with the proposal when a change became one or an
//! approval still leaves it short, `200` when it was applied, `404` for an
//! unknown proposal, `409` for one expired or closed, or an approval from
//! a node or operator that already gave one.

use std::sync::Arc;
use std::time::Duration;

use amoskys_consensus::governance::{self, GovernancePolicy};
use amoskys_consensus::{
    Applied, Approval, ClusterState, Command, NewProposal, Outcome, Proposal, Role,
};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::audit::{self, CallerExt, who};
use super::cluster::{ReadParams, cluster_error, read};
use super::{ApiState, error};
use crate::auth::Caller;
use crate::policy::Policy;

/// How long a governed write waits for the leader's view of the policy.
const READ_WAIT: Duration = Duration::from_secs(1);

fn now_ns() -> u64 {
    amoskys_sensors::now_ns()
}

/// The `[governance]` section of the committed policy (the node's own
/// policy's before one is committed, or when this build cannot read it).
pub(super) fn in_force(state: &ApiState, cluster: &ClusterState) -> GovernancePolicy {
    cluster
        .policy()
        .and_then(|p| Policy::parse(&p.document).ok())
        .map_or_else(|| state.policy.borrow().policy.governance, |p| p.governance)
}

/// `governance.approvals` of a policy being set: at most the voters there
/// are now, or no change could ever be approved.
pub(super) fn check_approvals(state: &ApiState, approvals: u32) -> Result<(), String> {
    let voters = state.cluster.members().0.len().max(1);
    if usize::try_from(approvals).unwrap_or(usize::MAX) > voters {
        return Err(format!(
            "governance.approvals: {approvals} is more than the {voters} voter(s) of the cluster; no change could be approved"
        ));
    }
    Ok(())
}

/// The approval `caller` gives through this node, or the refusal's status
/// and reason.
fn approval(state: &ApiState, caller: Option<&Caller>) -> Result<Approval, (StatusCode, String)> {
    let Some(caller) = caller else {
        return Err((
            StatusCode::UNAUTHORIZED,
            "this change needs approvals, and an approval needs a signed request from an admin"
                .into(),
        ));
    };
    if caller.role != Role::Admin {
        return Err((
            StatusCode::FORBIDDEN,
            format!(
                "operator {} has the role {}; only admins propose and approve changes",
                caller.name, caller.role
            ),
        ));
    }
    Ok(Approval {
        node: state.cluster.id(),
        operator: caller.name.clone(),
        key: caller.key.clone(),
        time_ns: now_ns(),
    })
}

/// The committed state to take `approvals` from: the leader's own, and
/// on a follower a linearizable read, so a lagging follower cannot let a
/// change through under an older `approvals`. When that read fails or
/// takes over a second (no quorum), this node's view decides; the write
/// that follows fails the same way and says why.
async fn committed_view(state: &ApiState) -> Arc<Applied> {
    let leader = state.cluster.raft().metrics().borrow().current_leader;
    if leader != Some(state.cluster.id()) {
        let read = tokio::time::timeout(READ_WAIT, state.cluster.read_linearizable()).await;
        match read {
            Ok(Ok(a)) => return a,
            Ok(Err(e)) => tracing::debug!(error = %e, "governance reads the local state"),
            Err(_) => tracing::debug!("governance reads the local state: no read index in time"),
        }
    }
    state.cluster.applied().borrow().clone()
}

/// When the committed policy asks for more than one approval, makes `cmd`
/// a proposal (the caller's approval its first) and returns the `202`
/// answer, or the refusal; `None` when `cmd` is to be committed directly.
pub(super) async fn propose_if_governed(
    state: &ApiState,
    caller: &CallerExt,
    cmd: &Command,
) -> Option<Response> {
    let applied = committed_view(state).await;
    let gov = in_force(state, &applied.state);
    if gov.approvals <= 1 {
        return None;
    }
    let by = match approval(state, who(caller)) {
        Ok(a) => a,
        Err((status, reason)) => return Some(error(status, reason)),
    };
    let expires_ns = by
        .time_ns
        .saturating_add(gov.proposal_ttl_secs.saturating_mul(1_000_000_000));
    let proposal = NewProposal {
        command: cmd.clone(),
        needed: gov.approvals,
        expires_ns,
        by,
    };
    let (kind, summary) = target(cmd);
    let summary = format!("{summary}; needs admins of {} nodes", gov.approvals);
    let cmd = Command::Propose(Box::new(proposal));
    Some(
        match audit::commit(state, caller, "proposals.propose", kind, &summary, cmd).await {
            Ok((_, Outcome::Proposal { id, needed, .. })) => (
                StatusCode::ACCEPTED,
                Json(serde_json::json!({
                    "proposal": id,
                    "status": "open",
                    "approvals": 1,
                    "needed": needed,
                    "expires_ns": expires_ns,
                })),
            )
                .into_response(),
            Ok((_, other)) => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("unexpected outcome of a proposal: {other:?}"),
            ),
            Err(r) => r,
        },
    )
}

/// What a proposal changes, in a few words.
fn target(cmd: &Command) -> (&'static str, String) {
    match cmd {
        Command::SetPolicy { document, .. } => (
            "policy",
            format!(
                "policy sha256 {}",
                hex::encode(&Sha256::digest(document.as_bytes())[..8])
            ),
        ),
        Command::Remove { node, .. } => ("remove", format!("remove member {node}")),
        Command::ActivateModel { version, .. } => {
            ("activate", format!("activate model version {version}"))
        }
        _ => ("other", String::new()),
    }
}

fn proposal_json(p: &Proposal, now_ns: u64) -> serde_json::Value {
    let (kind, summary) = target(&p.command);
    let mut status = serde_json::to_value(&p.status).unwrap_or_default();
    // An open proposal past its expiry is marked by the next proposal or
    // approval; it can no longer apply.
    if p.status == amoskys_consensus::ProposalStatus::Open && now_ns > p.expires_ns {
        status["status"] = "expired".into();
    }
    let approvals: Vec<serde_json::Value> = p
        .approvals
        .iter()
        .map(|a| {
            serde_json::json!({
                "node": a.node.to_string(),
                "operator": a.operator,
                "key": a.key,
                "time_ns": a.time_ns,
            })
        })
        .collect();
    let mut v = serde_json::json!({
        "id": p.id,
        "status": status["status"],
        "kind": kind,
        "summary": summary,
        "needed": p.needed,
        "approvals": approvals,
        "created_ns": p.created_ns,
        "expires_ns": p.expires_ns,
        "closed_ns": p.closed_ns,
    });
    if let Some(reason) = status.get("reason") {
        v["reason"] = reason.clone();
    }
    if let Command::SetPolicy { document, .. } = &p.command {
        v["document"] = document.as_str().into();
    }
    v
}

/// `GET /api/v1/proposals`: every proposal the state holds, newest first,
/// with the `[governance]` settings in force.
pub(super) async fn list(
    State(state): State<ApiState>,
    Query(params): Query<ReadParams>,
) -> Response {
    let applied = match read(&state, &params).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let now = now_ns();
    let proposals: Vec<serde_json::Value> = applied
        .state
        .governance
        .proposals
        .values()
        .rev()
        .map(|p| proposal_json(p, now))
        .collect();
    let gov = in_force(&state, &applied.state);
    Json(serde_json::json!({
        "approvals": gov.approvals,
        "proposal_ttl_secs": gov.proposal_ttl_secs,
        "proposals": proposals,
    }))
    .into_response()
}

/// `POST /api/v1/proposals/{id}/approve`: the caller's approval through
/// this node; the last one needed applies the change.
pub(super) async fn approve(
    State(state): State<ApiState>,
    caller: CallerExt,
    Path(id): Path<String>,
) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("id: {id:?} is not a proposal number"),
        );
    };
    let a = match approval(&state, who(&caller)) {
        Ok(a) => a,
        Err((status, reason)) => return error(status, reason),
    };
    match state.cluster.read_linearizable().await {
        Ok(applied) if !applied.state.governance.proposals.contains_key(&id) => {
            return error(
                StatusCode::NOT_FOUND,
                format!("no proposal {id} (amoskys proposals list shows them)"),
            );
        }
        Ok(_) => {}
        Err(e) => return cluster_error(e),
    }
    let cmd = Command::Approve { id, approval: a };
    let target = format!("proposal {id}");
    match audit::commit(
        &state,
        &caller,
        "proposals.approve",
        &target,
        "approve",
        cmd,
    )
    .await
    {
        Ok((
            _,
            Outcome::Proposal {
                approvals, needed, ..
            },
        )) => (
            StatusCode::ACCEPTED,
            Json(serde_json::json!({
                "proposal": id,
                "status": "open",
                "approvals": approvals,
                "needed": needed,
            })),
        )
            .into_response(),
        Ok((_, Outcome::Passed { outcome, .. })) => match *outcome {
            Outcome::Rejected(reason) => error(
                StatusCode::CONFLICT,
                format!("proposal {id} was approved, but the state refused its change: {reason}"),
            ),
            outcome => Json(serde_json::json!({
                "proposal": id,
                "status": "applied",
                "outcome": outcome,
            }))
            .into_response(),
        },
        Ok((_, Outcome::RemovalApproved { node, .. })) => {
            run_removal(&state, &caller, id, node).await
        }
        Ok((_, other)) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("unexpected outcome of an approval: {other:?}"),
        ),
        Err(r) => r,
    }
}

/// Runs an approved removal through the leader.
pub(super) async fn run_removal(
    state: &ApiState,
    caller: &CallerExt,
    id: u64,
    node: amoskys_consensus::NodeId,
) -> Response {
    let done = state.cluster.remove(node).await;
    let summary = format!("remove from the cluster, approved by proposal {id}");
    let result = super::cluster::result_of(&done);
    audit::note(
        state,
        caller,
        "members.remove",
        &node.to_string(),
        &summary,
        &result,
    );
    match done {
        Ok(()) => Json(serde_json::json!({
            "proposal": id,
            "status": "applied",
            "removed": node.to_string(),
        }))
        .into_response(),
        Err(e) => {
            let note = format!(
                "proposal {id} is approved, but the removal did not run ({e}); run `amoskys members remove {node}` again to finish it"
            );
            let mut resp = cluster_error(e);
            *resp.body_mut() = axum::body::Body::from(
                serde_json::json!({ "error": note, "proposal": id }).to_string(),
            );
            resp
        }
    }
}

/// An approved removal of `node` that has not run yet.
pub(super) fn approved_removal(state: &ApiState, node: &amoskys_consensus::NodeId) -> Option<u64> {
    governance::approved_removal(&state.cluster.applied().borrow().state, node)
}

#[cfg(test)]
mod tests {
    use amoskys_consensus::{NodeId, ProposalStatus};

    use super::*;

    fn proposal(status: ProposalStatus) -> Proposal {
        Proposal {
            id: 4,
            command: Command::SetPolicy {
                document: "[rules]\n".into(),
                author: NodeId::from(1),
                time_ns: 1,
            },
            needed: 2,
            created_ns: 1,
            expires_ns: 100,
            approvals: vec![Approval {
                node: NodeId::from(1),
                operator: "alice".into(),
                key: "ab".repeat(32),
                time_ns: 1,
            }],
            status,
            closed_ns: None,
        }
    }

    #[test]
    fn a_listed_proposal_shows_its_change_and_is_expired_once_past_its_time() {
        let open = proposal(ProposalStatus::Open);
        let v = proposal_json(&open, 50);
        assert_eq!(v["status"], "open");
        assert_eq!(v["kind"], "policy");
        assert_eq!(v["document"], "[rules]\n");
        assert_eq!(v["approvals"][0]["operator"], "alice");
        assert!(
            v["summary"]
                .as_str()
                .is_some_and(|s| s.starts_with("policy sha256 ")),
            "{v}"
        );
        assert_eq!(proposal_json(&open, 101)["status"], "expired");
        let failed = proposal(ProposalStatus::Failed {
            reason: "no model version 7".into(),
        });
        let v = proposal_json(&failed, 101);
        assert_eq!(
            (&v["status"], &v["reason"]),
            (&"failed".into(), &"no model version 7".into())
        );
        let remove = Command::Remove {
            node: NodeId::from(3),
            by: NodeId::from(1),
            time_ns: 1,
        };
        assert_eq!(target(&remove).0, "remove");
    }
}
