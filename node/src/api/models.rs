//! Anomaly model endpoints: what is in use, and a request to retrain.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::audit::CallerExt;
use super::{ApiState, error};
use crate::models::{ModelInfo, TrainerStatus, TriggerError};

/// Body of `GET /api/v1/models`.
#[derive(Debug, Serialize)]
struct ModelsBody {
    /// Whether the node trains models (`learning.enabled`).
    learning: bool,
    models: Vec<ModelInfo>,
    trainer: Option<TrainerStatus>,
    /// Per kind: its live scores against its training scores (PSI), and
    /// drift episodes.
    drift: Vec<crate::drift::KindStatus>,
    /// The cluster's model registry: versions with lineage and metrics,
    /// and the active one.
    registry: Registry,
}

#[derive(Debug, Serialize)]
struct Registry {
    active: Option<u64>,
    versions: Vec<amoskys_consensus::ModelVersion>,
}

/// `GET /api/v1/models`
pub(super) async fn list(State(state): State<ApiState>) -> Response {
    let trainer = state
        .trainer
        .as_ref()
        .and_then(|t| t.lock().ok().map(|t| t.status()));
    Json(ModelsBody {
        learning: state.trainer.is_some(),
        models: state.models.infos(),
        trainer,
        drift: state.models.drift().status(),
        registry: {
            let applied = state.cluster.applied().borrow().clone();
            Registry {
                active: applied.state.active_model,
                versions: applied.state.models.values().cloned().collect(),
            }
        },
    })
    .into_response()
}

/// `POST /api/v1/models/train`: queues a training run (202), or says why
/// not (409 when one is already queued, 503 when learning is disabled).
pub(super) async fn train(State(state): State<ApiState>, caller: CallerExt) -> Response {
    let Some(trainer) = state.trainer.as_ref() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "learning is disabled on this node (learning.enabled = false)".into(),
        );
    };
    let result = match trainer.lock() {
        Ok(t) => t.trigger(),
        Err(_) => Err(TriggerError::Stopped),
    };
    let outcome = match &result {
        Ok(()) => "queued".to_owned(),
        Err(e) => format!("refused: {e}"),
    };
    let summary = "retrain this node's anomaly models";
    super::audit::note(&state, &caller, "models.train", "local", summary, &outcome);
    match result {
        Ok(()) => (
            StatusCode::ACCEPTED,
            Json(serde_json::json!({ "queued": true })),
        )
            .into_response(),
        Err(TriggerError::AlreadyQueued) => error(
            StatusCode::CONFLICT,
            TriggerError::AlreadyQueued.to_string(),
        ),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}
