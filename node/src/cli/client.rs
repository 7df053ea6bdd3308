//! One HTTP client for every command that talks to a node's API: query
//! strings are built by reqwest (values URL-encoded), every refusal prints
//! the server's own reason, and an unreachable node has its own exit code.

use std::error::Error as _;
use std::fmt;
use std::process::ExitCode;
use std::time::Duration;

use reqwest::{Method, StatusCode};

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

/// A node's API at `IP:PORT`.
#[derive(Debug, Clone)]
pub(super) struct Api {
    addr: String,
    http: reqwest::Client,
}

impl Api {
    pub(super) fn new(addr: &str) -> Self {
        Self {
            addr: addr.to_owned(),
            http: reqwest::Client::new(),
        }
    }

    pub(super) fn addr(&self) -> &str {
        &self.addr
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
        let url = format!("http://{}{path}", self.addr);
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
        let resp = req.send().await.map_err(|e| self.unreachable(&e))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let text = resp.text().await.unwrap_or_default();
        Err(ClientError::Refused {
            status,
            reason: reason(status, &text),
        })
    }

    pub(super) fn unreachable(&self, e: &reqwest::Error) -> ClientError {
        ClientError::Unreachable {
            api: self.addr.clone(),
            cause: cause(e),
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
