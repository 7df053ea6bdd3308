//! The API's HTTP server. A hostile client can hold a connection, not the
//! node: headers must arrive within `api.header_timeout_ms`, one source
//! address keeps at most `api.max_connections_per_source` connections open,
//! and the whole server at most [`MAX_OPEN_CONNECTIONS`]. Bodies and request
//! slots are handled by the router's layers ([`super::admit`]).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

use crate::config::ApiSection;

/// Connections open at once over all sources; further ones wait in the
/// listen backlog.
pub const MAX_OPEN_CONNECTIONS: usize = 4096;

/// How the API bounds its clients (the `[api]` keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Requests handled at once (`api.max_connections`).
    pub max_requests: usize,
    /// Of those, slots only reserved-lane requests take (`api.write_reserve`).
    pub write_reserve: usize,
    /// Open connections per source address.
    pub per_source: usize,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
}

impl Limits {
    pub fn from_config(api: &ApiSection) -> Self {
        Self {
            max_requests: api.max_connections,
            write_reserve: api.write_reserve,
            per_source: api.max_connections_per_source,
            header_timeout: Duration::from_millis(api.header_timeout_ms),
            body_timeout: Duration::from_millis(api.body_timeout_ms),
        }
    }
}

/// Open connections per source address.
#[derive(Debug, Default)]
struct Sources(Mutex<HashMap<IpAddr, usize>>);

/// One open connection of a source; frees its place when dropped.
#[derive(Debug)]
struct SourceSlot {
    sources: Arc<Sources>,
    ip: IpAddr,
}

impl Sources {
    fn take(self: &Arc<Self>, ip: IpAddr, limit: usize) -> Option<SourceSlot> {
        let mut open = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(ip).or_default();
        if *n >= limit {
            return None;
        }
        *n += 1;
        Some(SourceSlot {
            sources: self.clone(),
            ip,
        })
    }
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut open = self.sources.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Serves `router` on `listener` until `shutdown` turns true, then lets
/// open requests finish (the caller bounds how long).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: &Limits,
    mut shutdown: watch::Receiver<bool>,
) {
    let sources = Arc::new(Sources::default());
    let open = Arc::new(Semaphore::new(MAX_OPEN_CONNECTIONS));
    let mut conns = JoinSet::new();
    let mut stop = shutdown.clone();
    let stopped = stop.wait_for(|s| *s);
    tokio::pin!(stopped);
    loop {
        while conns.try_join_next().is_some() {}
        let permit = tokio::select! {
            p = open.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = &mut stopped => break,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut stopped => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors, or a connection reset before accept.
                tracing::warn!(error = %e, "api accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = sources.take(peer.ip(), limits.per_source) else {
            tracing::debug!(
                source = %peer.ip(),
                limit = limits.per_source,
                "api connection refused: too many from this source (api.max_connections_per_source)"
            );
            continue;
        };
        let conn = Connection {
            router: router.clone(),
            peer,
            header_timeout: limits.header_timeout,
            _slot: slot,
            _permit: permit,
        };
        conns.spawn(conn.run(stream, shutdown.clone()));
    }
    // Connections finish their requests and close (graceful shutdown).
    let _ = shutdown.wait_for(|s| *s).await;
    while conns.join_next().await.is_some() {}
}

#[derive(Debug)]
struct Connection {
    router: Router,
    peer: SocketAddr,
    header_timeout: Duration,
    _slot: SourceSlot,
    _permit: OwnedSemaphorePermit,
}

impl Connection {
    async fn run(self, stream: TcpStream, mut shutdown: watch::Receiver<bool>) {
        let (router, peer) = (self.router.clone(), self.peer);
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            let mut router = router.clone();
            async move {
                let resp: Result<_, Infallible> =
                    tower::Service::call(&mut router, req.map(axum::body::Body::new)).await;
                resp
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_timeout);
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        tokio::pin!(conn);
        let stopping = async move {
            let _ = shutdown.wait_for(|s| *s).await;
        };
        let result = tokio::select! {
            r = conn.as_mut() => r,
            () = stopping => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Err(e) = result {
            tracing::debug!(source = %peer, error = %e, "api connection ended");
        }
    }
}
