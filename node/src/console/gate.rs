//! The door of every console page: the API's guard hands it the routes
//! whose access is [`Access::Session`](crate::auth::Access::Session).
//!
//! A request without a live session is sent to `/login` (a `GET`) or
//! refused with 401; the session's operator is looked up in the replicated
//! operators now, so a removed or demoted operator loses access at once; a
//! role below the route's gets 403 (recorded in the audit trail); a `POST`
//! must pass the origin and CSRF checks ([`super::csrf`]), else 403.

use amoskys_consensus::Role;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{COOKIE, Viewer, csrf, now_ms, render};
use crate::api::{ApiState, Lane, MAX_BODY_BYTES};

/// The session id in the request's cookies, if any.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())
        .filter(|v| !v.is_empty())
}

fn signed_out(write: bool) -> Response {
    if write {
        return render::problem(
            StatusCode::UNAUTHORIZED,
            "Not signed in",
            "this needs a console session; sign in with `amoskys operator login`",
        );
    }
    let mut resp = StatusCode::SEE_OTHER.into_response();
    resp.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static("/login"));
    render::secure(resp)
}

fn article(role: Role) -> &'static str {
    match role {
        Role::Viewer => "a",
        Role::Analyst | Role::Admin => "an",
    }
}

/// Checks one console request that needs `role` (see the module overview).
pub async fn gate(state: ApiState, role: Role, req: Request, next: Next) -> Response {
    let write = !matches!(*req.method(), Method::GET | Method::HEAD);
    let now = now_ms();
    let found = session_cookie(req.headers()).and_then(|id| {
        let s = state.console.sessions().touch(&id, now)?;
        Some((id, s))
    });
    let Some((id, session)) = found else {
        return signed_out(write);
    };
    let Some(caller) = state.authority.operator_by_key(&session.key) else {
        state.console.sessions().end(&id);
        return signed_out(write);
    };
    let path = req.uri().path().to_owned();
    if caller.role < role {
        tracing::info!(operator = %caller.name, path = %path, "console request forbidden: role");
        crate::audit::record_denied(&state, &caller, req.method().as_str(), &path).await;
        let why = format!(
            "operator {} is {} {}; this needs {} {role}",
            caller.name,
            article(caller.role),
            caller.role,
            article(role)
        );
        return render::problem(StatusCode::FORBIDDEN, "Not allowed", &why);
    }
    let (parts, body) = req.into_parts();
    // The body is in memory already (`admit::read_body` runs first).
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .unwrap_or_default();
    if write {
        let checked =
            csrf::same_origin(&parts.headers).and_then(|()| csrf::check(&bytes, &session.csrf));
        if let Err(why) = checked {
            tracing::info!(operator = %caller.name, path = %path, "console write refused: {why}");
            return render::problem(StatusCode::FORBIDDEN, "Refused", &why);
        }
    }
    let viewer = Viewer {
        caller: caller.clone(),
        csrf: session.csrf,
        session: id,
        node_name: state.info.name.clone(),
    };
    let mut req = Request::from_parts(parts, Body::from(bytes));
    let lane = if write && caller.role == Role::Admin {
        Lane::Reserved
    } else {
        Lane::Shared
    };
    req.extensions_mut().insert(lane);
    req.extensions_mut().insert(caller);
    req.extensions_mut().insert(viewer);
    render::secure(next.run(req).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; amoskys_session=abc"),
        );
        assert_eq!(session_cookie(&h).as_deref(), Some("abc"));
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("amoskys_session="));
        assert_eq!(session_cookie(&h), None);
        assert_eq!(session_cookie(&HeaderMap::new()), None);
    }
}
