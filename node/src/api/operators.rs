//! Operators (`/api/v1/operators`) and `GET /api/v1/whoami`. Operators are
//! replicated state: a change commits through Raft and holds on every node
//! (the rules, such as never removing the last admin, are checked on
//! apply: consensus/src/operators.rs).

use amoskys_consensus::{Command, Role, operators};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;

use super::audit;
use super::{ApiState, error};
use crate::auth::Caller;

/// `GET /api/v1/whoami`: the operator a request was signed by.
pub(super) async fn whoami(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
) -> Response {
    Json(serde_json::json!({
        "name": caller.name,
        "key": caller.key,
        "role": caller.role,
        "node": state.info.id,
    }))
    .into_response()
}

/// `GET /api/v1/operators`
pub(super) async fn list(State(state): State<ApiState>) -> Response {
    let applied = state.cluster.applied().borrow().clone();
    let list: Vec<_> = applied
        .state
        .operators
        .iter()
        .map(|(name, op)| {
            serde_json::json!({
                "name": name,
                "key": op.key,
                "role": op.role,
                "added_by": op.added_by,
                "added_ns": op.added_ns,
                "previous_keys": op.previous_keys,
            })
        })
        .collect();
    Json(serde_json::json!({ "operators": list })).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AddBody {
    name: String,
    key: String,
    role: String,
}

fn role_of(s: &str) -> Result<Role, String> {
    s.parse::<Role>().map_err(|e| format!("role: {e}"))
}

/// `POST /api/v1/operators`: a new operator; an existing name is refused
/// (change a role with `PUT /api/v1/operators/{name}`).
pub(super) async fn add(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Json(body): Json<AddBody>,
) -> Response {
    if let Err(e) = operators::check_name(&body.name) {
        return error(StatusCode::BAD_REQUEST, format!("name: {e}"));
    }
    if let Err(e) = operators::check_key(&body.key) {
        return error(StatusCode::BAD_REQUEST, format!("key: {e}"));
    }
    let role = match role_of(&body.role) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    if state
        .cluster
        .applied()
        .borrow()
        .state
        .operators
        .contains_key(&body.name)
    {
        return error(
            StatusCode::CONFLICT,
            format!(
                "operator {} exists; change its role with `amoskys operator role`, or remove it first",
                body.name
            ),
        );
    }
    let summary = format!("add as {role}, key {}", short(&body.key));
    let cmd = Command::SetOperator {
        name: body.name.clone(),
        key: body.key,
        role,
        by: caller.name.clone(),
        time_ns: amoskys_sensors::now_ns(),
    };
    let action = "operators.add";
    match audit::commit_by(&state, &caller, action, &body.name, &summary, cmd).await {
        Ok((index, _)) => (
            StatusCode::CREATED,
            Json(serde_json::json!({ "name": body.name, "role": role, "index": index })),
        )
            .into_response(),
        Err(resp) => resp,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RoleBody {
    role: String,
}

/// `PUT /api/v1/operators/{name}`: a new role, same key.
pub(super) async fn set_role(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Json(body): Json<RoleBody>,
) -> Response {
    let role = match role_of(&body.role) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let Some((key, before)) = state
        .cluster
        .applied()
        .borrow()
        .state
        .operators
        .get(&name)
        .map(|op| (op.key.clone(), op.role))
    else {
        return unknown(&name);
    };
    let summary = format!("role {before} -> {role}");
    let cmd = Command::SetOperator {
        name: name.clone(),
        key,
        role,
        by: caller.name.clone(),
        time_ns: amoskys_sensors::now_ns(),
    };
    let action = "operators.role";
    match audit::commit_by(&state, &caller, action, &name, &summary, cmd).await {
        Ok((index, _)) => {
            Json(serde_json::json!({ "name": name, "role": role, "index": index })).into_response()
        }
        Err(resp) => resp,
    }
}

/// `DELETE /api/v1/operators/{name}`
pub(super) async fn remove(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Response {
    let Some(before) = state
        .cluster
        .applied()
        .borrow()
        .state
        .operators
        .get(&name)
        .map(|op| op.role)
    else {
        return unknown(&name);
    };
    let summary = format!("remove (was {before})");
    let cmd = Command::RemoveOperator {
        name: name.clone(),
        by: caller.name.clone(),
        time_ns: amoskys_sensors::now_ns(),
    };
    let action = "operators.remove";
    match audit::commit_by(&state, &caller, action, &name, &summary, cmd).await {
        Ok((index, _)) => {
            Json(serde_json::json!({ "removed": name, "index": index })).into_response()
        }
        Err(resp) => resp,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RotateBody {
    key: String,
    old_sig: String,
    new_sig: String,
}

/// `POST /api/v1/operators/{name}/rotate`: the operator itself hands over
/// to a new key; both keys sign the statement of
/// [`operators::rotation_statement`]. From the commit on, the old key is
/// refused on every node.
pub(super) async fn rotate(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Json(body): Json<RotateBody>,
) -> Response {
    if caller.name != name {
        return error(
            StatusCode::FORBIDDEN,
            format!(
                "only {name} may rotate its own key (signed with it); an admin replaces a lost key with `operator remove` and `operator add`"
            ),
        );
    }
    if let Err(e) = operators::check_key(&body.key) {
        return error(StatusCode::BAD_REQUEST, format!("key: {e}"));
    }
    for (field, sig) in [("old_sig", &body.old_sig), ("new_sig", &body.new_sig)] {
        if sig.len() != 128 || !sig.bytes().all(|b| b.is_ascii_hexdigit()) {
            return error(
                StatusCode::BAD_REQUEST,
                format!("{field}: expected 128 hex digits (an ed25519 signature)"),
            );
        }
    }
    let summary = format!("key {} -> {}", short(&caller.key), short(&body.key));
    let cmd = Command::RotateOperator {
        name: name.clone(),
        key: body.key.clone(),
        old_sig: body.old_sig,
        new_sig: body.new_sig,
        time_ns: amoskys_sensors::now_ns(),
    };
    let action = "operators.rotate";
    match audit::commit_by(&state, &caller, action, &name, &summary, cmd).await {
        Ok((index, _)) => {
            Json(serde_json::json!({ "name": name, "key": body.key, "index": index }))
                .into_response()
        }
        Err(resp) => resp,
    }
}

fn unknown(name: &str) -> Response {
    let shown: String = name.chars().take(80).collect();
    error(
        StatusCode::NOT_FOUND,
        format!("no operator named {shown:?}"),
    )
}

/// The first 12 hex digits of a key, for a summary.
fn short(key: &str) -> &str {
    key.get(..12).unwrap_or(key)
}
