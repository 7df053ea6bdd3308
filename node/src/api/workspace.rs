//! The shared workspace: threat intel (`/api/v1/intel`) and case notes
//! (`/api/v1/cases`), editable on any node, also during a partition. Every
//! edit keeps its operator and their signed request in the entries it
//! writes (docs/WORKSPACE.md, "Operators").

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::audit::{CallerExt, who};
use super::{ApiState, error};
use crate::auth::SignedRequest;
use crate::workspace::{EditError, Operator, ProofError, Status};

/// The signed form of the request, as the authentication layer kept it.
type SignedExt = Option<axum::Extension<SignedRequest>>;

/// The operator of an edit with their signed request as proof; `None`
/// without a caller or a signed request (not the case behind the layer).
/// A body too large to keep, or not text, is an error (400).
fn operator(caller: &CallerExt, signed: &SignedExt) -> Result<Option<Operator>, ProofError> {
    let (Some(caller), Some(signed)) = (who(caller), signed) else {
        return Ok(None);
    };
    Operator::from_request(&caller.name, caller.role, &signed.0).map(Some)
}

fn refused(e: EditError) -> Response {
    match e {
        EditError::Store(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        other => error(StatusCode::BAD_REQUEST, other.to_string()),
    }
}

/// Runs a workspace call off the async threads (a large document takes
/// milliseconds to save).
/// Case edits name an alert this node holds; an unknown id is a typo (or
/// an alert not received yet), refused with 404 before anything is written.
async fn known_alert(state: &ApiState, id: &str) -> Result<(), Response> {
    let store = state.store.clone();
    let owned = id.to_owned();
    match tokio::task::spawn_blocking(move || store.alert(&owned)).await {
        Ok(Ok(Some(_))) => Ok(()),
        Ok(Ok(None)) => Err(error(
            StatusCode::NOT_FOUND,
            format!(
                "alert {id:?}: no such alert is stored on this node (ids are the 32 hex characters `amoskys alerts tail` prints)"
            ),
        )),
        Ok(Err(e)) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
        Err(e) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}

async fn blocking<T: Send + 'static>(
    state: &ApiState,
    f: impl FnOnce(&crate::workspace::Workspace) -> T + Send + 'static,
) -> Result<T, Response> {
    let ws = state.workspace.clone();
    tokio::task::spawn_blocking(move || f(&ws))
        .await
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AddBody {
    /// An IP address, a CIDR, a domain or a file hash (md5, sha1, sha256),
    /// optionally as `kind:value`.
    indicator: String,
    #[serde(default)]
    reason: String,
    /// Stops matching this many seconds from now: 1 to
    /// [`MAX_EXPIRES_SECS`].
    #[serde(default)]
    expires_secs: Option<u64>,
}

/// Longest IOC lifetime a client may ask for: one year.
pub const MAX_EXPIRES_SECS: u64 = 365 * 86_400;

/// `GET /api/v1/intel`: live indicators.
pub(super) async fn list(State(state): State<ApiState>) -> Response {
    match blocking(&state, |w| w.intel_list()).await {
        Ok(iocs) => Json(serde_json::json!({ "iocs": iocs })).into_response(),
        Err(r) => r,
    }
}

/// `POST /api/v1/intel`
pub(super) async fn add(
    State(state): State<ApiState>,
    caller: CallerExt,
    signed: SignedExt,
    Json(body): Json<AddBody>,
) -> Response {
    let op = match operator(&caller, &signed) {
        Ok(op) => op,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let expires = match body.expires_secs {
        Some(s) if (1..=MAX_EXPIRES_SECS).contains(&s) => {
            Some(amoskys_sensors::now_ns() / 1_000_000 + s * 1_000)
        }
        Some(s) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "expires_secs: {s} is out of range (expected 1 to {MAX_EXPIRES_SECS}, one year)"
                ),
            );
        }
        None => None,
    };
    let target = body.indicator.clone();
    let summary = format!(
        "add indicator, reason {:?}, expires in {}",
        body.reason,
        body.expires_secs
            .map_or("never".to_owned(), |s| format!("{s} s"))
    );
    match blocking(&state, move |w| {
        w.intel_add_by(&body.indicator, &body.reason, expires, op.as_ref())
    })
    .await
    {
        Ok(Ok(ioc)) => {
            super::audit::note(&state, &caller, "intel.add", &target, &summary, "ok");
            (StatusCode::CREATED, Json(serde_json::json!({ "ioc": ioc }))).into_response()
        }
        Ok(Err(e)) => refused(e),
        Err(r) => r,
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct RemoveParams {
    indicator: String,
}

/// `DELETE /api/v1/intel?indicator=...`
pub(super) async fn remove(
    State(state): State<ApiState>,
    caller: CallerExt,
    signed: SignedExt,
    Query(p): Query<RemoveParams>,
) -> Response {
    let op = match operator(&caller, &signed) {
        Ok(op) => op,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let indicator = p.indicator.clone();
    match blocking(&state, move |w| {
        w.intel_remove_by(&p.indicator, op.as_ref())
    })
    .await
    {
        Ok(Ok(Some(ioc))) => {
            let summary = "remove indicator";
            super::audit::note(&state, &caller, "intel.remove", &indicator, summary, "ok");
            Json(serde_json::json!({ "removed": ioc })).into_response()
        }
        Ok(Ok(None)) => error(
            StatusCode::NOT_FOUND,
            format!("{indicator} is not in the threat intel"),
        ),
        Ok(Err(e)) => refused(e),
        Err(r) => r,
    }
}

/// A case as the API shows it: with `suppression` (the rule and subject a
/// false-positive verdict covers, until when under the policy in force, and
/// how many findings it suppressed on this node since it started), or
/// `null`.
fn case_json(state: &ApiState, case: crate::workspace::Case) -> serde_json::Value {
    let suppression = match (case.status, &case.verdict, &case.status_set) {
        (Status::FalsePositive, Some(v), Some(set)) => {
            let secs = state
                .policy
                .borrow()
                .policy
                .rules
                .false_positive_suppress_secs;
            serde_json::json!({
                "rule": v.rule,
                "subject": v.subject,
                "until_ms": set.at_ms.saturating_add(secs.saturating_mul(1000)),
                "suppressed": state.workspace.suppressed_by(&case.alert),
            })
        }
        _ => serde_json::Value::Null,
    };
    let mut v = serde_json::to_value(&case).unwrap_or_default();
    if let Some(obj) = v.as_object_mut() {
        obj.insert("suppression".into(), suppression);
    }
    v
}

/// `GET /api/v1/cases`: every alert someone worked on.
pub(super) async fn cases(State(state): State<ApiState>) -> Response {
    match blocking(&state, |w| w.case_list()).await {
        Ok(cases) => {
            let cases: Vec<_> = cases.into_iter().map(|c| case_json(&state, c)).collect();
            Json(serde_json::json!({ "cases": cases })).into_response()
        }
        Err(r) => r,
    }
}

/// `GET /api/v1/cases/{alert}`
pub(super) async fn show(State(state): State<ApiState>, Path(alert): Path<String>) -> Response {
    match blocking(&state, move |w| w.case_show(&alert)).await {
        Ok(case) => Json(serde_json::json!({ "case": case_json(&state, case) })).into_response(),
        Err(r) => r,
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AckBody {
    #[serde(default)]
    assignee: Option<String>,
}

/// `POST /api/v1/cases/{alert}/ack`
pub(super) async fn ack(
    State(state): State<ApiState>,
    caller: CallerExt,
    signed: SignedExt,
    Path(alert): Path<String>,
    body: Option<Json<AckBody>>,
) -> Response {
    let op = match operator(&caller, &signed) {
        Ok(op) => op,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let assignee = body.and_then(|b| b.0.assignee);
    if let Err(r) = known_alert(&state, &alert).await {
        return r;
    }
    let target = format!("case {alert}");
    let summary = format!("acknowledge, assignee {assignee:?}");
    match blocking(&state, move |w| {
        w.case_ack_by(&alert, assignee.as_deref(), op.as_ref())
    })
    .await
    {
        Ok(Ok(case)) => {
            super::audit::note(&state, &caller, "case.ack", &target, &summary, "ok");
            Json(serde_json::json!({ "case": case_json(&state, case) })).into_response()
        }
        Ok(Err(e)) => refused(e),
        Err(r) => r,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StatusBody {
    /// new, acknowledged, false_positive or resolved.
    status: String,
}

/// `POST /api/v1/cases/{alert}/status`
pub(super) async fn status(
    State(state): State<ApiState>,
    caller: CallerExt,
    signed: SignedExt,
    Path(alert): Path<String>,
    Json(body): Json<StatusBody>,
) -> Response {
    let op = match operator(&caller, &signed) {
        Ok(op) => op,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let status: Status = match body.status.parse() {
        Ok(s) => s,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("status: {e}")),
    };
    if let Err(r) = known_alert(&state, &alert).await {
        return r;
    }
    let target = format!("case {alert}");
    let summary = format!("status -> {}", body.status);
    match blocking(&state, move |w| {
        w.case_status_by(&alert, status, op.as_ref())
    })
    .await
    {
        Ok(Ok(case)) => {
            super::audit::note(&state, &caller, "case.status", &target, &summary, "ok");
            Json(serde_json::json!({ "case": case_json(&state, case) })).into_response()
        }
        Ok(Err(e)) => refused(e),
        Err(r) => r,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NoteBody {
    text: String,
}

/// `POST /api/v1/cases/{alert}/notes`
pub(super) async fn note(
    State(state): State<ApiState>,
    caller: CallerExt,
    signed: SignedExt,
    Path(alert): Path<String>,
    Json(body): Json<NoteBody>,
) -> Response {
    let op = match operator(&caller, &signed) {
        Ok(op) => op,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    if let Err(r) = known_alert(&state, &alert).await {
        return r;
    }
    let target = format!("case {alert}");
    let summary = format!("note of {} bytes", body.text.len());
    match blocking(&state, move |w| {
        w.case_note_by(&alert, &body.text, op.as_ref())
    })
    .await
    {
        Ok(Ok(note)) => {
            super::audit::note(&state, &caller, "case.note", &target, &summary, "ok");
            (
                StatusCode::CREATED,
                Json(serde_json::json!({ "note": note })),
            )
                .into_response()
        }
        Ok(Err(e)) => refused(e),
        Err(r) => r,
    }
}

/// `GET /api/v1/workspace`: epochs, sizes and sync counters.
pub(super) async fn workspace(State(state): State<ApiState>) -> Response {
    match blocking(&state, |w| w.status()).await {
        Ok(s) => Json(serde_json::json!({ "workspace": s })).into_response(),
        Err(r) => r,
    }
}
