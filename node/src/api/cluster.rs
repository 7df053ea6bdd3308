//! Cluster endpoints: status and initialisation, members, the replicated
//! policy and the model registry. Writes on a follower are forwarded to the
//! leader by the consensus layer; `?consistent=true` makes a read
//! linearizable. A write that cannot commit (no leader, quorum lost) gets
//! `503` within the consensus layer's write budget.

use std::sync::Arc;

use amoskys_consensus::{Applied, ClusterError, Command, NodeId, Outcome};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::audit::CallerExt;
use super::{ApiState, error, proposals};
use crate::policy::Policy;

pub(super) fn cluster_error(e: ClusterError) -> Response {
    let status = match &e {
        ClusterError::NoLeader(_) | ClusterError::QuorumLost { .. } | ClusterError::Timeout(_) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        ClusterError::Rejected(_) => StatusCode::CONFLICT,
        ClusterError::Invalid(_) => StatusCode::BAD_REQUEST,
        ClusterError::Storage(_) | ClusterError::Raft(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    if let ClusterError::QuorumLost { quorum, .. } = &e {
        let body = serde_json::json!({ "error": e.to_string(), "quorum": quorum });
        return (status, Json(body)).into_response();
    }
    error(status, e.to_string())
}

fn now_ns() -> u64 {
    amoskys_sensors::now_ns()
}

/// The result an audit record gives for a cluster call.
pub(super) fn result_of<T>(done: &Result<T, ClusterError>) -> String {
    match done {
        Ok(_) => "ok".into(),
        Err(e) => format!("failed: {e}"),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct ReadParams {
    consistent: Option<bool>,
}

/// The applied state, linearizable when asked.
pub(super) async fn read(state: &ApiState, params: &ReadParams) -> Result<Arc<Applied>, Response> {
    if params.consistent.unwrap_or(false) {
        state
            .cluster
            .read_linearizable()
            .await
            .map_err(cluster_error)
    } else {
        Ok(state.cluster.applied().borrow().clone())
    }
}

/// `GET /api/v1/cluster`: this node's view, with the quorum as the leader
/// sees it.
pub(super) async fn status(State(state): State<ApiState>) -> Response {
    let mut cluster = state.cluster.status();
    cluster.quorum = state.cluster.quorum().await;
    let in_force = state.policy.borrow().clone();
    Json(serde_json::json!({
        "cluster": cluster,
        "policy_version": in_force.version,
        "policy_error": in_force.error,
    }))
    .into_response()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct InitBody {
    /// Other first members (peer ids), all voters.
    #[serde(default)]
    peers: Vec<String>,
}

/// `POST /api/v1/cluster/init`
pub(super) async fn init(
    State(state): State<ApiState>,
    caller: CallerExt,
    body: Option<Json<InitBody>>,
) -> Response {
    let body = body.map(|Json(b)| b).unwrap_or_default();
    if body.peers.len() > super::validate::MAX_INIT_PEERS {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "peers: {} is over the limit of {}",
                body.peers.len(),
                super::validate::MAX_INIT_PEERS
            ),
        );
    }
    let mut others = Vec::new();
    for (i, p) in body.peers.iter().enumerate() {
        match NodeId::parse(p) {
            Ok(id) => others.push((id, String::new())),
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("peers[{i}]: {e}")),
        }
    }
    if state.cluster.status().initialized {
        return error(
            StatusCode::CONFLICT,
            "this node is already in a cluster".into(),
        );
    }
    let done = state.cluster.initialize(&others).await;
    let summary = format!("first voters: this node and {} other(s)", others.len());
    let result = result_of(&done);
    let (action, target) = ("cluster.init", "cluster");
    super::audit::note(&state, &caller, action, target, &summary, &result);
    match done {
        Ok(()) => {
            tokio::spawn(crate::cluster::record_first_admin(
                state.cluster.clone(),
                state.authority.local_admin_hex(),
                (*state.key).clone(),
            ));
            (
                StatusCode::CREATED,
                Json(serde_json::json!({ "cluster": state.cluster.status() })),
            )
                .into_response()
        }
        Err(e) => cluster_error(e),
    }
}

#[derive(Debug, Serialize)]
struct Member {
    id: String,
    role: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    admitted_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    admitted_ns: Option<u64>,
}

/// `GET /api/v1/members`
pub(super) async fn members(
    State(state): State<ApiState>,
    Query(params): Query<ReadParams>,
) -> Response {
    let applied = match read(&state, &params).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let voters: Vec<NodeId> = applied.membership.voter_ids().collect();
    let mut out = Vec::new();
    for (id, _) in applied.membership.nodes() {
        let record = applied.state.members.get(id);
        out.push(Member {
            id: id.to_string(),
            role: if voters.contains(id) {
                "voter"
            } else {
                "learner"
            },
            admitted_by: record.map(|r| r.admitted_by.to_string()),
            admitted_ns: record.map(|r| r.admitted_ns),
        });
    }
    let removed: Vec<serde_json::Value> = applied
        .state
        .removed
        .iter()
        .map(|(id, t)| serde_json::json!({ "id": id.to_string(), "removed_ns": t }))
        .collect();
    Json(serde_json::json!({
        "members": out,
        "pending": state.cluster.pending(),
        "removed": removed,
    }))
    .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AdmitBody {
    id: String,
    #[serde(default)]
    addr: String,
}

/// `POST /api/v1/members`: admits a node as a learner.
pub(super) async fn admit(
    State(state): State<ApiState>,
    caller: CallerExt,
    Json(body): Json<AdmitBody>,
) -> Response {
    let id = match NodeId::parse(&body.id) {
        Ok(id) => id,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("id: {e}")),
    };
    if let Err(e) = super::validate::member_addr("addr", &body.addr) {
        return error(StatusCode::BAD_REQUEST, e);
    }
    let summary = format!("admit {id} as a learner (addr {:?})", body.addr);
    let done = state.cluster.admit(id, body.addr).await;
    let target = id.to_string();
    let result = result_of(&done);
    super::audit::note(&state, &caller, "members.admit", &target, &summary, &result);
    match done {
        Ok(()) => (
            StatusCode::CREATED,
            Json(serde_json::json!({ "admitted": id.to_string(), "role": "learner" })),
        )
            .into_response(),
        Err(e) => cluster_error(e),
    }
}

/// `DELETE /api/v1/members/{id}`
pub(super) async fn remove(
    State(state): State<ApiState>,
    caller: CallerExt,
    Path(id): Path<String>,
) -> Response {
    let id = match NodeId::parse(&id) {
        Ok(id) => id,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("id: {e}")),
    };
    // A removal its approvals passed runs as asked; any other is governed.
    if let Some(proposal) = proposals::approved_removal(&state, &id) {
        return proposals::run_removal(&state, &caller, proposal, id).await;
    }
    let cmd = Command::Remove {
        node: id,
        by: state.cluster.id(),
        time_ns: now_ns(),
    };
    if let Some(r) = proposals::propose_if_governed(&state, &caller, &cmd).await {
        return r;
    }
    let done = state.cluster.remove(id).await;
    let target = id.to_string();
    let result = result_of(&done);
    let summary = "remove from the cluster";
    super::audit::note(&state, &caller, "members.remove", &target, summary, &result);
    match done {
        Ok(()) => Json(serde_json::json!({ "removed": id.to_string() })).into_response(),
        Err(e) => cluster_error(e),
    }
}

/// `GET /api/v1/policy`: the committed policy (or the configuration's,
/// before one is committed) and what this node runs.
pub(super) async fn policy(
    State(state): State<ApiState>,
    Query(params): Query<ReadParams>,
) -> Response {
    let applied = match read(&state, &params).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let in_force = state.policy.borrow().clone();
    let committed = applied.state.policy().map(|p| {
        serde_json::json!({
            "version": p.version,
            "sha256": p.sha256,
            "author": p.author.to_string(),
            "time_ns": p.time_ns,
            "document": p.document,
        })
    });
    Json(serde_json::json!({
        "committed": committed,
        "in_force": {
            "version": in_force.version,
            "error": in_force.error,
            "document": in_force.policy.to_toml(),
        },
    }))
    .into_response()
}

/// `PUT /api/v1/policy`: validates the TOML body and commits it.
pub(super) async fn set_policy(
    State(state): State<ApiState>,
    caller: CallerExt,
    body: String,
) -> Response {
    if body.len() > amoskys_consensus::state::MAX_POLICY_BYTES {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "policy of {} bytes is over the limit of {}",
                body.len(),
                amoskys_consensus::state::MAX_POLICY_BYTES
            ),
        );
    }
    let approvals = match Policy::parse(&body) {
        Ok(p) => p.governance.approvals,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid policy: {e}")),
    };
    if let Err(e) = proposals::check_approvals(&state, approvals) {
        return error(StatusCode::BAD_REQUEST, format!("invalid policy: {e}"));
    }
    let before = state.cluster.applied().borrow().state.policy().cloned();
    let summary = crate::audit::policy_summary(before.as_ref(), &body);
    let cmd = Command::SetPolicy {
        document: body,
        author: state.cluster.id(),
        time_ns: now_ns(),
    };
    if let Some(r) = proposals::propose_if_governed(&state, &caller, &cmd).await {
        return r;
    }
    match super::audit::commit(&state, &caller, "policy.set", "policy", &summary, cmd).await {
        Ok((log_index, outcome)) => {
            let version = match outcome {
                Outcome::Policy { version } => Some(version),
                _ => None,
            };
            Json(serde_json::json!({ "version": version, "log_index": log_index })).into_response()
        }
        Err(r) => r,
    }
}

/// `GET /api/v1/policy/history`
pub(super) async fn policy_history(
    State(state): State<ApiState>,
    Query(params): Query<ReadParams>,
) -> Response {
    let applied = match read(&state, &params).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let versions: Vec<serde_json::Value> = applied
        .state
        .policies
        .iter()
        .rev()
        .map(|p| {
            serde_json::json!({
                "version": p.version,
                "sha256": p.sha256,
                "author": p.author.to_string(),
                "time_ns": p.time_ns,
                "bytes": p.document.len(),
            })
        })
        .collect();
    Json(serde_json::json!({ "versions": versions })).into_response()
}

/// `POST /api/v1/models/{version}/activate`: pins a registered version
/// (or rolls back to it) on every node.
pub(super) async fn activate_model(
    State(state): State<ApiState>,
    caller: CallerExt,
    Path(version): Path<String>,
) -> Response {
    let Ok(version) = version.parse::<u64>() else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("version: {version:?} is not a number"),
        );
    };
    let (active, head) = {
        let applied = state.cluster.applied().borrow().clone();
        let head = applied
            .state
            .models
            .get(&version)
            .is_some_and(|m| m.model.schema.starts_with("head:"));
        (applied.state.active_model, head)
    };
    if head {
        // A head is in force by the policy (`learning.head`), not activated.
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "version: {version} is a supervised head (learning.head = \"federated\" puts the newest in force), not an anomaly model"
            ),
        );
    }
    let summary = format!(
        "active model {} -> {version}",
        active.map_or("none".to_owned(), |v| v.to_string())
    );
    let cmd = Command::ActivateModel {
        version,
        by: state.cluster.id(),
        time_ns: now_ns(),
    };
    if let Some(r) = proposals::propose_if_governed(&state, &caller, &cmd).await {
        return r;
    }
    let target = format!("model {version}");
    let action = "models.activate";
    match super::audit::commit(&state, &caller, action, &target, &summary, cmd).await {
        Ok(_) => Json(serde_json::json!({ "active": version })).into_response(),
        Err(r) => r,
    }
}
