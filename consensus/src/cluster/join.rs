//! Join requests: a node that is not a member asks its peers to let it in;
//! allow-listed keys are admitted at once, others wait in a pending list
//! until an operator admits them. An entry leaves the list as soon as the
//! node is a member, whoever admitted it.

use amoskys_mesh::Service;
use libp2p_identity::PeerId;
use serde::{Deserialize, Serialize};

use super::{Cluster, ClusterError, lock};
use crate::NodeId;

/// Pending requests kept at most (the oldest stay; a node already listed
/// is refreshed).
const MAX_PENDING: usize = 1_000;
/// Longest name and address kept from a join request, in characters.
const MAX_NAME: usize = 64;
const MAX_ADDR: usize = 256;

/// A join request waiting for `amoskys members admit`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingJoin {
    /// The node's peer id.
    pub id: String,
    /// The name the node gave (`node.name`), empty if it gave none.
    pub name: String,
    /// Where its mesh listens, as it said (`host:port[,host:port]`).
    pub addr: String,
    /// When it last asked, RFC 3339 UTC.
    pub requested_at: String,
    /// The same, in milliseconds since the Unix epoch.
    pub requested_ms: u64,
}

/// What a joining node sends ([`Service::Join`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinRequest {
    pub addr: String,
    /// The node's name; absent from nodes of older versions.
    #[serde(default)]
    pub name: String,
    /// A member's hand-over to this node's key ([`crate::rotation`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handover: Option<crate::rotation::Handover>,
}

/// The answer to a join request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum JoinReply {
    /// A member now; these are the members to trust.
    Admitted {
        members: Vec<NodeId>,
    },
    /// Waits for an operator to admit it.
    Pending,
    Refused(String),
}

/// At most `max` characters of `s`, without control characters (a name
/// from the network is printed on operators' terminals).
fn clean(s: &str, max: usize) -> String {
    s.chars().filter(|c| !c.is_control()).take(max).collect()
}

impl Cluster {
    /// Join requests waiting for an operator, oldest first. Nodes that
    /// became members (admitted on any member, or allow-listed) are
    /// dropped from the list here.
    pub fn pending(&self) -> Vec<PendingJoin> {
        let (voters, learners) = self.members();
        let mut pending = lock(&self.pending);
        pending.retain(|id, _| !voters.contains(id) && !learners.contains(id));
        let mut out: Vec<PendingJoin> = pending.values().cloned().collect();
        out.sort_by_key(|p| p.requested_ms);
        out
    }

    /// Answers a [`Service::Join`] request from any peer.
    pub async fn serve_join(&self, peer: &PeerId, body: &[u8]) -> Result<Vec<u8>, String> {
        let node = NodeId::from_peer_id(peer).ok_or("the peer has no ed25519 key")?;
        let req: JoinRequest =
            serde_json::from_slice(body).map_err(|e| format!("malformed join request: {e}"))?;
        let reply = if self.is_member(&node) {
            lock(&self.pending).remove(&node);
            self.admitted_reply()
        } else if let Some(h) = req.handover {
            if let Err(why) = h.check(&node) {
                JoinReply::Refused(format!("hand-over refused: {why}"))
            } else {
                match self.rotate(h, clean(&req.addr, MAX_ADDR)).await {
                    Ok(()) => self.admitted_reply(),
                    Err(ClusterError::Rejected(why)) => {
                        JoinReply::Refused(format!("hand-over refused: {why}"))
                    }
                    Err(e) => {
                        tracing::info!(%node, error = %e, "cannot commit a hand-over yet");
                        JoinReply::Pending
                    }
                }
            }
        } else if self.applied.borrow().state.removed.contains_key(&node) {
            JoinReply::Refused("removed by an operator; it must be admitted again".into())
        } else if lock(&self.allow).contains(&node) {
            match self.admit(node, clean(&req.addr, MAX_ADDR)).await {
                Ok(()) => self.admitted_reply(),
                Err(e) => {
                    tracing::info!(%node, error = %e, "cannot admit an allow-listed node yet");
                    JoinReply::Pending
                }
            }
        } else {
            let mut pending = lock(&self.pending);
            if pending.len() < MAX_PENDING || pending.contains_key(&node) {
                let now = std::time::SystemTime::now();
                let ms = now
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
                pending.insert(
                    node,
                    PendingJoin {
                        id: node.to_string(),
                        name: clean(&req.name, MAX_NAME),
                        addr: clean(&req.addr, MAX_ADDR),
                        requested_at: humantime::format_rfc3339_seconds(now).to_string(),
                        requested_ms: ms,
                    },
                );
            }
            JoinReply::Pending
        };
        serde_json::to_vec(&reply).map_err(|e| format!("cannot encode the answer: {e}"))
    }

    fn admitted_reply(&self) -> JoinReply {
        let (v, l) = self.members();
        JoinReply::Admitted {
            members: v.into_iter().chain(l).collect(),
        }
    }

    /// A hand-over from this node's previous key, sent with every join
    /// request until it is committed.
    pub fn set_handover(&self, handover: Option<crate::rotation::Handover>) {
        *lock(&self.handover) = handover;
    }

    /// Asks `peer` to let this node join.
    pub async fn request_join(&self, peer: PeerId) -> Result<JoinReply, ClusterError> {
        let mesh = self
            .transport
            .mesh()
            .ok_or_else(|| ClusterError::Invalid("this node has no mesh".into()))?;
        let body = serde_json::to_vec(&JoinRequest {
            addr: self.settings.addr.clone(),
            name: self.settings.name.clone(),
            handover: lock(&self.handover).clone(),
        })
        .map_err(|e| ClusterError::Invalid(e.to_string()))?;
        let answer = mesh
            .request(peer, Service::Join, body)
            .await
            .map_err(|e| ClusterError::Raft(e.to_string()))?;
        serde_json::from_slice(&answer)
            .map_err(|e| ClusterError::Raft(format!("malformed join answer: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_control_characters_and_are_bounded() {
        assert_eq!(clean("edge\u{1b}[31m-1\n", MAX_NAME), "edge[31m-1");
        assert_eq!(clean(&"x".repeat(500), MAX_NAME).len(), MAX_NAME);
    }

    #[test]
    fn a_request_from_an_older_node_has_no_name() {
        let r: JoinRequest = serde_json::from_str(r#"{"addr":"127.0.0.1:7301"}"#).expect("json");
        assert_eq!(r.name, "");
    }
}
