//! Federated rounds: `POST /api/v1/learn/rounds` starts one over every
//! member, `GET /api/v1/learn/rounds` lists them with their outcome.

use std::time::Duration;

use amoskys_learning::features::EntityKind;
use amoskys_learning::federated::{DpConfig, Rule};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::audit::CallerExt;
use super::{ApiState, error};
use crate::federation::RoundSettings;
use crate::policy::{self, in_range};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StartBody {
    /// Entity kind: source, host, process or device; `head:<kind>` for
    /// the supervised head of that kind.
    kind: String,
    #[serde(default)]
    rule: Option<Rule>,
    #[serde(default)]
    epochs: Option<usize>,
    #[serde(default)]
    deadline_secs: Option<u64>,
    #[serde(default)]
    min_participants: Option<usize>,
    #[serde(default)]
    dp: Option<DpConfig>,
}

/// `POST /api/v1/learn/rounds`
pub(super) async fn start(
    State(state): State<ApiState>,
    caller: CallerExt,
    Json(body): Json<StartBody>,
) -> Response {
    // `head:<kind>`: a round of the supervised head (crate::verdicts).
    let head = crate::federation::head_kind(&body.kind);
    let kind: EntityKind = match head.clone().unwrap_or_else(|| body.kind.parse()) {
        Ok(k) => k,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("kind: {e}")),
    };
    let epochs = body.epochs.unwrap_or(2);
    let deadline = body.deadline_secs.unwrap_or(60);
    let min_participants = body.min_participants.unwrap_or(1);
    let checks = [
        in_range("epochs", epochs, 1, policy::EPOCHS_MAX),
        in_range("deadline_secs", deadline, 1, policy::DEADLINE_SECS_MAX),
        in_range(
            "min_participants",
            min_participants,
            1,
            policy::MIN_PARTICIPANTS_MAX,
        ),
    ];
    if let Some(p) = checks.into_iter().find_map(Result::err) {
        return error(StatusCode::BAD_REQUEST, p);
    }
    if let Some(rule) = &body.rule
        && let Some(p) = policy::rule_problems(rule).first()
    {
        return error(StatusCode::BAD_REQUEST, format!("rule.{p}"));
    }
    if let Some(dp) = &body.dp
        && let Some(p) = dp.problems().first()
    {
        return error(StatusCode::BAD_REQUEST, format!("dp: {p}"));
    }
    let settings = RoundSettings {
        rule: body.rule.unwrap_or(Rule::FedAvg),
        epochs,
        min_participants,
        dp: body.dp,
    };
    let summary = format!(
        "kind {}, {epochs} epoch(s), deadline {deadline} s, at least {min_participants} participant(s)",
        body.kind
    );
    let deadline = Duration::from_secs(deadline);
    let done = if head.is_some() {
        if body.dp.is_some() {
            return error(
                StatusCode::BAD_REQUEST,
                "dp: a head round sends no noise; leave dp out".into(),
            );
        }
        state
            .federation
            .start_head_round(kind, settings, deadline)
            .await
    } else {
        state.federation.start_round(kind, settings, deadline).await
    };
    let (target, result) = match &done {
        Ok(id) => (format!("round {id}"), "ok".to_owned()),
        Err(e) => ("round".to_owned(), format!("failed: {e}")),
    };
    super::audit::note(&state, &caller, "learn.round", &target, &summary, &result);
    match done {
        Ok(id) => (
            StatusCode::CREATED,
            Json(serde_json::json!({ "round": id })),
        )
            .into_response(),
        Err(e) => super::cluster::cluster_error(e),
    }
}

/// `GET /api/v1/learn/rounds`
pub(super) async fn list(State(state): State<ApiState>) -> Response {
    let applied = state.cluster.applied().borrow().clone();
    let rounds: Vec<&amoskys_consensus::RoundRecord> =
        applied.state.rounds.values().rev().collect();
    Json(serde_json::json!({ "rounds": rounds })).into_response()
}
