//! `POST /api/v1/node/key/rotate`: stages a successor node key and restarts
//! the node, which hands its identity over at start ([`crate::rotation`]).
//! Loopback only, admins only: the key lives on this host.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::audit::CallerExt;
use super::{ApiState, error};

/// Refuses a rotation the cluster could not finish: the successor joins
/// while this node is down, so the voters left must still be a quorum.
fn refusal(state: &ApiState) -> Option<String> {
    let me = state.cluster.id();
    let (voters, learners) = state.cluster.members();
    if !voters.contains(&me) && !learners.contains(&me) {
        return Some(
            "this node is not a cluster member; its successor would have no cluster to join \
             (`amoskys keygen --force` replaces the key of a node outside a cluster)"
                .into(),
        );
    }
    if voters.contains(&me) && voters.len() < 3 {
        return Some(format!(
            "this node is one of {} voters: while it restarts as its successor the others \
             are no quorum, so the hand-over could not commit; grow the cluster to 3 voters first",
            voters.len()
        ));
    }
    None
}

pub(super) async fn rotate(State(state): State<ApiState>, caller: CallerExt) -> Response {
    if let Some(why) = refusal(&state) {
        return error(StatusCode::CONFLICT, why);
    }
    let data_dir = std::path::PathBuf::from(&state.info.data_dir);
    let next = match crate::rotation::stage(&data_dir) {
        Ok(n) => n,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let new = next.peer_id().to_string();
    let summary = format!(
        "successor key {new} staged for node {}; the node restarts and hands over",
        state.info.id
    );
    if let Err(e) = crate::audit::record_action(
        &state,
        super::audit::who(&caller),
        "node.key.stage",
        &new,
        &summary,
        "ok",
    )
    .await
    {
        tracing::warn!(error = %e, "the staged rotation is not in the audit trail");
    }
    tracing::warn!(successor = %new, "node key rotation staged; restarting");
    state.restart.notify_one();
    (
        StatusCode::ACCEPTED,
        Json(serde_json::json!({
            "old": state.info.id,
            "new": new,
            "restarting": true,
        })),
    )
        .into_response()
}
