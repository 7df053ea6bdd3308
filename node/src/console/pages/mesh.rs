//! `GET /mesh`: every node this node knows (id, name, address, latency,
//! score, connected since, alerts each originated) and an SVG picture of
//! who is connected to whom: this node's connections and those its
//! connected members report (`GET /api/v1/mesh/topology`); members this
//! node cannot reach are drawn apart.

use std::collections::HashMap;
use std::fmt::Write as _;

use axum::extract::{Extension, State};
use axum::response::Response;
use serde_json::Value;

use crate::api::ApiState;
use crate::console::Viewer;
use crate::console::call;
use crate::console::render::{self, esc, short_id, table, text, when_ns};

/// Alerts stored per origin among the newest this many.
const COUNTED: usize = 10_000;
/// Connections listed in the picture's text description, at most.
const DESCRIBED: usize = 50;

/// A node in the picture.
#[derive(Debug, Clone)]
pub struct Dot {
    pub id: String,
    /// Its name, or its short id.
    pub label: String,
    pub reachable: bool,
}

/// An SVG of the mesh: this node (`own`) and the others reachable from it
/// on a circle, a line for each of `edges`, and the nodes not reachable
/// in a row below, apart.
pub fn picture(own: &str, dots: &[Dot], edges: &[(String, String)]) -> String {
    let (w, r) = (560.0_f64, 120.0);
    let (cx, cy) = (w / 2.0, 160.0);
    let near: Vec<&Dot> = dots.iter().filter(|d| d.reachable).collect();
    let far: Vec<&Dot> = dots.iter().filter(|d| !d.reachable).collect();
    let h = if far.is_empty() { 320.0 } else { 400.0 };
    let mut at: HashMap<&str, (f64, f64)> = HashMap::new();
    for (i, d) in near.iter().enumerate() {
        // This node at the top, the others clockwise.
        let a = std::f64::consts::TAU * i as f64 / near.len().max(1) as f64
            - std::f64::consts::FRAC_PI_2;
        at.insert(&d.id, (cx + r * a.cos(), cy + r * a.sin()));
    }
    let step = w / (far.len() + 1) as f64;
    for (i, d) in far.iter().enumerate() {
        at.insert(&d.id, (step * (i + 1) as f64, 360.0));
    }
    let name_of = |id: &str| {
        dots.iter()
            .find(|d| d.id == id)
            .map_or_else(|| id.to_owned(), |d| d.label.clone())
    };
    let mut lines = String::new();
    let mut desc = Vec::new();
    let mut drawn = 0;
    for (a, b) in edges {
        let (Some((x1, y1)), Some((x2, y2))) = (at.get(a.as_str()), at.get(b.as_str())) else {
            continue;
        };
        let _ = write!(
            lines,
            "<line x1=\"{x1:.1}\" y1=\"{y1:.1}\" x2=\"{x2:.1}\" y2=\"{y2:.1}\" stroke=\"currentColor\" stroke-width=\"1.5\"/>"
        );
        if desc.len() < DESCRIBED {
            desc.push(format!("{} – {}", name_of(a), name_of(b)));
        }
        drawn += 1;
    }
    let mut marks = String::new();
    if !far.is_empty() {
        let _ = write!(
            marks,
            "<line x1=\"10\" y1=\"318\" x2=\"{x}\" y2=\"318\" stroke=\"#8c959f\" stroke-dasharray=\"4 4\"/>\
             <text x=\"12\" y=\"334\" font-size=\"11\" fill=\"#57606a\">not reachable from this node</text>",
            x = w - 10.0,
        );
    }
    for d in near.iter().chain(&far) {
        let (x, y) = at[d.id.as_str()];
        let (fill, radius) = match (d.id == own, d.reachable) {
            (true, _) => ("#116329", 13),
            (false, true) => ("currentColor", 9),
            (false, false) => ("#8c959f", 9),
        };
        let _ = write!(
            marks,
            "<g><title>{t}</title><circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{radius}\" fill=\"{fill}\"/>\
             <text x=\"{x:.1}\" y=\"{ty:.1}\" text-anchor=\"middle\" font-size=\"11\" fill=\"#1b1f24\">{l}</text></g>",
            t = esc(&format!("{} ({})", d.label, d.id)),
            l = esc(&if d.id == own {
                format!("{} (this node)", d.label)
            } else {
                d.label.clone()
            }),
            // Outside the circle: above the dots in its top half.
            ty = if y < cy - 1.0 { y - 16.0 } else { y + 24.0 },
        );
    }
    if drawn > desc.len() {
        desc.push(format!("and {} more", drawn - desc.len()));
    }
    format!(
        "<svg class=\"mesh\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" \
         aria-label=\"{n} nodes reachable from this node, {e} connections; {o} not reachable\">\
         <title>Who is connected to whom</title><desc>{d}</desc>{lines}{marks}</svg>",
        n = near.len(),
        e = drawn,
        o = far.len(),
        d = esc(&desc.join("; ")),
    )
}

/// A node's name, or its id shortened.
fn label(id: &str, name: Option<&str>) -> String {
    match name.filter(|n| !n.is_empty()) {
        Some(n) => n.to_owned(),
        None if id.len() > 8 => format!("…{}", &id[id.len() - 6..]),
        None => id.to_owned(),
    }
}

pub async fn page(State(state): State<ApiState>, Extension(v): Extension<Viewer>) -> Response {
    let peers = match call::get(&state, &v, "/api/v1/peers", "").await {
        Ok(p) => p,
        Err(r) => return r.page(),
    };
    let topo = match call::get(&state, &v, "/api/v1/mesh/topology", "").await {
        Ok(t) => t,
        Err(r) => return r.page(),
    };
    let store = state.store.clone();
    let alerts = tokio::task::spawn_blocking(move || store.alerts(None, COUNTED))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let mut by_origin: HashMap<&str, u64> = HashMap::new();
    for a in &alerts {
        *by_origin.entry(a.origin.as_str()).or_default() += 1;
    }
    let now = amoskys_sensors::now_ns();
    let empty = Vec::new();
    let connected: HashMap<String, &Value> = peers["peers"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .map(|p| (text(&p["id"]), p))
        .collect();
    let own = state.info.id.clone();
    let nodes = topo["nodes"].as_array().unwrap_or(&empty);
    let mut names: HashMap<&str, usize> = HashMap::new();
    for n in nodes {
        *names.entry(n["name"].as_str().unwrap_or("")).or_default() += 1;
    }
    let dots: Vec<Dot> = nodes
        .iter()
        .map(|n| {
            let id = text(&n["id"]);
            // A name two nodes share (a default host name) gets the id too.
            let name = n["name"].as_str();
            let label = match name {
                Some(s) if names.get(s).copied().unwrap_or(0) > 1 => {
                    format!("{s} {}", label(&id, None))
                }
                _ => label(&id, name),
            };
            Dot {
                label,
                reachable: n["reachable"].as_bool().unwrap_or(false),
                id,
            }
        })
        .collect();
    let edges: Vec<(String, String)> = topo["edges"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .map(|e| (text(&e["a"]), text(&e["b"])))
        .collect();
    let degree = |id: &str| edges.iter().filter(|(a, b)| a == id || b == id).count();
    let rows: Vec<Vec<String>> = nodes
        .iter()
        .map(|n| {
            let id = text(&n["id"]);
            let p = connected.get(&id).copied().unwrap_or(&Value::Null);
            let status = if id == own {
                "this node".to_owned()
            } else if p.is_object() {
                "connected".to_owned()
            } else if n["reachable"].as_bool().unwrap_or(false) {
                "through peers".to_owned()
            } else {
                "not reachable".to_owned()
            };
            let status = match n["view_error"].as_str() {
                Some(e) => format!("{status}; no view: {e}"),
                None => status,
            };
            vec![
                short_id(&id),
                n["name"].as_str().map_or_else(
                    || "-".to_owned(),
                    |s| format!("<strong>{}</strong>", esc(s)),
                ),
                esc(&status),
                p.get("address").map_or("-".into(), |a| esc(&text(a))),
                p["latency_ms"]
                    .as_f64()
                    .map_or("-".into(), |l| format!("{l:.1} ms")),
                p["score"]
                    .as_f64()
                    .map_or("-".into(), |s| format!("{s:.2}")),
                p["connected_for_secs"].as_u64().map_or("-".into(), |secs| {
                    esc(&when_ns(now.saturating_sub(secs * 1_000_000_000)))
                }),
                by_origin.get(id.as_str()).copied().unwrap_or(0).to_string(),
                degree(&id).to_string(),
            ]
        })
        .collect();
    let mut body = format!(
        "<p>This node, <strong>{}</strong> ({}), originated {} of the newest {} alerts stored here. \
         The picture shows its connections and those its connected members report.</p>",
        esc(&state.info.name),
        short_id(&own),
        by_origin.get(own.as_str()).copied().unwrap_or(0),
        alerts.len(),
    );
    body.push_str(&picture(&own, &dots, &edges));
    body.push_str("<h2>Nodes</h2>");
    body.push_str(&table(
        "Every node known to this node",
        &[
            "Node",
            "Name",
            "Status",
            "Address",
            "Latency",
            "Score",
            "Connected since (UTC)",
            "Alerts originated",
            "Connections",
        ],
        &rows,
        "The mesh is off on this node.",
    ));
    render::page(&v, "/mesh", "Mesh", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dot(id: &str, reachable: bool) -> Dot {
        Dot {
            id: id.into(),
            label: label(id, (id == "b").then_some("bravo<")),
            reachable,
        }
    }

    #[test]
    fn the_picture_draws_every_reported_connection_and_the_unreachable_apart() {
        let dots = [
            dot("a", true),
            dot("b", true),
            dot("c", true),
            dot("d", false),
        ];
        let edges = [("a", "b"), ("a", "c"), ("b", "c"), ("c", "gone")]
            .map(|(x, y)| (x.to_owned(), y.to_owned()));
        let svg = picture("a", &dots, &edges);
        // Three connections (not the one to a node not drawn), and the
        // dashed line that sets d apart.
        assert_eq!(svg.matches("<line").count(), 4, "{svg}");
        assert_eq!(svg.matches("stroke-dasharray").count(), 1);
        assert_eq!(svg.matches("<circle").count(), 4);
        assert!(svg.contains("bravo&lt;"), "names escaped");
        assert!(svg.contains("bravo&lt; – c"), "connections described");
        assert!(svg.contains(
            "aria-label=\"3 nodes reachable from this node, 3 connections; 1 not reachable\""
        ));
        assert!(svg.contains("not reachable from this node"));
        assert!(!svg.contains("style="), "no inline style under the CSP");
        let alone = picture("a", &dots[..1], &[]);
        assert_eq!(alone.matches("<line").count(), 0);
        assert!(!alone.contains("not reachable from this node"));
    }
}
