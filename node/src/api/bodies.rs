//! The JSON bodies of the write routes, decoded as the `Json` extractor
//! decodes them (axum's `Json::from_bytes`), for the fuzz target of API
//! request bodies (`node/fuzz/`). A route's handler checks the fields after
//! this; the policy route's body goes through [`crate::policy::Policy::parse`].

use axum::Json;
use serde::de::DeserializeOwned;

use crate::workspace::decisions::AddBody as DecisionBody;

/// The write routes that take a JSON body, in the order
/// [`decode_write_body`] numbers them.
pub const WRITE_ROUTES: [&str; 12] = [
    "POST /api/v1/cluster/init",
    "POST /api/v1/members",
    "POST /api/v1/learn/rounds",
    "POST /api/v1/intel",
    "POST /api/v1/decisions",
    "POST /api/v1/cases/{alert}/ack",
    "POST /api/v1/cases/{alert}/status",
    "POST /api/v1/cases/{alert}/notes",
    "POST /api/v1/operators",
    "PUT /api/v1/operators/{name}",
    "POST /api/v1/operators/{name}/rotate",
    "PUT /api/v1/policy",
];

fn json<T: DeserializeOwned>(body: &[u8]) -> bool {
    Json::<T>::from_bytes(body).is_ok()
}

/// Decodes `body` as the body of write route `route` (modulo the number of
/// routes); whether it decoded.
pub fn decode_write_body(route: u8, body: &[u8]) -> bool {
    match usize::from(route) % WRITE_ROUTES.len() {
        0 => json::<super::cluster::InitBody>(body),
        1 => json::<super::cluster::AdmitBody>(body),
        2 => json::<super::learn::StartBody>(body),
        3 => json::<super::workspace::AddBody>(body),
        4 => json::<DecisionBody>(body),
        5 => json::<super::workspace::AckBody>(body),
        6 => json::<super::workspace::StatusBody>(body),
        7 => json::<super::workspace::NoteBody>(body),
        8 => json::<super::operators::AddBody>(body),
        9 => json::<super::operators::RoleBody>(body),
        10 => json::<super::operators::RotateBody>(body),
        _ => std::str::from_utf8(body).is_ok_and(|t| crate::policy::Policy::parse(t).is_ok()),
    }
}
