//! Request-response between nodes, for the layers above the mesh: Raft
//! RPCs, model updates, blobs fetched by SHA-256, joins, workspace sync,
//! and the peer view that the mesh answers itself ([`crate::net::PeerView`]).
//!
//! One libp2p protocol, `/amoskys/rpc/1`; each message starts with its
//! [`Service`] byte, so each service has its own size limits and timeout.
//! A response carries a status byte: 0 and the body, or 1 and a reason.
//! Requests from peers whose key is not admitted are refused before any
//! handler sees them.

use std::io;

use futures::prelude::*;
use libp2p::StreamProtocol;
use libp2p::request_response::Codec;

pub const RPC_PROTOCOL: &str = "/amoskys/rpc/1";
const OK: u8 = 0;
const FAILED: u8 = 1;

/// What a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// Raft RPCs (append entries, votes, snapshots in chunks).
    Raft,
    /// Federated model updates.
    Model,
    /// Content fetched by SHA-256.
    Blob,
    /// A node asks to join the cluster; the only service open to peers
    /// that are not admitted.
    Join,
    /// Sync messages of the shared workspace documents.
    Workspace,
    /// Which members a member is connected to, and its name (mesh metadata
    /// for the console's picture); answered by the mesh itself.
    View,
}

impl Service {
    pub const ALL: [Service; 6] = [
        Service::Raft,
        Service::Model,
        Service::Blob,
        Service::Join,
        Service::Workspace,
        Service::View,
    ];

    fn tag(self) -> u8 {
        match self {
            Service::Raft => 1,
            Service::Model => 2,
            Service::Blob => 3,
            Service::Join => 4,
            Service::Workspace => 5,
            Service::View => 6,
        }
    }

    fn from_tag(t: u8) -> Option<Service> {
        Service::ALL.into_iter().find(|s| s.tag() == t)
    }

    /// Largest request body accepted.
    pub fn max_request(self) -> usize {
        match self {
            Service::Raft => 4 << 20,
            Service::Model => 16 << 20,
            Service::Blob => 1 << 10,
            Service::Join => 4 << 10,
            // Above the workspace's own 4 MiB bound, so an oversized
            // message reaches it and is counted.
            Service::Workspace => 5 << 20,
            // The request is the service byte alone.
            Service::View => 0,
        }
    }

    /// Largest response body accepted.
    pub fn max_response(self) -> usize {
        match self {
            Service::Raft => 4 << 20,
            Service::Model => 16 << 20,
            Service::Blob => 64 << 20,
            Service::Join => 64 << 10,
            Service::Workspace => 5 << 20,
            Service::View => crate::net::MAX_VIEW_BYTES,
        }
    }

    /// How long a request may take, answer included.
    pub fn timeout(self) -> std::time::Duration {
        std::time::Duration::from_secs(match self {
            Service::Raft => 5,
            Service::Model => 60,
            Service::Blob => 120,
            Service::Join => 10,
            Service::Workspace => 30,
            Service::View => 5,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Service::Raft => "raft",
            Service::Model => "model",
            Service::Blob => "blob",
            Service::Join => "join",
            Service::Workspace => "workspace",
            Service::View => "view",
        }
    }
}

/// A request on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcRequest {
    pub service: Service,
    pub body: Vec<u8>,
}

/// A response on the wire: the body, or why there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcResponse {
    pub service: Service,
    pub result: Result<Vec<u8>, String>,
}

/// Reads and writes [`RpcRequest`] and [`RpcResponse`], enforcing each
/// service's limits while reading.
#[derive(Debug, Clone, Default)]
pub struct RpcCodec;

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

async fn read_service<T: AsyncRead + Unpin + Send>(io: &mut T) -> io::Result<Service> {
    let mut tag = [0u8; 1];
    io.read_exact(&mut tag).await?;
    Service::from_tag(tag[0]).ok_or_else(|| invalid(format!("unknown service {}", tag[0])))
}

async fn read_limited<T: AsyncRead + Unpin + Send>(
    io: &mut T,
    limit: usize,
) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    io.take(limit as u64 + 1).read_to_end(&mut body).await?;
    if body.len() > limit {
        return Err(invalid(format!("message over the limit of {limit} bytes")));
    }
    Ok(body)
}

impl Codec for RpcCodec {
    type Protocol = StreamProtocol;
    type Request = RpcRequest;
    type Response = RpcResponse;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<RpcRequest>
    where
        T: AsyncRead + Unpin + Send,
    {
        let service = read_service(io).await?;
        let body = read_limited(io, service.max_request()).await?;
        Ok(RpcRequest { service, body })
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<RpcResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        let service = read_service(io).await?;
        let mut status = [0u8; 1];
        io.read_exact(&mut status).await?;
        let body = read_limited(io, service.max_response()).await?;
        let result = match status[0] {
            OK => Ok(body),
            _ => Err(String::from_utf8_lossy(&body).into_owned()),
        };
        Ok(RpcResponse { service, result })
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: RpcRequest,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        if req.body.len() > req.service.max_request() {
            return Err(invalid(format!(
                "{} request of {} bytes is over the limit of {}",
                req.service.as_str(),
                req.body.len(),
                req.service.max_request()
            )));
        }
        io.write_all(&[req.service.tag()]).await?;
        io.write_all(&req.body).await?;
        io.close().await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: RpcResponse,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let (status, body) = match res.result {
            Ok(b) if b.len() <= res.service.max_response() => (OK, b),
            Ok(b) => (
                FAILED,
                format!("response of {} bytes is over the limit", b.len()).into_bytes(),
            ),
            Err(e) => (FAILED, e.into_bytes()),
        };
        io.write_all(&[res.service.tag(), status]).await?;
        io.write_all(&body).await?;
        io.close().await
    }
}
