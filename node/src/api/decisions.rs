//! `/api/v1/decisions`: the response decisions every node's bouncer
//! enforces (docs/RESPONSE.md). Operators add and remove them by hand;
//! each edit keeps the operator's signed request and is audited. A
//! decision that would block a protected address (loopback, this node's
//! addresses, a member's, `response.never_block`) is refused and counted.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::audit::{CallerExt, who};
use super::{ApiState, error};
use crate::auth::SignedRequest;
use crate::response::decisions::{Action, Decision, MAX_DURATION_SECS, MAX_REASON_BYTES};
use crate::response::{BouncerStatus, Subject};
use crate::workspace::decisions::AddBody;
use crate::workspace::{EditError, Operator};

type SignedExt = Option<axum::Extension<SignedRequest>>;

/// The operator of an edit with their signed request, or why it cannot
/// be kept (a 400).
fn operator(caller: &CallerExt, signed: &SignedExt) -> Result<Option<Operator>, String> {
    let (Some(caller), Some(signed)) = (who(caller), signed) else {
        return Ok(None);
    };
    Operator::from_request(&caller.name, caller.role, &signed.0)
        .map(Some)
        .map_err(|e| e.to_string())
}

async fn blocking<T: Send + 'static>(
    state: &ApiState,
    f: impl FnOnce(&crate::workspace::Workspace) -> Result<T, EditError> + Send + 'static,
) -> Result<T, Response> {
    let ws = state.workspace.clone();
    match tokio::task::spawn_blocking(move || f(&ws)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(EditError::Store(e))) => {
            Err(error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
        }
        Ok(Err(e)) => Err(error(StatusCode::BAD_REQUEST, e.to_string())),
        Err(e) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}

/// The subject a client named, or the 400 message.
fn subject(text: &str) -> Result<Subject, String> {
    text.parse::<Subject>().map_err(|e| format!("subject: {e}"))
}

/// `GET /api/v1/decisions`: the live decisions, the mode in force and
/// this node's bouncer.
pub(super) async fn list(State(state): State<ApiState>) -> Response {
    let mode = state.policy.borrow().policy.response.mode.clone();
    let bouncer: BouncerStatus = state.response.status();
    match blocking(&state, |w| Ok(w.decisions_list())).await {
        Ok(list) => Json(serde_json::json!({
            "mode": mode,
            "bouncer": bouncer,
            "decisions": list,
        }))
        .into_response(),
        Err(r) => r,
    }
}

/// `POST /api/v1/decisions`: `{subject, reason, duration_secs}`.
pub(super) async fn add(
    State(state): State<ApiState>,
    caller: CallerExt,
    signed: SignedExt,
    Json(body): Json<AddBody>,
) -> Response {
    let op = match operator(&caller, &signed) {
        Ok(op) => op,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let subject = match subject(&body.subject) {
        Ok(s) => s,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    if !(1..=MAX_DURATION_SECS).contains(&body.duration_secs) {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "duration_secs: {} is out of range (expected 1 to {MAX_DURATION_SECS}, 30 days)",
                body.duration_secs
            ),
        );
    }
    if body.reason.len() > MAX_REASON_BYTES {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "reason: {} bytes are over {MAX_REASON_BYTES}",
                body.reason.len()
            ),
        );
    }
    let target = subject.to_string();
    let summary = format!(
        "block_source for {} s, reason {:?}",
        body.duration_secs, body.reason
    );
    if let Err(r) = state.response.check(&subject) {
        super::audit::note(
            &state,
            &caller,
            "decisions.add",
            &target,
            &summary,
            &format!("refused: {r}"),
        );
        return error(
            StatusCode::BAD_REQUEST,
            format!("subject {subject} refused: {r}"),
        );
    }
    let now = amoskys_sensors::now_ns() / 1_000_000;
    let name = who(&caller).map_or("local".to_owned(), |c| c.name.clone());
    let decision = Decision {
        subject,
        action: Action::BlockSource,
        reason: body.reason,
        alerts: Vec::new(),
        origin: format!("operator:{name}@{}", state.info.id),
        created_ms: now,
        expires_ms: now.saturating_add(body.duration_secs.saturating_mul(1000)),
    };
    match blocking(&state, move |w| w.decision_put(&decision, op.as_ref())).await {
        Ok(view) => {
            super::audit::note(&state, &caller, "decisions.add", &target, &summary, "ok");
            (
                StatusCode::CREATED,
                Json(serde_json::json!({ "decision": view })),
            )
                .into_response()
        }
        Err(r) => r,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RemoveParams {
    subject: String,
}

/// `DELETE /api/v1/decisions?subject=…`
pub(super) async fn remove(
    State(state): State<ApiState>,
    caller: CallerExt,
    signed: SignedExt,
    Query(p): Query<RemoveParams>,
) -> Response {
    let op = match operator(&caller, &signed) {
        Ok(op) => op,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let subject = match subject(&p.subject) {
        Ok(s) => s,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    match blocking(&state, move |w| w.decision_remove(&subject, op.as_ref())).await {
        Ok(Some(view)) => {
            let target = subject.to_string();
            super::audit::note(
                &state,
                &caller,
                "decisions.remove",
                &target,
                "remove decision",
                "ok",
            );
            Json(serde_json::json!({ "removed": view })).into_response()
        }
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            format!("no live decision against {subject}"),
        ),
        Err(r) => r,
    }
}
