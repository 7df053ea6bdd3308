//! The API's HTTP server. A hostile client can hold a connection, not the
//! node: headers must arrive within `api.header_timeout_ms`, one source
//! address keeps at most `api.max_connections_per_source` connections open,
//! and the whole server at most [`MAX_OPEN_CONNECTIONS`]. Bodies and request
//! slots are handled by the router's layers ([`super::admit`]).
//!
//! With TLS (`[api.tls]`) the handshake must also finish within the header
//! timeout, and a client speaking plain HTTP to the TLS port gets a `400`
//! saying to use `https://`, then the connection is closed.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

use crate::config::ApiSection;
use crate::metrics::Metrics;

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

/// TLS for [`serve`]: the rustls configuration, and the metrics that count
/// connections closed before a TLS session (`amoskys_api_tls_refused_total`).
#[derive(Debug, Clone)]
pub struct Tls {
    pub config: Arc<rustls::ServerConfig>,
    pub metrics: Arc<Metrics>,
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

/// Serves `router` on `listener`, over TLS when `tls` is given, until
/// `shutdown` turns true, then lets open requests finish (the caller bounds
/// how long).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: &Limits,
    tls: Option<Tls>,
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
            tls: tls.clone(),
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
    tls: Option<Tls>,
    _slot: SourceSlot,
    _permit: OwnedSemaphorePermit,
}

/// The first byte of a TLS record carrying a handshake (the ClientHello).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// The body of the answer to plain HTTP on the TLS port (the JSON error
/// of every refusal).
const PLAIN_HTTP_ON_TLS: &str = r#"{"error":"this node serves its API over TLS: use https://"}"#;

/// How a TLS connection's start ended.
enum Handshake {
    Done(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// The client closed before sending anything.
    Closed,
    /// The client spoke something other than TLS; it got a 400.
    PlainHttp,
}

impl Connection {
    async fn run(self, stream: TcpStream, shutdown: watch::Receiver<bool>) {
        let Some(Tls { config, metrics }) = self.tls.clone() else {
            return self.http(stream, shutdown).await;
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let peer = self.peer;
        let handshake = async move {
            let mut stream = stream;
            let mut first = [0u8; 1];
            if stream.peek(&mut first).await? == 0 {
                return Ok(Handshake::Closed);
            }
            if first[0] != TLS_HANDSHAKE_RECORD {
                // Plain HTTP (or anything else): say why, then close.
                let answer = format!(
                    "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{PLAIN_HTTP_ON_TLS}",
                    PLAIN_HTTP_ON_TLS.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.shutdown().await;
                return Ok(Handshake::PlainHttp);
            }
            acceptor
                .accept(stream)
                .await
                .map(|s| Handshake::Done(Box::new(s)))
        };
        let stopping = shutdown.clone();
        let result = tokio::select! {
            r = tokio::time::timeout(self.header_timeout, handshake) => r,
            _ = wait_stopped(stopping) => return,
        };
        match result {
            Ok(Ok(Handshake::Done(tls_stream))) => self.http(tls_stream, shutdown).await,
            Ok(Ok(Handshake::Closed)) => {
                tracing::debug!(source = %peer, "api connection closed before a tls handshake");
            }
            Ok(Ok(Handshake::PlainHttp)) => {
                metrics.tls_refused("plain_http");
                tracing::debug!(source = %peer, "plain http on the tls port answered 400");
            }
            Ok(Err(e)) => {
                metrics.tls_refused("handshake");
                tracing::debug!(source = %peer, error = %e, "api tls handshake failed");
            }
            Err(_) => {
                metrics.tls_refused("timeout");
                tracing::debug!(
                    source = %peer,
                    timeout_ms = self.header_timeout.as_millis() as u64,
                    "api tls handshake timed out (api.header_timeout_ms)"
                );
            }
        }
    }

    /// Serves HTTP/1.1 on an open (plain or TLS) stream.
    async fn http<I>(self, stream: I, mut shutdown: watch::Receiver<bool>)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
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

async fn wait_stopped(mut shutdown: watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}
