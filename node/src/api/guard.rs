//! The door of every route: the layer that asks [`Authority`] about each
//! request and answers 401, 403 or 429 itself, or passes the request on
//! with the [`Caller`] as an extension and its [`Lane`] (an admin's writes
//! may take the reserved slots); an authenticated write also carries its
//! [`SignedRequest`], the proof workspace edits keep.
//!
//! It runs after routing (the access table is keyed by route pattern) and
//! after the body is read (the signature covers the body's hash).

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use amoskys_consensus::Role;
use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use super::{ApiState, Lane, error};
use crate::auth::{self, Access, Incoming, RequestParts, SignedRequest, Verdict};

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Authenticates and authorises one request (see the module overview).
pub async fn guard(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let Some(access) = route.as_deref().and_then(|r| auth::access(req.method(), r)) else {
        // A route missing from the table is a bug; refuse rather than open.
        tracing::error!(method = %req.method(), path = %req.uri().path(), "api route has no access entry");
        return error(
            StatusCode::FORBIDDEN,
            "this route has no access rule".into(),
        );
    };
    if let Access::Session(role) = access {
        return crate::console::gate(state, role, req, next).await;
    }
    let source = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(std::net::Ipv4Addr::UNSPECIFIED.into(), |c| {
            c.0.ip().to_canonical()
        });
    let (parts, body) = req.into_parts();
    // The body is in memory already (`admit::read_body` runs first).
    let bytes = axum::body::to_bytes(body, super::MAX_BODY_BYTES)
        .await
        .unwrap_or_default();
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let authorization = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let request = RequestParts {
        node_id: state.authority.node_id(),
        method: parts.method.as_str(),
        path_and_query,
        body: &bytes,
    };
    let verdict = state.authority.check(
        access,
        &Incoming {
            source,
            authorization,
            parts: request,
        },
        now_ms(),
    );
    // An authenticated write keeps its signed form for handlers that store
    // it as the operator's proof (the workspace's edits).
    let mut signed = None;
    let caller = match verdict {
        Verdict::Open => None,
        Verdict::Allowed(caller) => {
            if !matches!(parts.method, Method::GET | Method::HEAD) {
                signed = authorization.and_then(|h| SignedRequest::new(h, &request).ok());
            }
            Some(caller)
        }
        Verdict::Limited => {
            state.metrics.auth_failure("rate_limited");
            let mut resp = error(
                StatusCode::TOO_MANY_REQUESTS,
                "too many failed authentications from this address; wait and retry".into(),
            );
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return resp;
        }
        Verdict::Unauthenticated(e) => {
            state.metrics.auth_failure(e.reason());
            tracing::debug!(source = %source, reason = e.reason(), path = %parts.uri.path(), "api request not authenticated");
            let status = if e == auth::AuthError::Busy {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::UNAUTHORIZED
            };
            let mut resp = error(status, e.to_string());
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(auth::SCHEME),
            );
            return resp;
        }
        Verdict::Forbidden { caller, reason } => {
            state.metrics.auth_failure("forbidden");
            tracing::info!(source = %source, operator = caller.as_ref().map(|c| c.name.as_str()), path = %parts.uri.path(), "api request forbidden: {reason}");
            if let Some(c) = &caller {
                let path = parts.uri.path();
                crate::audit::record_denied(&state, c, parts.method.as_str(), path).await;
            }
            return error(StatusCode::FORBIDDEN, reason);
        }
    };
    let lane = match (&caller, access) {
        (Some(c), Access::Role(Role::Admin | Role::Analyst)) if c.role == Role::Admin => {
            Lane::Reserved
        }
        _ => Lane::Shared,
    };
    let mut req = Request::from_parts(parts, Body::from(bytes));
    req.extensions_mut().insert(lane);
    if let Some(c) = caller {
        req.extensions_mut().insert(c);
    }
    if let Some(s) = signed {
        req.extensions_mut().insert(s);
    }
    next.run(req).await
}
