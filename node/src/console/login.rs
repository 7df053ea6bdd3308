//! Signing in and out: the signed route that issues a one-time link, the
//! link's exchange for a session cookie, the sign-in page, sign-out.

use axum::Json;
use axum::extract::{Extension, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::session::LINK_TTL_MS;
use super::{COOKIE, Viewer, now_ms, render};
use crate::api::ApiState;
use crate::auth::Caller;

/// `POST /api/v1/console/login` (any operator, signed): a one-time link
/// that signs its holder in as the caller, valid for 60 s.
pub async fn issue(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
) -> Response {
    let token = state.console.sessions().issue_link(&caller.key, now_ms());
    crate::audit::note(
        &state,
        Some(&caller),
        "console.link",
        "console",
        "one-time sign-in link issued",
        "ok",
    );
    Json(serde_json::json!({
        "path": format!("/login?token={token}"),
        "expires_secs": LINK_TTL_MS / 1_000,
        "operator": caller.name,
        "role": caller.role,
    }))
    .into_response()
}

#[derive(Debug, Deserialize)]
pub struct LoginParams {
    token: Option<String>,
}

fn cookie(state: &ApiState, value: &str, max_age_secs: u64) -> HeaderValue {
    let secure = if state.console.secure_cookie {
        "; Secure"
    } else {
        ""
    };
    let c = format!(
        "{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age_secs}{secure}"
    );
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn redirect(to: &'static str) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    resp.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static(to));
    resp
}

/// `GET /login`: with `?token=`, exchanges a login link (once) for a
/// session cookie and goes to `/`; without, tells how to sign in.
pub async fn page(State(state): State<ApiState>, Query(p): Query<LoginParams>) -> Response {
    let Some(token) = p.token.filter(|t| !t.is_empty()) else {
        let body = "<p>Sign in from a terminal with your operator key:</p>\
            <pre><code>amoskys operator login --api ADDRESS --key YOUR.key</code></pre>\
            <p>It prints a link that signs this browser in once, within 60 seconds. \
            No key or password is ever typed into this page.</p>";
        return render::html(StatusCode::OK, render::document("Sign in", "", body));
    };
    let Some((id, session)) = state.console.sessions().redeem(&token, now_ms()) else {
        return render::problem(
            StatusCode::UNAUTHORIZED,
            "Sign-in link not valid",
            "this link was used already, has expired (60 s) or was never issued; run `amoskys operator login` again",
        );
    };
    let caller = state.authority.operator_by_key(&session.key);
    crate::audit::note(
        &state,
        caller.as_ref(),
        "console.login",
        "console",
        "signed in to the console",
        "ok",
    );
    let mut resp = redirect("/");
    let max_age = super::session::ABSOLUTE_MS / 1_000;
    resp.headers_mut()
        .insert(header::SET_COOKIE, cookie(&state, &id, max_age));
    render::secure(resp)
}

/// `POST /logout`: ends the session and clears the cookie.
pub async fn logout(State(state): State<ApiState>, Extension(v): Extension<Viewer>) -> Response {
    state.console.sessions().end(&v.session);
    let mut resp = redirect("/login");
    resp.headers_mut()
        .insert(header::SET_COOKIE, cookie(&state, "", 0));
    resp
}
