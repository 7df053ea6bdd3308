//! The peer view ([`Service::View`]): a member asks a connected member for
//! its name and the members it is connected to (ids and ping round trips),
//! so every node can draw who is connected to whom. Mesh metadata only: no
//! alert, event or address crosses. The mesh answers it itself, to admitted
//! members only, once per [`VIEW_EVERY`] per asker; the asking side keeps
//! answers for [`VIEW_FRESH`] and waits at most [`VIEW_WAIT`] for them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use libp2p::PeerId;
use serde::{Deserialize, Serialize};

use super::{Actor, MeshError, MeshHandle};
use crate::rpc::Service;

/// Most peers a view lists (the rest are left out).
pub const MAX_VIEW_PEERS: usize = 256;
/// Longest name a view carries, in characters.
pub const MAX_NAME_CHARS: usize = 64;
/// Largest encoded view: [`MAX_VIEW_PEERS`] entries fit well within it.
pub const MAX_VIEW_BYTES: usize = 64 << 10;
/// A member's view is answered at most once per this long per asker.
pub const VIEW_EVERY: Duration = Duration::from_millis(500);
/// An answer (or failure) is reused for this long by the asking side.
pub const VIEW_FRESH: Duration = Duration::from_secs(10);
/// The asking side waits this long for all the views it lacks.
pub const VIEW_WAIT: Duration = Duration::from_secs(2);

/// What a member tells another about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerView {
    /// The node's name (`node.name`); may be empty.
    pub name: String,
    /// The members it is connected to now.
    pub peers: Vec<ViewPeer>,
}

/// One connection of a [`PeerView`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViewPeer {
    /// The peer id.
    pub id: String,
    /// Last ping round trip, milliseconds.
    pub latency_ms: Option<f64>,
}

/// A name without control characters, at most [`MAX_NAME_CHARS`] long.
pub fn clean_name(name: &str) -> String {
    name.chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME_CHARS)
        .collect()
}

impl PeerView {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses a view from a peer: at most [`MAX_VIEW_BYTES`] and
    /// [`MAX_VIEW_PEERS`] entries, each id a peer id; the name is cleaned,
    /// a latency that is not a finite non-negative number dropped.
    pub fn decode(bytes: &[u8]) -> Result<PeerView, String> {
        if bytes.len() > MAX_VIEW_BYTES {
            return Err(format!(
                "a view of {} bytes is over the limit of {MAX_VIEW_BYTES}",
                bytes.len()
            ));
        }
        let mut v: PeerView =
            serde_json::from_slice(bytes).map_err(|e| format!("malformed view: {e}"))?;
        if v.peers.len() > MAX_VIEW_PEERS {
            return Err(format!(
                "a view of {} peers is over the limit of {MAX_VIEW_PEERS}",
                v.peers.len()
            ));
        }
        let mut seen = BTreeMap::new();
        for p in v.peers {
            let id: PeerId =
                p.id.parse()
                    .map_err(|_| format!("malformed view: {:?} is not a peer id", p.id))?;
            let latency = p
                .latency_ms
                .filter(|l| l.is_finite() && *l >= 0.0 && *l < 1e9);
            seen.insert(id.to_string(), latency);
        }
        v.peers = seen
            .into_iter()
            .map(|(id, latency_ms)| ViewPeer { id, latency_ms })
            .collect();
        v.name = clean_name(&v.name);
        Ok(v)
    }
}

impl Actor {
    /// This node's view for `peer` (an admitted member), or why not now.
    pub(super) fn answer_view(&mut self, peer: PeerId) -> Result<Vec<u8>, String> {
        let now = Instant::now();
        if let Some(last) = self.view_asked.get(&peer)
            && now.duration_since(*last) < VIEW_EVERY
        {
            return Err(format!(
                "view asked again within {VIEW_EVERY:?}; try again later"
            ));
        }
        self.view_asked.insert(peer, now);
        let members = &self.swarm.behaviour().members;
        let mut peers: Vec<ViewPeer> = self
            .peers
            .iter()
            .filter(|(p, _)| members.is_open(p) && members.admits(p))
            .map(|(p, s)| ViewPeer {
                id: p.to_string(),
                latency_ms: s.rtt.map(|d| d.as_secs_f64() * 1e3),
            })
            .collect();
        peers.sort_by(|a, b| a.id.cmp(&b.id));
        peers.truncate(MAX_VIEW_PEERS);
        Ok(PeerView {
            name: self.name.clone(),
            peers,
        }
        .encode())
    }
}

/// Views received (or failures), by peer, with when: shared by the
/// handle's clones.
pub(super) type Views =
    Arc<tokio::sync::Mutex<HashMap<PeerId, (Instant, Result<PeerView, String>)>>>;

impl MeshHandle {
    /// Names this node in the views it gives (cleaned: no control
    /// characters, at most [`MAX_NAME_CHARS`]).
    pub async fn set_name(&self, name: &str) -> Result<(), MeshError> {
        self.send(super::Command::SetName(clean_name(name))).await
    }

    /// Asks `peer` for its view, within the service's timeout.
    pub async fn peer_view(&self, peer: PeerId) -> Result<PeerView, MeshError> {
        let body = self.request(peer, Service::View, Vec::new()).await?;
        PeerView::decode(&body).map_err(|reason| MeshError::Request {
            service: Service::View.as_str(),
            peer,
            reason,
        })
    }

    /// The views of `peers` (connected members): each younger than
    /// [`VIEW_FRESH`] is reused, the rest asked for at once, waiting at
    /// most [`VIEW_WAIT`]. One caller asks at a time, so a peer is never
    /// asked twice within its limit. Views of other peers are forgotten.
    pub async fn views(&self, peers: &[PeerId]) -> Vec<(PeerId, Result<PeerView, String>)> {
        let mut cache = self.views.lock().await;
        cache.retain(|p, _| peers.contains(p));
        let now = Instant::now();
        let stale: Vec<PeerId> = peers
            .iter()
            .filter(|p| {
                cache
                    .get(p)
                    .is_none_or(|(at, _)| now.duration_since(*at) >= VIEW_FRESH)
            })
            .copied()
            .collect();
        let asked = stale.iter().map(|p| async move {
            let got = match tokio::time::timeout(VIEW_WAIT, self.peer_view(*p)).await {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(_) => Err(format!("no view within {VIEW_WAIT:?}")),
            };
            (*p, got)
        });
        for (p, got) in futures::future::join_all(asked).await {
            cache.insert(p, (Instant::now(), got));
        }
        peers
            .iter()
            .filter_map(|p| cache.get(p).map(|(_, v)| (*p, v.clone())))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> String {
        PeerId::random().to_string()
    }

    #[test]
    fn a_view_survives_the_wire_cleaned() {
        let (a, b) = (id(), id());
        let sent = PeerView {
            name: "site\u{7}-a".into(),
            peers: vec![
                ViewPeer {
                    id: a.clone(),
                    latency_ms: Some(1.5),
                },
                ViewPeer {
                    id: b.clone(),
                    latency_ms: Some(f64::MAX),
                },
                ViewPeer {
                    id: a.clone(),
                    latency_ms: None,
                },
            ],
        };
        let got = PeerView::decode(&sent.encode()).expect("a view");
        assert_eq!(got.name, "site-a");
        assert_eq!(got.peers.len(), 2, "duplicates merged");
        assert!(got.peers.iter().all(|p| p.id == a || p.id == b));
        let far = got.peers.iter().find(|p| p.id == b).expect("b");
        assert_eq!(far.latency_ms, None, "an absurd latency is dropped");
    }

    #[test]
    fn hostile_views_are_refused_without_panic() {
        let bad: [&[u8]; 6] = [
            b"",
            b"null",
            b"{\"name\":1,\"peers\":[]}",
            b"{\"name\":\"x\",\"peers\":[{\"id\":\"not-a-peer\"}]}",
            b"{\"name\":\"x\",\"peers\":[{\"id\":\"\",\"latency_ms\":\"NaN\"}]}",
            &[0xff; 64],
        ];
        for b in bad {
            assert!(PeerView::decode(b).is_err(), "{b:?}");
        }
        let many = PeerView {
            name: String::new(),
            peers: (0..=MAX_VIEW_PEERS)
                .map(|_| ViewPeer {
                    id: id(),
                    latency_ms: None,
                })
                .collect(),
        };
        let bytes = many.encode();
        assert!(bytes.len() < MAX_VIEW_BYTES, "the limit leaves room");
        assert!(PeerView::decode(&bytes).is_err(), "too many peers");
        assert!(PeerView::decode(&vec![b' '; MAX_VIEW_BYTES + 1]).is_err());
    }

    #[test]
    fn names_are_bounded() {
        assert_eq!(clean_name(&"n".repeat(500)).chars().count(), MAX_NAME_CHARS);
        assert_eq!(clean_name("a\nb\u{0}c"), "abc");
    }
}
