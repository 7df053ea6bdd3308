//! The decision for one request: who signed it, and may they call this
//! route from where they are. [`Authority::check`] is pure apart from its
//! replay cache and failure buckets; the API's layer (`api/guard.rs`)
//! feeds it the request and turns its answer into a status.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use amoskys_consensus::{Applied, Role};
use ed25519_dalek::VerifyingKey;
use tokio::sync::watch;

use super::{
    Access, AuthError, Caller, FailureLimiter, LOCAL_ADMIN, LocalAdmin, REPLAY_CAPACITY,
    ReplayCache, RequestParts, limit, verify_request,
};

/// What a request needs besides its route: its source and headers.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    pub source: IpAddr,
    pub authorization: Option<&'a str>,
    pub parts: RequestParts<'a>,
}

/// How a request fared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A public route, or a loopback-only route that needs no credential.
    Open,
    /// An operator whose role suffices.
    Allowed(Caller),
    /// The source is over its failed-authentication budget; refused before
    /// the signature is checked.
    Limited,
    /// Not authenticated (401): no, a malformed, a stale, a replayed or a
    /// wrongly signed credential, or a key no operator holds.
    Unauthenticated(AuthError),
    /// Authenticated, or not needed, but not allowed here (403). `caller`
    /// is known when the refusal is about the role.
    Forbidden {
        caller: Option<Caller>,
        reason: String,
    },
}

/// Checks the requests of one node's API.
pub struct Authority {
    node_id: String,
    local_admin: VerifyingKey,
    admin_key_path: PathBuf,
    applied: watch::Receiver<Arc<Applied>>,
    replay: Mutex<ReplayCache>,
    failures: Mutex<FailureLimiter>,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("node_id", &self.node_id)
            .field("admin_key_path", &self.admin_key_path)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Authority {
    /// `node_id` is the peer id requests must be signed for; operators are
    /// read from the replicated state in `applied`.
    pub fn new(
        node_id: String,
        admin: &LocalAdmin,
        applied: watch::Receiver<Arc<Applied>>,
    ) -> Self {
        Self {
            node_id,
            local_admin: admin.verifying_key(),
            admin_key_path: admin.path.clone(),
            applied,
            replay: Mutex::new(ReplayCache::new(REPLAY_CAPACITY)),
            failures: Mutex::new(FailureLimiter::new(
                limit::BURST,
                limit::REFILL_PER_SEC,
                limit::MAX_SOURCES,
            )),
        }
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// This node's local admin key, 64 lowercase hex digits.
    pub fn local_admin_hex(&self) -> String {
        hex::encode(self.local_admin.to_bytes())
    }

    /// Where this node's local admin credential is (told to local clients).
    pub fn admin_key_path(&self) -> &std::path::Path {
        &self.admin_key_path
    }

    /// The operator holding `key` (64 hex digits) now, with its role as
    /// the replicated operators say: what the console asks on every request.
    pub fn operator_by_key(&self, hex_key: &str) -> Option<Caller> {
        let key = hex::decode(hex_key).ok()?;
        VerifyingKey::from_bytes(&key.try_into().ok()?)
            .ok()
            .and_then(|k| self.operator(&k))
    }

    /// The operator holding `key`: a named operator of the cluster, or else
    /// the node's local admin.
    fn operator(&self, key: &VerifyingKey) -> Option<Caller> {
        let hex_key = hex::encode(key.to_bytes());
        let applied = self.applied.borrow();
        if let Some((name, op)) = applied
            .state
            .operators
            .iter()
            .find(|(_, op)| op.key == hex_key)
        {
            return Some(Caller {
                name: name.clone(),
                key: hex_key,
                role: op.role,
            });
        }
        (*key == self.local_admin).then(|| Caller {
            name: LOCAL_ADMIN.to_owned(),
            key: hex_key,
            role: Role::Admin,
        })
    }

    /// Decides one request to a route that needs `access`, at `now_ms`.
    pub fn check(&self, access: Access, req: &Incoming<'_>, now_ms: u64) -> Verdict {
        let (role, local_only) = match access {
            Access::Public => return Verdict::Open,
            Access::Local => {
                return if req.source.is_loopback() {
                    Verdict::Open
                } else {
                    Verdict::Forbidden {
                        caller: None,
                        reason: "this endpoint is served only on the node's own host (loopback)"
                            .into(),
                    }
                };
            }
            Access::Role(r) => (r, false),
            Access::LocalRole(r) => (r, true),
            // The console's own layer checks sessions; a signature is not one.
            Access::Session(_) => {
                return Verdict::Forbidden {
                    caller: None,
                    reason: "console pages take a console session, not a signed request".into(),
                };
            }
        };
        if local_only && !req.source.is_loopback() {
            return Verdict::Forbidden {
                caller: None,
                reason: "raw telemetry is served only on the node's own host (loopback), whatever the role".into(),
            };
        }
        if !lock(&self.failures).allow(req.source, now_ms) {
            return Verdict::Limited;
        }
        let outcome = {
            let mut replay = lock(&self.replay);
            verify_request(req.authorization, &req.parts, now_ms, &mut replay, |key| {
                self.operator(key)
            })
        };
        let caller = match outcome {
            Ok((_, caller)) => caller,
            Err(e) => {
                // A full replay cache is the node's limit, not the client's fault.
                if e != AuthError::Busy {
                    lock(&self.failures).record_failure(req.source, now_ms);
                }
                return Verdict::Unauthenticated(e);
            }
        };
        if caller.role < role {
            let reason = format!(
                "operator {} is {} {}; this needs {} {role}",
                caller.name,
                article(caller.role),
                caller.role,
                article(role),
            );
            return Verdict::Forbidden {
                caller: Some(caller),
                reason,
            };
        }
        Verdict::Allowed(caller)
    }
}

fn article(role: Role) -> &'static str {
    match role {
        Role::Admin | Role::Analyst => "an",
        Role::Viewer => "a",
    }
}

#[cfg(test)]
mod tests;
