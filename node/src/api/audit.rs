//! The audit trail: `GET /api/v1/audit` lists entries, `GET
//! /api/v1/audit/export` writes them as JSON lines closed by a head line
//! signed by this node (`amoskys audit verify` checks both offline).

use amoskys_consensus::audit::{AuditEntry, ExportHead, ExportLine};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use ed25519_dalek::Signer;
use serde::Deserialize;

use super::{ApiState, bad_request, error, parse_limit, parse_since};

/// Query of the audit routes; parsed by hand so a bad value is named.
#[derive(Debug, Deserialize)]
pub(super) struct AuditParams {
    since: Option<String>,
    after: Option<String>,
    limit: Option<String>,
}

/// Runs a trail read off the async threads.
async fn read<T: Send + 'static>(
    state: &ApiState,
    f: impl FnOnce(&amoskys_consensus::store::AuditReader) -> Result<T, String> + Send + 'static,
) -> Result<T, Response> {
    let cluster = state.cluster.clone();
    match tokio::task::spawn_blocking(move || f(cluster.audit())).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, e)),
        Err(e) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}

/// `GET /api/v1/audit`: with `after=SEQ`, the first `limit` entries after
/// it (to page or follow); otherwise the newest `limit` entries recorded
/// since `since`. Oldest first either way.
pub(super) async fn list(
    State(state): State<ApiState>,
    Query(params): Query<AuditParams>,
) -> Response {
    let since = match parse_since(params.since.as_deref()) {
        Ok(s) => s.unwrap_or(0),
        Err(m) => return bad_request(m),
    };
    let limit = match parse_limit(params.limit.as_deref()) {
        Ok(l) => l,
        Err(m) => return bad_request(m),
    };
    let after = match params.after.as_deref().filter(|a| !a.is_empty()) {
        Some(a) => match a.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => return bad_request(format!("after: {a:?} is not a sequence number")),
        },
        None => None,
    };
    let entries = match read(&state, move |r| match after {
        Some(after) => r.after(after, limit).map(|v| {
            v.into_iter()
                .filter(|e| e.record.time_ns >= since)
                .collect()
        }),
        None => r.newest(since, limit),
    })
    .await
    {
        Ok(e) => e,
        Err(r) => return r,
    };
    let head = state.cluster.applied().borrow().state.audit.clone();
    let entries: Vec<AuditEntry> = entries;
    Json(serde_json::json!({
        "count": head.count,
        "head": head.head,
        "entries": entries,
    }))
    .into_response()
}

/// `GET /api/v1/audit/export`: every entry kept (from the first recorded
/// since `since`), one JSON object a line, then the signed head.
pub(super) async fn export(
    State(state): State<ApiState>,
    Query(params): Query<AuditParams>,
) -> Response {
    let since = match parse_since(params.since.as_deref()) {
        Ok(s) => s.unwrap_or(0),
        Err(m) => return bad_request(m),
    };
    let entries = match read(&state, move |r| r.from_time(since)).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    let node = amoskys_consensus::NodeId(state.key.verifying_key().to_bytes());
    let mut head = ExportHead::of(&entries, node, amoskys_sensors::now_ns());
    head.sig = hex::encode(state.key.sign(&head.signed_bytes()).to_bytes());
    let mut body = Vec::with_capacity(entries.len() * 600 + 512);
    let lines = entries
        .into_iter()
        .map(ExportLine::Entry)
        .chain(std::iter::once(ExportLine::Head { head }));
    for line in lines {
        if let Err(e) = serde_json::to_writer(&mut body, &line) {
            return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
        }
        body.push(b'\n');
    }
    ([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response()
}

/// The caller as the authentication layer found it (absent on a route it
/// does not guard).
pub(super) type CallerExt = Option<axum::Extension<crate::auth::Caller>>;

pub(super) fn who(caller: &CallerExt) -> Option<&crate::auth::Caller> {
    caller.as_ref().map(|c| &c.0)
}

/// Commits `cmd` with its audit record (one Raft entry) and returns its
/// outcome, or the response that says why not: 409 for a refused command
/// (recorded as refused), 503 without a quorum.
pub(super) async fn commit(
    state: &ApiState,
    caller: &CallerExt,
    action: &str,
    target: &str,
    summary: &str,
    cmd: amoskys_consensus::Command,
) -> Result<(u64, amoskys_consensus::Outcome), Response> {
    match crate::audit::commit_as(state, who(caller), action, target, summary, cmd).await {
        Ok((_, amoskys_consensus::Outcome::Rejected(reason))) => {
            Err(error(StatusCode::CONFLICT, reason))
        }
        Ok(done) => Ok(done),
        Err(e) => Err(super::cluster::cluster_error(e)),
    }
}

/// Records an action that is not one replicated command, once done (or
/// refused by the cluster), in the background.
pub(super) fn note(
    state: &ApiState,
    caller: &CallerExt,
    action: &str,
    target: &str,
    summary: &str,
    result: &str,
) {
    crate::audit::note(state, who(caller), action, target, summary, result);
}

/// [`commit`] for a handler that always has its caller (`Extension<Caller>`).
pub(super) async fn commit_by(
    state: &ApiState,
    caller: &crate::auth::Caller,
    action: &str,
    target: &str,
    summary: &str,
    cmd: amoskys_consensus::Command,
) -> Result<(u64, amoskys_consensus::Outcome), Response> {
    let caller = Some(axum::Extension(caller.clone()));
    commit(state, &caller, action, target, summary, cmd).await
}
