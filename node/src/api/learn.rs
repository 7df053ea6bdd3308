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

use super::{ApiState, error};
use crate::federation::RoundSettings;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StartBody {
    /// Entity kind: source, host, process or device.
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
pub(super) async fn start(State(state): State<ApiState>, Json(body): Json<StartBody>) -> Response {
    let kind: EntityKind = match body.kind.parse() {
        Ok(k) => k,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("kind: {e}")),
    };
    let epochs = body.epochs.unwrap_or(2);
    let deadline = body.deadline_secs.unwrap_or(60);
    if !(1..=1000).contains(&epochs) {
        return error(StatusCode::BAD_REQUEST, "epochs: expected 1 to 1000".into());
    }
    if !(1..=86_400).contains(&deadline) {
        return error(
            StatusCode::BAD_REQUEST,
            "deadline_secs: expected 1 to 86400".into(),
        );
    }
    if let Some(dp) = &body.dp
        && let Some(p) = dp.problems().first()
    {
        return error(StatusCode::BAD_REQUEST, format!("dp: {p}"));
    }
    let settings = RoundSettings {
        rule: body.rule.unwrap_or(Rule::FedAvg),
        epochs,
        min_participants: body.min_participants.unwrap_or(1),
        dp: body.dp,
    };
    match state
        .federation
        .start_round(kind, settings, Duration::from_secs(deadline))
        .await
    {
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
