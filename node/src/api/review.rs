//! `GET /api/v1/alerts/review?limit=`: the unjudged alerts of this node
//! whose verdict would teach the supervised head the most
//! ([`crate::verdicts::Learner::review`]), with each kind's head.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{ApiState, bad_request, internal};

/// Most alerts one review lists.
pub const MAX_REVIEW: usize = 100;
const DEFAULT_REVIEW: usize = 10;

#[derive(Debug, Deserialize)]
pub(super) struct ReviewParams {
    limit: Option<String>,
}

/// `GET /api/v1/alerts/review`
pub(super) async fn review(
    State(state): State<ApiState>,
    Query(params): Query<ReviewParams>,
) -> Response {
    let k = match params.limit.as_deref() {
        None => DEFAULT_REVIEW,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=MAX_REVIEW).contains(&n) => n,
            _ => {
                return bad_request(format!(
                    "limit: {l:?} is not a number from 1 to {MAX_REVIEW}"
                ));
            }
        },
    };
    let closed: std::collections::HashSet<String> = state
        .workspace
        .case_list()
        .into_iter()
        .filter(|c| c.status.is_closed())
        .map(|c| c.alert)
        .collect();
    let learner = state.learner.clone();
    let store = state.store.clone();
    let picked = tokio::task::spawn_blocking(move || {
        let picked = learner.review(k, &|id| closed.contains(id))?;
        let mut out = Vec::with_capacity(picked.len());
        for r in picked {
            let alert = store.alert(&r.alert)?;
            out.push(serde_json::json!({
                "id": r.alert,
                "entity": r.entity,
                "time_ns": r.time_ns,
                "score": r.score,
                "head_probability": r.probability,
                "alert": alert,
            }));
        }
        Ok::<_, crate::storage::StorageError>(out)
    })
    .await;
    let review = match picked {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return internal(e.to_string()),
        Err(e) => return internal(format!("review failed: {e}")),
    };
    let in_force = state.policy.borrow().clone();
    axum::Json(serde_json::json!({
        "head": in_force.policy.learning.head,
        "min_per_class": in_force.policy.learning.head_min_per_class,
        "heads": state.learner.state(),
        "review": review,
    }))
    .into_response()
}
