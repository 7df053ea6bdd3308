//! `GET /api/v1/members/export`: the committed Raft membership, signed by
//! this node (a voter), for offline checks: `amoskys members export >
//! members.json`, then `amoskys alerts verify --members members.json`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::{ApiState, error};
use crate::trust::{MembersExport, TrustError};

/// `GET /api/v1/members/export`
pub(super) async fn members(State(state): State<ApiState>) -> Response {
    let applied = state.cluster.applied().borrow().clone();
    let names = BTreeMap::from([(state.cluster.id(), state.info.name.clone())]);
    match MembersExport::build(&applied, &names, &state.key, amoskys_sensors::now_ns()) {
        Ok(export) => Json(export).into_response(),
        Err(e @ (TrustError::NoMembership | TrustError::NotAVoter(_))) => {
            error(StatusCode::CONFLICT, e.to_string())
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
