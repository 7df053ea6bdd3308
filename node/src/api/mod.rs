//! The HTTP API: `/healthz`, `/metrics`, `/api/v1/node`, `/api/v1/events`,
//! alerts, models, peers and the mesh's topology, and the cluster (status,
//! members, policy).
//!
//! Handlers only read shared state; storage reads run on the blocking pool.
//! Bad query parameters get `400` with a JSON body naming the parameter;
//! every number, duration and address in a body is range-checked and
//! refused with `400` naming the field (the ranges: docs/API.md).

use std::sync::Arc;
use std::time::{Instant, UNIX_EPOCH};

use amoskys_sensors::snmp::DeviceStatuses;
use amoskys_sensors::{EventClass, SensorStats, now_ns};
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::metrics::{CONTENT_TYPE, Metrics};

mod admit;
mod alerts;
mod audit;
pub mod bodies;
mod cluster;
mod decisions;
mod export;
mod guard;
mod learn;
mod models;
mod node_key;
mod operators;
mod proposals;
mod review;
mod serve;
mod status;
mod topology;
mod validate;
mod workspace;
use crate::storage::{EventQuery, Store, StoredEvent};
pub use admit::{Lane, MAX_BODY_BYTES};
pub use alerts::ocsf;
pub use serve::{Limits, MAX_OPEN_CONNECTIONS, Tls, serve};
pub use status::{NodeStatus, SensorStatus};

/// Largest `limit` accepted by `/api/v1/events`.
pub const MAX_EVENTS_LIMIT: usize = 10_000;
const DEFAULT_EVENTS_LIMIT: usize = 100;

/// What the API serves from.
#[derive(Debug, Clone)]
pub struct ApiState {
    pub info: Arc<NodeInfo>,
    pub started: Instant,
    pub sensors: Vec<Arc<SensorStats>>,
    pub store: Arc<Store>,
    pub metrics: Arc<Metrics>,
    /// New alerts, for the live stream.
    pub alerts: tokio::sync::broadcast::Sender<amoskys_mesh::Alert>,
    /// Turns true when the node shuts down; ends live streams.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// Status of each polled SNMP device, when the SNMP sensor runs.
    pub snmp_devices: Option<DeviceStatuses>,
    /// The MQTT sensor's broker connection, when it runs.
    pub mqtt: Option<Arc<std::sync::Mutex<amoskys_sensors::mqtt::MqttStatus>>>,
    /// The mesh, when it runs.
    pub mesh: Option<amoskys_mesh::MeshHandle>,
    /// The anomaly models in use.
    pub models: Arc<crate::models::ModelSet>,
    /// The training thread, when learning is enabled.
    pub trainer: Option<Arc<std::sync::Mutex<crate::models::Trainer>>>,
    /// The node's Raft member.
    pub cluster: Arc<amoskys_consensus::Cluster>,
    /// Federated rounds and the model registry.
    pub federation: Arc<crate::federation::Federation>,
    /// The policy in force.
    pub policy: tokio::sync::watch::Receiver<Arc<crate::policy::InForce>>,
    /// Threat intel and case notes.
    pub workspace: Arc<crate::workspace::Workspace>,
    /// The analysts' verdicts and the supervised heads.
    pub learner: Arc<crate::verdicts::Learner>,
    /// The node's key: signs membership exports.
    pub key: Arc<ed25519_dalek::SigningKey>,
    /// Who may call what ([`crate::auth`]).
    pub authority: Arc<crate::auth::Authority>,
    /// The web console's sign-in links and sessions ([`crate::console`]).
    pub console: Arc<crate::console::Console>,
    /// Asks the node to restart (a staged node key takes over at start).
    pub restart: Arc<tokio::sync::Notify>,
    /// The alert outputs' counters and state.
    pub outputs: Vec<Arc<crate::outputs::OutputStats>>,
    /// The bouncer's state and never-block check ([`crate::response`]).
    pub response: Arc<crate::response::Response>,
}

/// Facts about the node fixed at start.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeInfo {
    pub id: String,
    pub public_key: String,
    pub name: String,
    pub version: String,
    pub data_dir: String,
    pub started_at: String,
    /// SHA-256 of the API's TLS certificate (hex), when TLS is on: pin it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_fingerprint: Option<String>,
}

/// The API router, behind its layers: the body is read within the body
/// timeout ([`admit`]), the request is authenticated and authorised
/// ([`guard`]), then it takes a slot ([`admit`]).
pub fn router(state: ApiState, limits: &Limits) -> Router {
    layered(routes(), state, limits, true)
}

/// [`router`] without [`guard`]: what the benchmark of authentication's
/// cost compares with (`Hooks::unauthenticated_api_for_benchmarks`).
pub fn router_without_auth(state: ApiState, limits: &Limits) -> Router {
    layered(routes(), state, limits, false)
}

fn layered(routes: Router<ApiState>, state: ApiState, limits: &Limits, auth: bool) -> Router {
    let mut r = routes.route_layer(axum::middleware::from_fn_with_state(
        admit::Gate::new(limits.max_requests, limits.write_reserve),
        admit::admit,
    ));
    if auth {
        r = r.route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::guard,
        ));
    }
    r.fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            limits.body_timeout,
            admit::read_body,
        ))
        .with_state(state)
}

/// The routes without any layer, for the console's in-process calls of
/// the API's handlers (`console::call`; the console checks access first).
pub(crate) fn in_process(state: ApiState) -> Router {
    routes().with_state(state)
}

/// Every route (who may call each: `auth::ROUTES`); the console's are in
/// `console::routes`.
fn routes() -> Router<ApiState> {
    Router::new()
        .merge(crate::console::routes())
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/v1/node", get(status::node))
        .route(
            "/api/v1/node/key/rotate",
            axum::routing::post(node_key::rotate),
        )
        .route("/api/v1/events", get(events))
        .route("/api/v1/alerts", get(alerts::list))
        .route("/api/v1/alerts/stream", get(alerts::stream))
        .route("/api/v1/alerts/export", get(alerts::export))
        .route("/api/v1/alerts/review", get(review::review))
        .route("/api/v1/models", get(models::list))
        .route("/api/v1/peers", get(peers))
        .route("/api/v1/mesh/topology", get(topology::topology))
        .route("/api/v1/models/train", axum::routing::post(models::train))
        .route(
            "/api/v1/models/{version}/activate",
            axum::routing::post(cluster::activate_model),
        )
        .route("/api/v1/cluster", get(cluster::status))
        .route("/api/v1/cluster/init", axum::routing::post(cluster::init))
        .route(
            "/api/v1/members",
            get(cluster::members).post(cluster::admit),
        )
        .route("/api/v1/members/export", get(export::members))
        .route(
            "/api/v1/members/{id}",
            axum::routing::delete(cluster::remove),
        )
        .route(
            "/api/v1/policy",
            get(cluster::policy).put(cluster::set_policy),
        )
        .route("/api/v1/policy/history", get(cluster::policy_history))
        .route("/api/v1/proposals", get(proposals::list))
        .route(
            "/api/v1/proposals/{id}/approve",
            axum::routing::post(proposals::approve),
        )
        .route("/api/v1/learn/rounds", get(learn::list).post(learn::start))
        .route(
            "/api/v1/intel",
            get(workspace::list)
                .post(workspace::add)
                .delete(workspace::remove),
        )
        .route(
            "/api/v1/decisions",
            get(decisions::list)
                .post(decisions::add)
                .delete(decisions::remove),
        )
        .route("/api/v1/cases", get(workspace::cases))
        .route("/api/v1/cases/{alert}", get(workspace::show))
        .route(
            "/api/v1/cases/{alert}/ack",
            axum::routing::post(workspace::ack),
        )
        .route(
            "/api/v1/cases/{alert}/status",
            axum::routing::post(workspace::status),
        )
        .route(
            "/api/v1/cases/{alert}/notes",
            axum::routing::post(workspace::note),
        )
        .route("/api/v1/workspace", get(workspace::workspace))
        .route("/api/v1/audit", get(audit::list))
        .route("/api/v1/audit/export", get(audit::export))
        .route("/api/v1/whoami", get(operators::whoami))
        .route(
            "/api/v1/operators",
            get(operators::list).post(operators::add),
        )
        .route(
            "/api/v1/operators/{name}",
            axum::routing::put(operators::set_role).delete(operators::remove),
        )
        .route(
            "/api/v1/operators/{name}/rotate",
            axum::routing::post(operators::rotate),
        )
}

/// `GET /healthz`: liveness, the node id a client signs requests for, and
/// to a client on the node's own host, where the local admin credential is
/// (readable only by the account the node runs as).
async fn healthz(
    State(state): State<ApiState>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
) -> Json<serde_json::Value> {
    let mut body = serde_json::json!({ "status": "ok", "id": state.info.id });
    if peer.ip().to_canonical().is_loopback() {
        body["admin_key"] = state
            .authority
            .admin_key_path()
            .display()
            .to_string()
            .into();
    }
    Json(body)
}

async fn metrics(State(state): State<ApiState>) -> Response {
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        state.metrics.encode(),
    )
        .into_response()
}

/// Query of `GET /api/v1/events`; all optional, parsed by hand so that each
/// bad value is named in the error.
#[derive(Debug, Deserialize)]
struct EventsParams {
    kind: Option<String>,
    since: Option<String>,
    limit: Option<String>,
}

#[derive(Debug, Serialize)]
struct EventsBody {
    events: Vec<StoredEvent>,
}

async fn events(State(state): State<ApiState>, Query(params): Query<EventsParams>) -> Response {
    let query = match parse_events_query(&params, now_ns()) {
        Ok(q) => q,
        Err(message) => return bad_request(message),
    };
    let store = state.store.clone();
    match tokio::task::spawn_blocking(move || store.events(&query)).await {
        Ok(Ok(events)) => Json(EventsBody { events }).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("event query failed: {e}"),
        ),
    }
}

fn parse_events_query(params: &EventsParams, now_ns: u64) -> Result<EventQuery, String> {
    let class = match params.kind.as_deref().filter(|k| !k.is_empty()) {
        Some(kind) => Some(
            kind.parse::<EventClass>()
                .map_err(|e| format!("kind: {e}"))?,
        ),
        None => None,
    };
    Ok(EventQuery {
        class,
        since_ns: parse_since_at(params.since.as_deref(), now_ns)?,
        limit: parse_limit(params.limit.as_deref())?,
    })
}

/// `since=`: RFC 3339, a duration ago (`15m`), or Unix nanoseconds.
fn parse_since(since: Option<&str>) -> Result<Option<u64>, String> {
    parse_since_at(since, now_ns())
}

fn parse_since_at(since: Option<&str>, now_ns: u64) -> Result<Option<u64>, String> {
    let Some(s) = since.filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    time_of(s, now_ns).map(Some).ok_or_else(|| {
        format!(
            "since: {s:?} is not a time (expected RFC 3339 such as 2026-01-31T12:00:00Z, a duration ago such as 15m, or Unix nanoseconds)"
        )
    })
}

/// `limit=`: 1 to [`MAX_EVENTS_LIMIT`], default 100.
fn parse_limit(limit: Option<&str>) -> Result<usize, String> {
    match limit {
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_EVENTS_LIMIT).contains(n))
            .ok_or_else(|| format!("limit: {l:?} is not a number from 1 to {MAX_EVENTS_LIMIT}")),
        None => Ok(DEFAULT_EVENTS_LIMIT),
    }
}

/// A time as `since=` takes it: Unix nanoseconds, a duration ago, RFC 3339.
pub(crate) fn time_of(s: &str, now_ns: u64) -> Option<u64> {
    if let Ok(ns) = s.parse::<u64>() {
        return Some(ns);
    }
    if let Ok(ago) = humantime::parse_duration(s) {
        return Some(now_ns.saturating_sub(u64::try_from(ago.as_nanos()).unwrap_or(u64::MAX)));
    }
    let t = humantime::parse_rfc3339_weak(s).ok()?;
    u64::try_from(t.duration_since(UNIX_EPOCH).ok()?.as_nanos()).ok()
}

/// `GET /api/v1/peers`: connected mesh peers.
async fn peers(State(state): State<ApiState>) -> Response {
    let Some(mesh) = state.mesh.as_ref() else {
        return Json(serde_json::json!({ "mesh": false, "peers": [] })).into_response();
    };
    match mesh.peers().await {
        Ok(peers) => Json(serde_json::json!({
            "mesh": true,
            "id": mesh.peer_id().to_string(),
            "peers": peers,
        }))
        .into_response(),
        Err(e) => internal(e.to_string()),
    }
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such endpoint".into())
}

fn internal(message: String) -> Response {
    error(StatusCode::INTERNAL_SERVER_ERROR, message)
}

fn bad_request(message: String) -> Response {
    error(StatusCode::BAD_REQUEST, message)
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(kind: Option<&str>, since: Option<&str>, limit: Option<&str>) -> EventsParams {
        EventsParams {
            kind: kind.map(Into::into),
            since: since.map(Into::into),
            limit: limit.map(Into::into),
        }
    }

    #[test]
    fn event_query_parameters_are_parsed_or_named() {
        let now = 10_000_000_000_000;
        let q = parse_events_query(
            &params(Some("process_activity"), Some("1s"), Some("5")),
            now,
        )
        .expect("valid");
        assert_eq!(q.class, Some(EventClass::ProcessActivity));
        assert_eq!(q.since_ns, Some(now - 1_000_000_000));
        assert_eq!(q.limit, 5);
        let q = parse_events_query(&params(None, Some("1970-01-01T00:00:01Z"), None), now)
            .expect("valid");
        assert_eq!(q.since_ns, Some(1_000_000_000));
        assert_eq!(q.limit, DEFAULT_EVENTS_LIMIT);

        let err =
            parse_events_query(&params(Some("flows"), None, None), now).expect_err("bad kind");
        assert!(err.starts_with("kind: "), "{err}");
        let err =
            parse_events_query(&params(None, Some("yesterday"), None), now).expect_err("bad since");
        assert!(err.starts_with("since: "), "{err}");
        let err = parse_events_query(&params(None, None, Some("0")), now).expect_err("bad limit");
        assert!(err.starts_with("limit: "), "{err}");
    }
}
