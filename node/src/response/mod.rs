//! Mesh-agreed response: alerts become signed decisions shared through the
//! workspace, and a bouncer on every node enforces the live ones with
//! nftables (docs/RESPONSE.md).
//!
//! - [`policy`]: the `[response]` section (rules, mode, `never_block`,
//!   `max_decisions`); pure.
//! - [`decisions`]: the decision model, the never-block [`decisions::Guard`]
//!   and the [`decisions::plan`] a node enforces; pure.
//! - [`engine`]: alerts in, decisions out (rules and campaign counts); pure.
//! - [`nft`]: the nftables driver (one `nft -j` transaction per change).
//! - [`metrics`]: `amoskys_response_*` at scrape time.
//! - [`bouncer`]: the task that ties them to the node: writes decisions to
//!   the workspace, follows its `decisions` document and the policy,
//!   installs the table, and removes it at shutdown.
//!
//! The bouncer never takes the node down: without `nft` or CAP_NET_ADMIN
//! it is unhealthy with the reason (`GET /api/v1/node`, `amoskys status`)
//! and the node runs.

pub mod bouncer;
pub mod decisions;
pub mod engine;
pub mod metrics;
pub mod nft;
pub mod policy;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

pub use decisions::{Action, Decision, Guard, Refusal, Subject};
pub use policy::{ResponsePolicy, ResponseRule};

/// The bouncer as `GET /api/v1/node` shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BouncerStatus {
    /// `observe` or `enforce` (the policy's).
    pub mode: String,
    pub healthy: bool,
    /// Why it is unhealthy.
    pub reason: Option<String>,
    /// The nftables table (family `inet`).
    pub table: String,
    /// Subjects in the kernel set as last applied.
    pub enforced: usize,
    /// Decisions refused since start (they would have blocked a protected
    /// address), by reason.
    pub refused: BTreeMap<String, u64>,
    /// Live decisions beyond `response.max_decisions`.
    pub over_limit: usize,
    /// Decisions this node's rules wrote since start.
    pub decided: u64,
    /// nft transactions applied since start.
    pub applied: u64,
}

/// The bouncer's state shared with the API.
#[derive(Debug, Default)]
pub struct Response {
    status: Mutex<BouncerStatus>,
    guard: Mutex<Guard>,
}

impl Response {
    pub fn new(table: &str) -> Response {
        Response {
            status: Mutex::new(BouncerStatus {
                mode: "observe".into(),
                healthy: true,
                table: table.to_owned(),
                ..BouncerStatus::default()
            }),
            guard: Mutex::default(),
        }
    }

    pub fn status(&self) -> BouncerStatus {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn update(&self, f: impl FnOnce(&mut BouncerStatus)) {
        f(&mut self.status.lock().unwrap_or_else(PoisonError::into_inner));
    }

    pub(crate) fn set_guard(&self, guard: Guard) {
        *self.guard.lock().unwrap_or_else(PoisonError::into_inner) = guard;
    }

    /// Checks `subject` against what is never blocked here; a refusal is
    /// counted.
    pub fn check(&self, subject: &Subject) -> Result<(), Refusal> {
        let checked = self
            .guard
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .check(subject);
        if let Err(r) = &checked {
            self.refused(r);
        }
        checked
    }

    pub(crate) fn refused(&self, r: &Refusal) {
        tracing::warn!(reason = r.label(), refusal = %r, "decision refused");
        self.update(|s| *s.refused.entry(r.label().to_owned()).or_default() += 1);
    }
}

/// The IP address in a member's address: `host:port`, `[v6]:port`, a bare
/// address or a multiaddr (`/ip4/…/tcp/…`).
pub fn ip_in(addr: &str) -> Option<IpAddr> {
    let a = addr.trim();
    if let Some(rest) = a.strip_prefix('/') {
        let mut parts = rest.split('/');
        return match (parts.next(), parts.next()) {
            (Some("ip4" | "ip6"), Some(ip)) => ip.parse().ok(),
            _ => None,
        };
    }
    a.parse::<IpAddr>()
        .ok()
        .or_else(|| a.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
}

/// The node's own addresses in its network namespace: local IPv4 routes of
/// `/proc/net/fib_trie` and the IPv6 addresses of `/proc/net/if_inet6`.
pub fn own_addresses() -> Vec<IpAddr> {
    let trie = std::fs::read_to_string("/proc/net/fib_trie").unwrap_or_default();
    let v6 = std::fs::read_to_string("/proc/net/if_inet6").unwrap_or_default();
    parse_own(&trie, &v6)
}

/// [`own_addresses`] from the two files' text.
pub fn parse_own(fib_trie: &str, if_inet6: &str) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::new();
    let mut last: Option<IpAddr> = None;
    for line in fib_trie.lines() {
        let t = line.trim();
        if let Some(a) = t.strip_prefix("|-- ") {
            last = a.trim().parse().ok();
        } else if t.starts_with("/32 host LOCAL")
            && let Some(ip) = last
            && !out.contains(&ip)
        {
            out.push(ip);
        }
    }
    for line in if_inet6.lines() {
        let Some(hex) = line.split_whitespace().next() else {
            continue;
        };
        if let Ok(n) = u128::from_str_radix(hex, 16)
            && hex.len() == 32
        {
            let ip = IpAddr::V6(std::net::Ipv6Addr::from(n));
            if !out.contains(&ip) {
                out.push(ip);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
