//! Node identities: a Raft node id is the node's ed25519 public key, the same
//! key that gives its libp2p peer id and signs its alerts.

use std::fmt;

use libp2p_identity::{PeerId, PublicKey, ed25519};
use serde::{Deserialize, Serialize};

/// A node's ed25519 public key, as Raft node id. Ordered by bytes.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(#[serde(with = "hex_key")] pub [u8; 32]);

impl NodeId {
    /// The libp2p peer id of this key.
    pub fn peer_id(&self) -> Option<PeerId> {
        let key = ed25519::PublicKey::try_from_bytes(&self.0).ok()?;
        Some(PublicKey::from(key).to_peer_id())
    }

    /// The key behind an ed25519 peer id (other key types have none).
    pub fn from_peer_id(peer: &PeerId) -> Option<NodeId> {
        amoskys_mesh::ed25519_key(peer).map(NodeId)
    }

    /// Parses a peer id (`12D3KooW…`) or 64 hex digits of a key.
    pub fn parse(s: &str) -> Result<NodeId, String> {
        let s = s.trim();
        if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut key = [0u8; 32];
            hex::decode_to_slice(s, &mut key).map_err(|e| e.to_string())?;
            return Ok(NodeId(key));
        }
        let peer: PeerId = s
            .parse()
            .map_err(|e| format!("`{s}` is neither a peer id nor a 64-digit hex key: {e}"))?;
        NodeId::from_peer_id(&peer)
            .ok_or_else(|| format!("peer id `{s}` does not carry an ed25519 key"))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// For openraft's storage conformance suite, which numbers its nodes.
impl From<u64> for NodeId {
    fn from(n: u64) -> Self {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&n.to_be_bytes());
        NodeId(key)
    }
}

/// Shown as the peer id, which is what operators see everywhere else.
impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.peer_id() {
            Some(p) => write!(f, "{p}"),
            None => write!(f, "{}", self.to_hex()),
        }
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({self})")
    }
}

mod hex_key {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(key: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(key))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        let mut key = [0u8; 32];
        hex::decode_to_slice(&s, &mut key).map_err(serde::de::Error::custom)?;
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_id_round_trip() {
        let kp = libp2p_identity::Keypair::generate_ed25519();
        let peer = kp.public().to_peer_id();
        let id = NodeId::from_peer_id(&peer).expect("ed25519 peer id");
        assert_eq!(id.peer_id(), Some(peer));
        assert_eq!(NodeId::parse(&peer.to_string()), Ok(id));
        assert_eq!(NodeId::parse(&id.to_hex()), Ok(id));
        assert_eq!(id.to_string(), peer.to_string());
        assert!(NodeId::parse("not-a-peer").is_err());
    }
}
