//! Writing the audit trail: every state-changing request becomes a signed
//! [`AuditRecord`] committed through Raft (docs/SECURITY.md, "Audit
//! trail").
//!
//! - [`commit_audited`]: a replicated command and its record in one Raft
//!   entry (policy, model activation, operators);
//! - [`record_action`]: a record alone, after an action that is not one
//!   command (members, rounds, cluster init, workspace edits, local
//!   training);
//! - [`record_denied`]: a refused request (403), best effort.
//!
//! The node signs each record with its own key; its node id is that key,
//! so apply on every member can check the signature.

use std::sync::atomic::{AtomicUsize, Ordering};

use amoskys_consensus::audit::{AuditRecord, MAX_SUMMARY};
use amoskys_consensus::{ClusterError, Command, NodeId, Outcome, PolicyRecord};
use ed25519_dalek::Signer;

use crate::api::ApiState;
use crate::auth::Caller;

/// Builds and signs a record of what `caller` did on this node.
pub fn record(
    state: &ApiState,
    caller: Option<&Caller>,
    action: &str,
    target: &str,
    summary: &str,
    result: &str,
) -> AuditRecord {
    signed_record(&state.key, caller, action, target, summary, result)
}

/// [`record`] with the node key itself, for code outside the API (the
/// first admin recorded when a node forms a cluster: `caller` `None`, the
/// record then names the node as operator "system").
pub fn signed_record(
    key: &ed25519_dalek::SigningKey,
    caller: Option<&Caller>,
    action: &str,
    target: &str,
    summary: &str,
    result: &str,
) -> AuditRecord {
    let mut r = AuditRecord {
        time_ns: amoskys_sensors::now_ns(),
        operator: caller.map_or_else(|| "system".to_owned(), |c| c.name.clone()),
        operator_key: caller.map_or_else(String::new, |c| c.key.clone()),
        role: caller.map(|c| c.role),
        node: NodeId(key.verifying_key().to_bytes()),
        action: action.to_owned(),
        target: target.to_owned(),
        summary: summary.to_owned(),
        result: result.to_owned(),
        sig: String::new(),
    };
    r.clip_fields();
    r.sig = hex::encode(key.sign(&r.signed_bytes()).to_bytes());
    r
}

/// Commits `cmd` with its audit record in one Raft entry; answers the
/// log index and the command's outcome (a refused command is recorded
/// with its reason too).
pub async fn commit_audited(
    state: &ApiState,
    caller: &Caller,
    action: &str,
    target: &str,
    summary: &str,
    cmd: Command,
) -> Result<(u64, Outcome), ClusterError> {
    commit_as(state, Some(caller), action, target, summary, cmd).await
}

/// [`commit_audited`] for a handler that may run without the
/// authentication layer in front (the record then names no operator).
pub(crate) async fn commit_as(
    state: &ApiState,
    caller: Option<&Caller>,
    action: &str,
    target: &str,
    summary: &str,
    cmd: Command,
) -> Result<(u64, Outcome), ClusterError> {
    let record = record(state, caller, action, target, summary, "");
    let (log, outcome) = state
        .cluster
        .propose(Command::Audited {
            record,
            command: Some(Box::new(cmd)),
        })
        .await?;
    Ok((log.index, outcome))
}

/// Commits a record that stands alone, after the action it records, and
/// answers its sequence number.
pub async fn record_action(
    state: &ApiState,
    caller: Option<&Caller>,
    action: &str,
    target: &str,
    summary: &str,
    result: &str,
) -> Result<u64, ClusterError> {
    let record = record(state, caller, action, target, summary, result);
    match state
        .cluster
        .propose(Command::Audited {
            record,
            command: None,
        })
        .await?
    {
        (_, Outcome::Recorded { seq }) => Ok(seq),
        (_, Outcome::Rejected(r)) => Err(ClusterError::Rejected(r)),
        (_, other) => Err(ClusterError::Rejected(format!(
            "unexpected outcome {other:?}"
        ))),
    }
}

/// [`record_action`], logging instead of failing: for actions that are
/// done whatever the trail says (a workspace edit during a partition, a
/// training run). Runs in the background; nothing is proposed before the
/// cluster is initialised.
pub fn note(
    state: &ApiState,
    caller: Option<&Caller>,
    action: &str,
    target: &str,
    summary: &str,
    result: &str,
) {
    if !state.cluster.status().initialized {
        tracing::debug!(action, target, "audit record not committed: no cluster yet");
        return;
    }
    let record = record(state, caller, action, target, summary, result);
    let cluster = state.cluster.clone();
    tokio::spawn(async move {
        let action = record.action.clone();
        let cmd = Command::Audited {
            record,
            command: None,
        };
        if let Err(e) = cluster.propose(cmd).await {
            tracing::warn!(action = %action, error = %e, "audit record not committed");
        }
    });
}

/// Refusals being committed; past [`MAX_DENIED_IN_FLIGHT`] more are
/// dropped (with a warning) rather than queue without bound.
static DENIED_IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
const MAX_DENIED_IN_FLIGHT: usize = 64;

/// Records a request refused with 403 (best effort: without a quorum the
/// record is lost and a warning logged). Returns at once.
pub async fn record_denied(state: &ApiState, caller: &Caller, method: &str, path: &str) {
    if DENIED_IN_FLIGHT.load(Ordering::Relaxed) >= MAX_DENIED_IN_FLIGHT {
        tracing::warn!(operator = %caller.name, path, "audit record of a refusal dropped: too many in flight");
        return;
    }
    let target = format!("{method} {path}");
    let summary = format!(
        "{} ({}) may not {target}",
        caller.name,
        caller.role.as_str()
    );
    if !state.cluster.status().initialized {
        return;
    }
    let record = record(state, Some(caller), "denied", &target, &summary, "denied");
    let cluster = state.cluster.clone();
    DENIED_IN_FLIGHT.fetch_add(1, Ordering::Relaxed);
    tokio::spawn(async move {
        let cmd = Command::Audited {
            record,
            command: None,
        };
        if let Err(e) = cluster.propose(cmd).await {
            tracing::warn!(error = %e, "audit record of a refusal not committed");
        }
        DENIED_IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
    });
}

/// Before and after of a policy change: versions, hashes and the keys
/// whose values changed (`detect.threshold: 0.9 -> 0.8`), cut to the
/// summary limit.
pub fn policy_summary(before: Option<&PolicyRecord>, after: &str) -> String {
    use sha2::{Digest, Sha256};
    let after_sha = hex::encode(Sha256::digest(after.as_bytes()));
    let mut out = match before {
        Some(p) => format!(
            "version {} (sha256 {}) -> version {} (sha256 {})",
            p.version,
            p.sha256.get(..12).unwrap_or(&p.sha256),
            p.version + 1,
            &after_sha[..12]
        ),
        None => format!(
            "no committed policy -> version 1 (sha256 {})",
            &after_sha[..12]
        ),
    };
    let old = flatten(before.map_or("", |p| p.document.as_str()));
    let new = flatten(after);
    let mut changes = Vec::new();
    for (k, v) in &new {
        match old.get(k) {
            Some(o) if o == v => {}
            Some(o) => changes.push(format!("{k}: {o} -> {v}")),
            None => changes.push(format!("{k}: (unset) -> {v}")),
        }
    }
    for (k, o) in &old {
        if !new.contains_key(k) {
            changes.push(format!("{k}: {o} -> (unset)"));
        }
    }
    if !changes.is_empty() {
        out.push_str("; ");
        out.push_str(&changes.join("; "));
    }
    amoskys_consensus::audit::clip(&out, MAX_SUMMARY)
}

/// `a.b.c` -> value text, for every leaf of a TOML document (empty when
/// it does not parse).
fn flatten(doc: &str) -> std::collections::BTreeMap<String, String> {
    fn walk(prefix: &str, v: &toml::Value, out: &mut std::collections::BTreeMap<String, String>) {
        match v {
            toml::Value::Table(t) => {
                for (k, v) in t {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            other => {
                out.insert(prefix.to_owned(), other.to_string());
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    if let Ok(v) = doc.parse::<toml::Table>() {
        walk("", &toml::Value::Table(v), &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_summary_names_changed_keys() {
        let before = PolicyRecord {
            version: 3,
            sha256: "ab".repeat(32),
            document: "[detect]\nthreshold = 0.9\nwindow = 5\n".into(),
            author: NodeId::from(1),
            time_ns: 1,
        };
        let s = policy_summary(
            Some(&before),
            "[detect]\nthreshold = 0.8\n[learn]\non = true\n",
        );
        assert!(
            s.starts_with("version 3 (sha256 abababababab) -> version 4"),
            "{s}"
        );
        assert!(s.contains("detect.threshold: 0.9 -> 0.8"), "{s}");
        assert!(s.contains("learn.on: (unset) -> true"), "{s}");
        assert!(s.contains("detect.window: 5 -> (unset)"), "{s}");
        let first = policy_summary(None, &"x = 1\n".repeat(10_000));
        assert!(
            first.starts_with("no committed policy -> version 1"),
            "{first}"
        );
        assert!(first.len() <= MAX_SUMMARY);
    }
}
