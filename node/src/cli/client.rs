//! One HTTP client for every command that talks to a node's API: query
//! strings are built by reqwest (values URL-encoded), every request is
//! signed with an operator key (docs/SECURITY.md), every refusal prints the
//! server's own reason, and an unreachable node has its own exit code.
//!
//! The key is `--key FILE` (or `AMOSKYS_OPERATOR_KEY`); without one, the
//! node's local admin credential when the node is on this host and this
//! account may read it.

use std::error::Error as _;
use std::fmt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ed25519_dalek::SigningKey;
use reqwest::{Method, StatusCode};
use tokio::sync::OnceCell;

use amoskys_node::auth::{RequestParts, load_signing_key, sign_request};

/// Exit codes of client commands, documented in README.md.
pub(super) mod exit {
    /// The node refused the request or the command failed.
    pub const FAILED: u8 = 1;
    /// Bad arguments or an unreadable local file (clap uses 2 as well).
    pub const USAGE: u8 = 2;
    /// No answer from the node: not running, wrong `--api`, or it stopped.
    pub const UNREACHABLE: u8 = 3;
}

/// The `--api` default of every client command.
pub(super) const DEFAULT_API: &str = "127.0.0.1:7300";

/// Why a client command failed.
#[derive(Debug)]
pub(super) enum ClientError {
    /// The node did not answer (connection refused, timeout, reset).
    Unreachable { api: String, cause: String },
    /// The node answered with an error status and this reason.
    Refused { status: StatusCode, reason: String },
    /// What was asked did not happen (a round abandoned, a stream ended).
    Failed(String),
    /// A local problem: bad argument, unreadable file, unexpected answer.
    Local(String),
}

impl ClientError {
    pub(super) fn exit_code(&self) -> u8 {
        match self {
            ClientError::Unreachable { .. } => exit::UNREACHABLE,
            ClientError::Refused { .. } | ClientError::Failed(_) => exit::FAILED,
            ClientError::Local(_) => exit::USAGE,
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Unreachable { api, cause } => write!(
                f,
                "cannot reach the node API at {api}: {cause}\n  is `amoskys run` running there? (pick another node with --api IP:PORT)"
            ),
            ClientError::Refused { status, reason } => {
                write!(f, "the node refused ({}): {reason}", status.as_u16())
            }
            ClientError::Failed(message) | ClientError::Local(message) => f.write_str(message),
        }
    }
}

impl From<String> for ClientError {
    fn from(message: String) -> Self {
        ClientError::Local(message)
    }
}

/// Prints a command's error and turns it into its exit code.
pub(super) fn finish(result: Result<(), ClientError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("amoskys: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Runs a client command on a small runtime of its own.
pub(super) fn run(fut: impl std::future::Future<Output = Result<(), ClientError>>) -> ExitCode {
    finish(
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ClientError::Local(format!("cannot start the async runtime: {e}")))
            .and_then(|rt| rt.block_on(fut)),
    )
}

/// A body to send.
pub(super) enum Body {
    Json(serde_json::Value),
    Text(String),
}

/// How requests to one node are signed: the node's id, and the key (none
/// when no credential could be found; `why` then says what was tried).
struct Signer {
    node_id: String,
    key: Option<SigningKey>,
    why: String,
}

/// A node's API at `IP:PORT`.
#[derive(Clone)]
pub(super) struct Api {
    addr: String,
    /// `scheme://IP:PORT` of `addr` ([`super::tls`]).
    base: String,
    http: reqwest::Client,
    /// Why the TLS options could not be used; every request fails with it.
    tls_error: Option<String>,
    key_file: Option<PathBuf>,
    signer: Arc<OnceCell<Signer>>,
}

impl fmt::Debug for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Api")
            .field("addr", &self.addr)
            .field("key_file", &self.key_file)
            .finish_non_exhaustive()
    }
}

impl Api {
    /// A client of the node at `addr` that signs with `key_file`, or with
    /// the node's local admin credential when `None`.
    pub(super) fn new(addr: &str, key_file: Option<PathBuf>) -> Self {
        let (base, http, tls_error) = connect(addr, &super::tls::TlsArgs::from_env());
        Self {
            addr: addr.to_owned(),
            base,
            http,
            tls_error,
            key_file,
            signer: Arc::new(OnceCell::new()),
        }
    }

    /// The same client with the TLS options `tls` (`--cacert`, `--pin`).
    pub(super) fn with_tls(mut self, tls: &super::tls::TlsArgs) -> Self {
        (self.base, self.http, self.tls_error) = connect(&self.addr, tls);
        self
    }

    pub(super) fn addr(&self) -> &str {
        &self.addr
    }

    /// The base URL requests go to (`http://host:port` or `https://…`).
    pub(super) fn base(&self) -> &str {
        &self.base
    }

    pub(super) async fn get(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<serde_json::Value, ClientError> {
        self.call(Method::GET, path, query, None).await
    }

    pub(super) async fn post(
        &self,
        path: &str,
        body: Option<Body>,
    ) -> Result<serde_json::Value, ClientError> {
        self.call(Method::POST, path, &[], body).await
    }

    pub(super) async fn put(
        &self,
        path: &str,
        body: Body,
    ) -> Result<serde_json::Value, ClientError> {
        self.call(Method::PUT, path, &[], Some(body)).await
    }

    pub(super) async fn delete(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<serde_json::Value, ClientError> {
        self.call(Method::DELETE, path, query, None).await
    }

    /// One request whose answer is JSON.
    pub(super) async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Body>,
    ) -> Result<serde_json::Value, ClientError> {
        let text = self
            .text(method, path, query, body, Duration::from_secs(30))
            .await?;
        if text.trim().is_empty() {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| {
            ClientError::Local(format!("unexpected answer from {}{path}: {e}", self.addr))
        })
    }

    /// One request whose answer is taken as text (exports).
    pub(super) async fn text(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Body>,
        timeout: Duration,
    ) -> Result<String, ClientError> {
        let resp = self.send(method, path, query, body, Some(timeout)).await?;
        resp.text().await.map_err(|e| self.unreachable(&e))
    }

    /// Sends a request and checks its status; the body is left to read
    /// (streams). No timeout when `timeout` is `None`.
    pub(super) async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Body>,
        timeout: Option<Duration>,
    ) -> Result<reqwest::Response, ClientError> {
        if let Some(e) = &self.tls_error {
            return Err(ClientError::Local(e.clone()));
        }
        let signer = self.signer().await?;
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method, &url);
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        match body {
            Some(Body::Json(v)) => req = req.json(&v),
            Some(Body::Text(t)) => req = req.body(t),
            None => {}
        }
        let mut req = req
            .build()
            .map_err(|e| ClientError::Local(format!("cannot build the request to {url}: {e}")))?;
        if let Some(key) = &signer.key {
            let header = authorization(key, &signer.node_id, &req);
            let value = reqwest::header::HeaderValue::from_str(&header)
                .map_err(|e| ClientError::Local(format!("cannot sign the request: {e}")))?;
            req.headers_mut()
                .insert(reqwest::header::AUTHORIZATION, value);
        }
        let resp = self
            .http
            .execute(req)
            .await
            .map_err(|e| self.unreachable(&e))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let text = resp.text().await.unwrap_or_default();
        let mut reason = reason(status, &text);
        if status == StatusCode::UNAUTHORIZED && signer.key.is_none() {
            reason = format!("{reason}\n  {}", signer.why);
        }
        Err(ClientError::Refused { status, reason })
    }

    /// The operator key this client signs with (`operator rotate` signs the
    /// hand-over with it).
    pub(super) async fn operator_key(&self) -> Result<SigningKey, ClientError> {
        let signer = self.signer().await?;
        signer
            .key
            .clone()
            .ok_or_else(|| ClientError::Local(signer.why.clone()))
    }

    /// The node's id and the key to sign with, found once per client.
    async fn signer(&self) -> Result<&Signer, ClientError> {
        self.signer.get_or_try_init(|| self.find_signer()).await
    }

    async fn find_signer(&self) -> Result<Signer, ClientError> {
        let url = format!("{}/healthz", self.base);
        let resp = self
            .http
            .get(&url)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        let status = resp.status();
        if !status.is_success() {
            // E.g. plain HTTP to a TLS port: the node says to use https://.
            let text = resp.text().await.unwrap_or_default();
            let reason = reason(status, &text);
            return Err(ClientError::Refused { status, reason });
        }
        let health: serde_json::Value = resp
            .json()
            .await
            .map_err(|e| ClientError::Local(format!("unexpected answer from {url}: {e}")))?;
        let node_id = health["id"]
            .as_str()
            .ok_or_else(|| ClientError::Local(format!("{url} did not name the node's id")))?
            .to_owned();
        if let Some(path) = &self.key_file {
            let key = load_signing_key(path).map_err(|e| ClientError::Local(e.to_string()))?;
            return Ok(Signer {
                node_id,
                key: Some(key),
                why: String::new(),
            });
        }
        let Some(local) = health["admin_key"].as_str().map(PathBuf::from) else {
            return Ok(Signer {
                node_id,
                key: None,
                why: "no credential: the node is not on this host; pass --key FILE or set AMOSKYS_OPERATOR_KEY".into(),
            });
        };
        Ok(match load_signing_key(&local) {
            Ok(key) => Signer {
                node_id,
                key: Some(key),
                why: String::new(),
            },
            Err(e) => Signer {
                node_id,
                key: None,
                why: format!(
                    "no credential: {e}\n  run as the account the node runs as (root), or pass --key FILE or set AMOSKYS_OPERATOR_KEY"
                ),
            },
        })
    }

    pub(super) fn unreachable(&self, e: &reqwest::Error) -> ClientError {
        ClientError::Unreachable {
            api: self.addr.clone(),
            cause: super::tls::explain(cause(e)),
        }
    }
}

/// The `Authorization` header of `req`, signed now with a fresh nonce.
fn authorization(key: &SigningKey, node_id: &str, req: &reqwest::Request) -> String {
    let url = req.url();
    let path_and_query = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    let body = req.body().and_then(|b| b.as_bytes()).unwrap_or_default();
    let ts_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    sign_request(
        key,
        &RequestParts {
            node_id,
            method: req.method().as_str(),
            path_and_query: &path_and_query,
            body,
        },
        ts_ms,
        &rand::random(),
    )
}

/// The base URL and HTTP client for `addr`, or why `tls` cannot be used.
fn connect(addr: &str, tls: &super::tls::TlsArgs) -> (String, reqwest::Client, Option<String>) {
    match super::tls::client(addr, tls) {
        Ok((base, http)) => (base, http, None),
        Err(e) => {
            // The client is never used: `e` is reported before any request.
            let http = super::tls::plain()
                .ok()
                .and_then(|c| {
                    reqwest::Client::builder()
                        .tls_backend_preconfigured(c)
                        .build()
                        .ok()
                })
                .unwrap_or_default();
            (format!("http://{addr}"), http, Some(e))
        }
    }
}

/// Percent-escapes a path segment (an alert id, a peer id).
pub(super) fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The server's reason: the `error` of a JSON body, else its text, else the
/// status's own phrase.
fn reason(status: StatusCode, body: &str) -> String {
    let from_json = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned));
    match from_json {
        Some(r) => r,
        None if !body.trim().is_empty() => body.trim().to_owned(),
        None => status
            .canonical_reason()
            .unwrap_or("no reason given")
            .to_owned(),
    }
}

/// The innermost causes of a request error ("connection refused"), which
/// reqwest's own message leaves out.
fn cause(e: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    if e.is_timeout() {
        parts.push("no answer in time".to_owned());
    }
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    if parts.is_empty() {
        parts.push(e.to_string());
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_reason_is_kept_whatever_its_form() {
        let json = r#"{"error":"kind: unknown entity kind"}"#;
        assert_eq!(
            reason(StatusCode::BAD_REQUEST, json),
            "kind: unknown entity kind"
        );
        let plain = "Failed to deserialize the JSON body: rule: unknown variant";
        assert_eq!(reason(StatusCode::UNPROCESSABLE_ENTITY, plain), plain);
        assert_eq!(reason(StatusCode::NOT_FOUND, ""), "Not Found");
    }

    #[test]
    fn each_kind_of_failure_has_its_exit_code() {
        let unreachable = ClientError::Unreachable {
            api: "127.0.0.1:1".into(),
            cause: "connection refused".into(),
        };
        assert_eq!(unreachable.exit_code(), exit::UNREACHABLE);
        assert!(unreachable.to_string().contains("connection refused"));
        let refused = ClientError::Refused {
            status: StatusCode::SERVICE_UNAVAILABLE,
            reason: "quorum lost".into(),
        };
        assert_eq!(refused.exit_code(), exit::FAILED);
        assert!(refused.to_string().contains("503"));
        assert!(refused.to_string().contains("quorum lost"));
    }
}
