//! `GET /api/v1/mesh/topology`: every node this node knows (itself, the
//! Raft members, its connected peers and the peers its members report) and
//! every connection any of them reports: this node's own, and those in the
//! views of the connected members (`amoskys_mesh::net::PeerView`, asked on
//! demand, reused for `VIEW_FRESH`, waited for at most `VIEW_WAIT`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use amoskys_mesh::net::PeerView;
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::{ApiState, internal};

/// The mesh as this node sees it.
#[derive(Debug, Serialize)]
pub struct Topology {
    pub mesh: bool,
    /// This node's peer id.
    pub id: String,
    /// This node first, then by id.
    pub nodes: Vec<MeshNode>,
    /// Each connection once, by its two ends' ids (sorted).
    pub edges: Vec<Edge>,
}

/// A node known to this one.
#[derive(Debug, Serialize)]
pub struct MeshNode {
    pub id: String,
    /// Its `node.name` (this node's own, the others' from their views).
    pub name: Option<String>,
    /// A Raft voter or learner.
    pub member: bool,
    /// Connected to this node.
    pub connected: bool,
    /// Reachable from this node over the connections reported.
    pub reachable: bool,
    /// `own`, `received` (its view), `failed` (see `view_error`) or
    /// `not asked` (not a connected member).
    pub view: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub view_error: Option<String>,
}

/// A connection between two nodes.
#[derive(Debug, Serialize)]
pub struct Edge {
    pub a: String,
    pub b: String,
    /// The lowest ping round trip reported for it, milliseconds.
    pub latency_ms: Option<f64>,
    /// The nodes that reported it (one or both ends).
    pub reported_by: Vec<String>,
}

/// What [`build`] starts from.
#[derive(Debug)]
pub struct Seen<'a> {
    pub own: &'a str,
    pub own_name: &'a str,
    /// Raft voters and learners.
    pub members: &'a BTreeSet<String>,
    /// This node's connections: peer id and latency.
    pub connected: &'a [(String, Option<f64>)],
    /// The views of connected members, or why there is none.
    pub views: &'a [(String, Result<PeerView, String>)],
}

/// The topology from what this node sees (no I/O).
pub fn build(s: &Seen<'_>) -> Topology {
    let mut edges: BTreeMap<(String, String), Edge> = BTreeMap::new();
    let mut add = |x: &str, y: &str, latency: Option<f64>, by: &str| {
        if x == y {
            return;
        }
        let (a, b) = if x < y { (x, y) } else { (y, x) };
        let e = edges
            .entry((a.to_owned(), b.to_owned()))
            .or_insert_with(|| Edge {
                a: a.to_owned(),
                b: b.to_owned(),
                latency_ms: None,
                reported_by: Vec::new(),
            });
        e.latency_ms = match (e.latency_ms, latency) {
            (Some(l), Some(m)) => Some(l.min(m)),
            (l, m) => l.or(m),
        };
        if !e.reported_by.iter().any(|r| r == by) {
            e.reported_by.push(by.to_owned());
        }
    };
    for (peer, latency) in s.connected {
        add(s.own, peer.as_str(), *latency, s.own);
    }
    for (from, view) in s.views {
        if let Ok(v) = view {
            for p in &v.peers {
                add(from.as_str(), p.id.as_str(), p.latency_ms, from.as_str());
            }
        }
    }
    let mut ids: BTreeSet<&str> = s.members.iter().map(String::as_str).collect();
    ids.extend(s.connected.iter().map(|(p, _)| p.as_str()));
    for e in edges.values() {
        ids.insert(&e.a);
        ids.insert(&e.b);
    }
    ids.remove(s.own);
    let reachable = reach(s.own, edges.values());
    let mut nodes = vec![MeshNode {
        id: s.own.to_owned(),
        name: Some(s.own_name.to_owned()).filter(|n| !n.is_empty()),
        member: s.members.contains(s.own),
        connected: false,
        reachable: true,
        view: "own",
        view_error: None,
    }];
    for id in ids {
        let view = s.views.iter().find(|(p, _)| p == id).map(|(_, v)| v);
        nodes.push(MeshNode {
            id: id.to_owned(),
            name: view
                .and_then(|v| v.as_ref().ok())
                .map(|v| v.name.clone())
                .filter(|n| !n.is_empty()),
            member: s.members.contains(id),
            connected: s.connected.iter().any(|(p, _)| p == id),
            reachable: reachable.contains(id),
            view: match view {
                Some(Ok(_)) => "received",
                Some(Err(_)) => "failed",
                None => "not asked",
            },
            view_error: view.and_then(|v| v.as_ref().err().cloned()),
        });
    }
    Topology {
        mesh: true,
        id: s.own.to_owned(),
        nodes,
        edges: edges.into_values().collect(),
    }
}

/// The ids reachable from `from` over `edges`.
fn reach<'a>(from: &'a str, edges: impl Iterator<Item = &'a Edge> + Clone) -> BTreeSet<&'a str> {
    let mut seen = BTreeSet::from([from]);
    let mut queue = VecDeque::from([from]);
    while let Some(n) = queue.pop_front() {
        for e in edges.clone() {
            let next = if e.a == n {
                &e.b
            } else if e.b == n {
                &e.a
            } else {
                continue;
            };
            if seen.insert(next) {
                queue.push_back(next);
            }
        }
    }
    seen
}

/// `GET /api/v1/mesh/topology`
pub(super) async fn topology(State(state): State<ApiState>) -> Response {
    let Some(mesh) = state.mesh.as_ref() else {
        return Json(Topology {
            mesh: false,
            id: state.info.id.clone(),
            nodes: Vec::new(),
            edges: Vec::new(),
        })
        .into_response();
    };
    let peers = match mesh.peers().await {
        Ok(p) => p,
        Err(e) => return internal(e.to_string()),
    };
    let applied = state.cluster.applied().borrow().clone();
    let members: BTreeSet<String> = applied
        .membership
        .nodes()
        .map(|(id, _)| id.to_string())
        .collect();
    // Only members are asked (a joiner would refuse, and has no view).
    let ask: Vec<libp2p_identity::PeerId> = peers
        .iter()
        .filter(|p| members.contains(&p.id))
        .filter_map(|p| p.id.parse().ok())
        .collect();
    let views: Vec<(String, Result<PeerView, String>)> = mesh
        .views(&ask)
        .await
        .into_iter()
        .map(|(p, v)| (p.to_string(), v))
        .collect();
    let connected: Vec<(String, Option<f64>)> =
        peers.into_iter().map(|p| (p.id, p.latency_ms)).collect();
    Json(build(&Seen {
        own: &state.info.id,
        own_name: &state.info.name,
        members: &members,
        connected: &connected,
        views: &views,
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use amoskys_mesh::net::ViewPeer;

    use super::*;

    fn view(name: &str, peers: &[&str]) -> Result<PeerView, String> {
        Ok(PeerView {
            name: name.into(),
            peers: peers
                .iter()
                .map(|p| ViewPeer {
                    id: (*p).into(),
                    latency_ms: Some(2.0),
                })
                .collect(),
        })
    }

    #[test]
    fn the_members_views_give_the_edges_between_the_others() {
        let members: BTreeSet<String> = ["a", "b", "c", "d", "e"].map(String::from).into();
        let connected = [("b".to_owned(), Some(1.0)), ("c".to_owned(), None)];
        let views = [
            ("b".to_owned(), view("bravo", &["a", "c"])),
            ("c".to_owned(), view("", &["a", "b", "x"])),
            ("e".to_owned(), Err("no view within 2s".to_owned())),
        ];
        let t = build(&Seen {
            own: "a",
            own_name: "alpha",
            members: &members,
            connected: &connected,
            views: &views,
        });
        let pairs: Vec<(&str, &str)> = t
            .edges
            .iter()
            .map(|e| (e.a.as_str(), e.b.as_str()))
            .collect();
        assert_eq!(pairs, [("a", "b"), ("a", "c"), ("b", "c"), ("c", "x")]);
        assert_eq!(t.edges[0].latency_ms, Some(1.0), "the lowest report");
        assert_eq!(t.edges[0].reported_by, ["a", "b"]);
        let ids: Vec<&str> = t.nodes.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c", "d", "e", "x"], "this node first");
        let node = |id: &str| t.nodes.iter().find(|n| n.id == id).expect(id);
        assert_eq!(node("a").name.as_deref(), Some("alpha"));
        assert_eq!(node("b").name.as_deref(), Some("bravo"));
        assert_eq!(node("c").name, None, "an empty name is none");
        assert!(node("x").reachable && !node("x").member && !node("x").connected);
        assert!(!node("d").reachable && node("d").view == "not asked");
        assert_eq!(node("e").view, "failed");
        assert!(!node("e").reachable);
    }
}
