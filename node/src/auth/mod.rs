//! Who may call the API: signed requests, the replay cache, the limit on
//! failed attempts per source, the access each route needs, and the key
//! files of operators and of the node's local admin (docs/SECURITY.md,
//! "Operators and requests").
//!
//! Every request is signed with an operator's ed25519 key over the target
//! node, method, path, body hash, a timestamp and a nonce (`sign.rs`); no
//! secret crosses the wire and a request cannot be replayed, to the same
//! node ([`ReplayCache`]) or to another. Time is an input everywhere here
//! (`now_ms`), so all of it is tested without a clock.
//!
//! [`Authority`] decides each request; the API's layer (`api/guard.rs`)
//! enforces its decision on every route.

mod authority;
mod keys;
mod limit;
mod replay;
mod routes;
mod sign;

pub use authority::{Authority, Incoming, Verdict};
pub(crate) use keys::write_private_key;
pub use keys::{
    ADMIN_KEY_FILE, KeyError, LocalAdmin, ensure_local_admin, keygen_operator, load_public_key,
    load_signing_key,
};
pub use limit::FailureLimiter;
pub use replay::{REPLAY_CAPACITY, REPLAY_WINDOW_MS, ReplayCache};
pub use routes::{Access, ROUTES, access};
pub use sign::{
    MAX_SKEW_MS, RequestParts, SCHEME, SignedRequest, ct_eq, sign_request, signed_bytes,
    verify_request,
};

/// Who made a request, as the API's authentication layer found it; a
/// request extension every handler behind the layer can read
/// (`Extension<Caller>`), for the audit trail and the records it writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The operator's name; [`LOCAL_ADMIN`] for the node's local admin
    /// credential when it is not a named operator.
    pub name: String,
    /// The operator's ed25519 public key, 64 lowercase hex digits.
    pub key: String,
    pub role: amoskys_consensus::Role,
}

/// The operator name of a node's local admin credential
/// (`<data_dir>/admin.key`) that no operator record names.
pub const LOCAL_ADMIN: &str = "local-admin";

/// Why a request was not authenticated or not allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no Authorization header; sign the request with an operator key (docs/SECURITY.md)")]
    Missing,
    #[error("Authorization header is malformed: {0}")]
    Malformed(String),
    #[error("the request signature does not verify for this node, method, path and body")]
    BadSignature,
    #[error(
        "the request was signed at {ts_ms} ms, more than 60 s from this node's clock ({now_ms} ms); check both clocks"
    )]
    Expired { ts_ms: u64, now_ms: u64 },
    #[error("this request was already received (same key and nonce); sign each request anew")]
    Replayed,
    #[error("too many signed requests in the last two minutes; retry shortly")]
    Busy,
    #[error("key {0} is not an operator of this cluster")]
    UnknownKey(String),
    #[error("{0}")]
    Forbidden(String),
}

impl AuthError {
    /// A short label for `amoskys_api_auth_failures_total{reason}`.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::Malformed(_) => "malformed",
            AuthError::BadSignature => "bad_signature",
            AuthError::Expired { .. } => "expired",
            AuthError::Replayed => "replayed",
            AuthError::Busy => "busy",
            AuthError::UnknownKey(_) => "unknown_key",
            AuthError::Forbidden(_) => "forbidden",
        }
    }
}
