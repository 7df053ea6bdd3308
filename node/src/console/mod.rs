//! The web console every node serves at `/` on its API listener
//! (docs/CONSOLE.md): server-rendered HTML, one stylesheet and one small
//! script embedded in the binary, charts as inline SVG.
//!
//! Sign-in: `amoskys operator login` asks the signed route
//! `POST /api/v1/console/login` for a one-time link; `GET /login?token=…`
//! turns it into a session cookie ([`session`]). Console routes are in the
//! access table (`auth::ROUTES`) as [`Access::Session`]: the API's guard
//! hands them to [`gate`], which finds the session, looks the operator's
//! role up in the replicated operators on every request, and checks the
//! origin and CSRF token of every `POST` ([`csrf`]).
//!
//! Pages read and write through the JSON API's own handlers ([`call`]), so
//! a console write is validated, governed and audited as the API's is.
//!
//! [`Access::Session`]: crate::auth::Access::Session

use std::sync::Mutex;

use axum::Router;
use axum::routing::{get, post};

use crate::api::ApiState;
use crate::auth::Caller;

mod assets;
mod call;
pub mod csrf;
mod gate;
mod login;
mod pages;
mod rates;
pub mod render;
pub mod session;

pub use gate::gate;
pub use session::Sessions;

/// The name of the session cookie.
pub const COOKIE: &str = "amoskys_session";

/// A node's console state: login links and sessions.
#[derive(Debug)]
pub struct Console {
    sessions: Mutex<Sessions>,
    /// Samples of the sensors' event counts (the overview's events/s).
    rates: Mutex<rates::Rates>,
    /// Cookies are `Secure` when the API serves TLS.
    secure_cookie: bool,
}

impl Console {
    pub fn new(tls: bool) -> Self {
        Self {
            sessions: Mutex::new(Sessions::default()),
            rates: Mutex::new(rates::Rates::default()),
            secure_cookie: tls,
        }
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, Sessions> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn rates(&self) -> std::sync::MutexGuard<'_, rates::Rates> {
        self.rates.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The signed-in operator of a console request (a request extension
/// [`gate`] adds).
#[derive(Debug, Clone)]
pub struct Viewer {
    pub caller: Caller,
    /// The session's CSRF token, for the forms of the page.
    pub csrf: String,
    /// The session id (the cookie's value).
    pub session: String,
    /// The node's name, shown in the header.
    pub node_name: String,
}

fn now_ms() -> u64 {
    amoskys_sensors::now_ns() / 1_000_000
}

/// Every console route (who may call each: `auth::ROUTES`).
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/console/login", post(login::issue))
        .route("/login", get(login::page))
        .route("/logout", post(login::logout))
        .route("/assets/{file}", get(assets::serve))
        .route("/", get(pages::overview::page))
        .route("/alerts", get(pages::alerts::page))
        .route("/alerts/stream", get(pages::alerts::stream))
        .route("/alerts/{id}", get(pages::alert::page))
        .route("/alerts/{id}/ack", post(pages::alert::ack))
        .route("/alerts/{id}/status", post(pages::alert::status))
        .route("/alerts/{id}/notes", post(pages::alert::note))
        .route("/mesh", get(pages::mesh::page))
        .route("/cluster", get(pages::cluster::page))
        .route("/cluster/policy", post(pages::cluster::set_policy))
        .route("/cluster/members", post(pages::cluster::admit))
        .route("/cluster/members/{id}/remove", post(pages::cluster::remove))
        .route(
            "/cluster/proposals/{id}/approve",
            post(pages::cluster::approve),
        )
        .route("/models", get(pages::models::page))
        .route("/models/{version}/activate", post(pages::models::activate))
        .route("/models/rounds", post(pages::models::start_round))
        .route("/intel", get(pages::intel::page).post(pages::intel::add))
        .route("/intel/remove", post(pages::intel::remove))
        .route("/audit", get(pages::audit::page))
}
