//! `GET /mesh`: the peers this node is connected to (id, address, latency,
//! score, connected since, alerts each originated) and the members it is
//! not connected to, with an SVG picture of the connections.

use std::collections::{BTreeSet, HashMap};
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

/// An SVG of this node in the middle, `peers` (connected) on a circle with
/// a line to each, and `others` (members not connected) without one.
pub fn picture(peers: &[String], others: &[String]) -> String {
    let (w, h, r) = (480.0, 320.0, 120.0);
    let (cx, cy) = (w / 2.0, h / 2.0);
    let all: Vec<(&String, bool)> = peers
        .iter()
        .map(|p| (p, true))
        .chain(others.iter().map(|p| (p, false)))
        .collect();
    let mut lines = String::new();
    let mut dots = String::new();
    for (i, (id, connected)) in all.iter().enumerate() {
        let a = std::f64::consts::TAU * i as f64 / all.len().max(1) as f64;
        let (x, y) = (cx + r * a.cos(), cy + r * a.sin());
        if *connected {
            let _ = write!(
                lines,
                "<line x1=\"{cx}\" y1=\"{cy}\" x2=\"{x:.1}\" y2=\"{y:.1}\" stroke=\"currentColor\" stroke-width=\"1.5\"/>"
            );
        }
        let fill = if *connected {
            "currentColor"
        } else {
            "#8c959f"
        };
        let short = &id[id.len().saturating_sub(6)..];
        let _ = write!(
            dots,
            "<g><title>{id}</title><circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"9\" fill=\"{fill}\"/>\
             <text x=\"{x:.1}\" y=\"{ty:.1}\" text-anchor=\"middle\" font-size=\"11\" fill=\"#1b1f24\">…{s}</text></g>",
            id = esc(id),
            s = esc(short),
            ty = y + 22.0,
        );
    }
    format!(
        "<svg class=\"mesh\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" \
         aria-label=\"This node and {n} connected peers; {o} members not connected\">\
         <title>Connections of this node</title>{lines}{dots}\
         <circle cx=\"{cx}\" cy=\"{cy}\" r=\"13\" fill=\"#116329\"/>\
         <text x=\"{cx}\" y=\"{ty}\" text-anchor=\"middle\" font-size=\"12\" fill=\"#1b1f24\">this node</text></svg>",
        n = peers.len(),
        o = others.len(),
        ty = cy + 28.0,
    )
}

pub async fn page(State(state): State<ApiState>, Extension(v): Extension<Viewer>) -> Response {
    let peers = match call::get(&state, &v, "/api/v1/peers", "").await {
        Ok(p) => p,
        Err(r) => return r.page(),
    };
    let cluster = call::get(&state, &v, "/api/v1/cluster", "")
        .await
        .unwrap_or(Value::Null);
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
    let list = peers["peers"].as_array().unwrap_or(&empty);
    let connected: Vec<String> = list.iter().map(|p| text(&p["id"])).collect();
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|p| {
            let id = text(&p["id"]);
            let secs = p["connected_for_secs"].as_u64().unwrap_or(0);
            vec![
                short_id(&id),
                esc(&text(&p["address"])),
                p["latency_ms"]
                    .as_f64()
                    .map_or("-".into(), |l| format!("{l:.1} ms")),
                p["score"]
                    .as_f64()
                    .map_or("-".into(), |s| format!("{s:.2}")),
                esc(&when_ns(now.saturating_sub(secs * 1_000_000_000))),
                by_origin.get(id.as_str()).copied().unwrap_or(0).to_string(),
            ]
        })
        .collect();
    let own = state.info.id.clone();
    let members: BTreeSet<String> = ["voters", "learners"]
        .iter()
        .flat_map(|k| {
            cluster["cluster"][*k]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|m| m.as_str().map(str::to_owned))
        .filter(|m| *m != own && !connected.contains(m))
        .collect();
    let others: Vec<String> = members.into_iter().collect();
    let mut body = format!(
        "<p>This node, <strong>{}</strong> ({}), originated {} of the newest {} alerts stored here.</p>",
        esc(&state.info.name),
        short_id(&own),
        by_origin.get(own.as_str()).copied().unwrap_or(0),
        alerts.len(),
    );
    body.push_str(&picture(&connected, &others));
    body.push_str("<h2>Connected peers</h2>");
    body.push_str(&table(
        "Peers connected now",
        &[
            "Node",
            "Address",
            "Latency",
            "Score",
            "Connected since (UTC)",
            "Alerts originated",
        ],
        &rows,
        "No peer is connected.",
    ));
    body.push_str("<h2>Members not connected</h2>");
    let rows: Vec<Vec<String>> = others
        .iter()
        .map(|id| {
            vec![
                short_id(id),
                by_origin.get(id.as_str()).copied().unwrap_or(0).to_string(),
            ]
        })
        .collect();
    body.push_str(&table(
        "Cluster members this node has no connection to",
        &["Node", "Alerts originated"],
        &rows,
        "Every member is connected.",
    ));
    render::page(&v, "/mesh", "Mesh", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_picture_draws_a_line_to_connected_peers_only() {
        let svg = picture(&["peerA<".into()], &["peerB".into()]);
        assert_eq!(svg.matches("<line").count(), 1);
        assert_eq!(svg.matches("<circle").count(), 3);
        assert!(svg.contains("peerA&lt;"));
    }
}
