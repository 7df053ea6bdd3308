//! The console's reads and writes are calls of the JSON API's own handlers,
//! in process: the same validation, governance and audit records as a
//! signed request, as the signed-in operator. The API route's access is
//! checked again here, from the same table, before the call.

use axum::body::Body;
use axum::http::{Method, StatusCode, header};
use serde_json::Value;
use tower::ServiceExt as _;

use super::Viewer;
use super::render;
use crate::api::ApiState;
use crate::auth::{self, Access};

/// A call the API answered with an error, or the console refused.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub status: StatusCode,
    /// The API's reason (its `error` field).
    pub message: String,
}

impl Refusal {
    /// The refusal as a page.
    pub fn page(&self) -> axum::response::Response {
        render::problem(self.status, "Refused", &self.message)
    }
}

/// A request body for [`api`].
#[derive(Debug)]
pub enum Payload {
    None,
    Json(Value),
    Text(String),
}

/// Calls API route `pattern` (as in `auth::ROUTES`, e.g.
/// `/api/v1/cases/{alert}/ack`) with its `{…}` filled from `params`,
/// `query` (already escaped, without `?`) and `body`, as `v`'s operator.
pub async fn api(
    state: &ApiState,
    v: &Viewer,
    method: Method,
    pattern: &str,
    params: &[(&str, &str)],
    query: &str,
    body: Payload,
) -> Result<Value, Refusal> {
    let needed = match auth::access(&method, pattern) {
        Some(Access::Role(r)) => r,
        _ => {
            return Err(Refusal {
                status: StatusCode::FORBIDDEN,
                message: format!("{method} {pattern} is not open to the console"),
            });
        }
    };
    if v.caller.role < needed {
        return Err(Refusal {
            status: StatusCode::FORBIDDEN,
            message: format!(
                "operator {} is {}; this needs {needed}",
                v.caller.name, v.caller.role
            ),
        });
    }
    let mut uri = pattern.to_owned();
    for (name, value) in params {
        uri = uri.replace(&format!("{{{name}}}"), &render::url(value));
    }
    if !query.is_empty() {
        uri = format!("{uri}?{query}");
    }
    let mut builder = axum::http::Request::builder().method(method).uri(&uri);
    let body = match body {
        Payload::None => Body::empty(),
        Payload::Json(j) => {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
            Body::from(j.to_string())
        }
        Payload::Text(t) => {
            builder = builder.header(header::CONTENT_TYPE, "text/plain");
            Body::from(t)
        }
    };
    let mut req = builder.body(body).map_err(|e| Refusal {
        status: StatusCode::BAD_REQUEST,
        message: format!("{uri}: {e}"),
    })?;
    req.extensions_mut().insert(v.caller.clone());
    let resp = match crate::api::in_process(state.clone()).oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20)
        .await
        .unwrap_or_default();
    let value: Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    if status.is_success() {
        Ok(value)
    } else {
        let message = value["error"]
            .as_str()
            .map_or_else(|| render::text(&value), str::to_owned);
        Err(Refusal { status, message })
    }
}

/// A read as `v` ([`api`] with `GET` and no body).
pub async fn get(
    state: &ApiState,
    v: &Viewer,
    pattern: &str,
    query: &str,
) -> Result<Value, Refusal> {
    api(state, v, Method::GET, pattern, &[], query, Payload::None).await
}

/// A form body (`application/x-www-form-urlencoded`) as its fields.
pub fn form(body: &[u8]) -> std::collections::HashMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

/// The page a form's write ends on: back to `to` when the API did it, the
/// API's refusal otherwise.
pub fn back(result: Result<Value, Refusal>, to: &str) -> axum::response::Response {
    match result {
        Ok(_) => see_other(to),
        Err(r) => r.page(),
    }
}

/// A `303 See Other` to `to` (after a form's write).
pub fn see_other(to: &str) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = axum::http::HeaderValue::from_str(to) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}
