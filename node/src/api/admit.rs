//! Two layers in front of every handler. [`read_body`] reads the whole
//! request body within `api.body_timeout_ms` before the request takes a
//! slot, so a slow upload holds a connection but never a slot. [`admit`]
//! then takes one of `api.max_connections` slots; `api.write_reserve` of
//! them are kept for requests on [`Lane::Reserved`].
//!
//! The lane is a request extension. Today [`read_body`] sets it from the
//! method (writes are reserved); an authentication layer placed between the
//! two sets it from the operator instead (an admin's writes), and
//! [`admit`] honours whatever it finds.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_stream::StreamExt;

use super::error;

/// Largest request body accepted, in bytes (a policy is at most 64 KiB).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Which slots a request may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// The slots every request shares.
    Shared,
    /// The shared slots, or the reserve when they are all taken.
    Reserved,
}

impl Lane {
    /// The lane when no layer chose one: writes are reserved.
    pub fn of(method: &Method) -> Lane {
        if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
            Lane::Shared
        } else {
            Lane::Reserved
        }
    }
}

/// Request slots: `shared` for everyone, `reserved` for [`Lane::Reserved`].
#[derive(Debug, Clone)]
pub struct Gate {
    shared: Arc<Semaphore>,
    reserved: Arc<Semaphore>,
}

impl Gate {
    /// `total` slots, `reserve` of them (at most `total - 1`) reserved.
    pub fn new(total: usize, reserve: usize) -> Self {
        let total = total.max(1);
        let reserve = reserve.min(total - 1);
        Self {
            shared: Arc::new(Semaphore::new(total - reserve)),
            reserved: Arc::new(Semaphore::new(reserve)),
        }
    }

    /// Waits for a slot of `lane`; held until the permit is dropped.
    pub async fn enter(&self, lane: Lane) -> Option<OwnedSemaphorePermit> {
        match lane {
            Lane::Shared => self.shared.clone().acquire_owned().await.ok(),
            Lane::Reserved => tokio::select! {
                biased;
                p = self.shared.clone().acquire_owned() => p.ok(),
                p = self.reserved.clone().acquire_owned() => p.ok(),
            },
        }
    }
}

/// Reads the body within `timeout` and passes the request on with the body
/// in memory and a [`Lane`].
pub async fn read_body(State(timeout): State<Duration>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return too_large();
    }
    let bytes = match tokio::time::timeout(timeout, collect(body)).await {
        Ok(Ok(b)) => b,
        Ok(Err(Refused::TooLarge)) => return too_large(),
        Ok(Err(Refused::Broken(e))) => {
            return closing(
                StatusCode::BAD_REQUEST,
                format!("the request body could not be read: {e}"),
            );
        }
        Err(_) => {
            tracing::debug!(
                path = %parts.uri.path(),
                timeout_ms = timeout.as_millis() as u64,
                "api request body too slow; connection closed"
            );
            return closing(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {} ms (api.body_timeout_ms); send it at once",
                    timeout.as_millis()
                ),
            );
        }
    };
    let mut req = Request::from_parts(parts, Body::from(bytes));
    let lane = Lane::of(req.method());
    req.extensions_mut().insert(lane);
    next.run(req).await
}

/// Takes a slot for the request's lane, and runs it.
pub async fn admit(State(gate): State<Gate>, req: Request, next: Next) -> Response {
    let lane = req
        .extensions()
        .get::<Lane>()
        .copied()
        .unwrap_or_else(|| Lane::of(req.method()));
    let Some(_permit) = gate.enter(lane).await else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the API is shutting down".into(),
        );
    };
    next.run(req).await
}

enum Refused {
    TooLarge,
    Broken(axum::Error),
}

async fn collect(body: Body) -> Result<Bytes, Refused> {
    let mut stream = body.into_data_stream();
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(Refused::Broken)?;
        if out.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(Refused::TooLarge);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(out))
}

fn too_large() -> Response {
    closing(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the request body is over the limit of {MAX_BODY_BYTES} bytes"),
    )
}

/// An error response after which the connection is closed (the rest of
/// the body is not read).
fn closing(status: StatusCode, message: String) -> Response {
    let mut resp = error(status, message);
    resp.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reserved_requests_get_a_slot_when_shared_ones_are_taken() {
        let gate = Gate::new(3, 1);
        let a = gate.enter(Lane::Shared).await.expect("slot");
        let b = gate.enter(Lane::Reserved).await.expect("slot");
        let wait = Duration::from_millis(50);
        // Both shared slots are taken: a read waits, a write takes the reserve.
        assert!(
            tokio::time::timeout(wait, gate.enter(Lane::Shared))
                .await
                .is_err()
        );
        let c = tokio::time::timeout(wait, gate.enter(Lane::Reserved))
            .await
            .expect("the reserve is free")
            .expect("slot");
        assert!(
            tokio::time::timeout(wait, gate.enter(Lane::Reserved))
                .await
                .is_err()
        );
        drop(a);
        assert!(
            tokio::time::timeout(wait, gate.enter(Lane::Shared))
                .await
                .is_ok()
        );
        drop((b, c));
        assert_eq!(Lane::of(&Method::PUT), Lane::Reserved);
        assert_eq!(Lane::of(&Method::GET), Lane::Shared);
        assert_eq!(Gate::new(1, 5).reserved.available_permits(), 0);
    }
}
