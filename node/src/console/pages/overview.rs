//! `GET /`: the node and the mesh at a glance — sensors, peers, Raft
//! leader and term, policy and model versions, alerts per minute over the
//! last hour (a sparkline) and the last federated round.

use std::fmt::Write as _;

use axum::extract::{Extension, State};
use axum::response::Response;
use serde_json::Value;

use crate::api::ApiState;
use crate::console::Viewer;
use crate::console::call;
use crate::console::render::{self, esc, short_id, sparkline, table, text, when};

/// Alerts per minute, oldest first, over the `minutes` before `now_ns`.
pub fn per_minute(times_ns: &[u64], now_ns: u64, minutes: usize) -> Vec<f64> {
    let mut out = vec![0.0; minutes];
    let minute = 60_000_000_000;
    for t in times_ns {
        if *t > now_ns {
            continue;
        }
        let ago = ((now_ns - t) / minute) as usize;
        if ago < minutes {
            out[minutes - 1 - ago] += 1.0;
        }
    }
    out
}

fn tile(out: &mut String, label: &str, value: &str) {
    let _ = write!(out, "<div><dt>{}</dt><dd>{value}</dd></div>", esc(label));
}

pub async fn page(State(state): State<ApiState>, Extension(v): Extension<Viewer>) -> Response {
    let node = match call::get(&state, &v, "/api/v1/node", "").await {
        Ok(n) => n,
        Err(r) => return r.page(),
    };
    let alerts = call::get(&state, &v, "/api/v1/alerts", "since=1h&limit=10000")
        .await
        .unwrap_or(Value::Null);
    let rounds = call::get(&state, &v, "/api/v1/learn/rounds", "")
        .await
        .unwrap_or(Value::Null);
    let empty = Vec::new();
    let times: Vec<u64> = alerts["alerts"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .filter_map(|a| a["time_ns"].as_u64())
        .collect();
    let now = amoskys_sensors::now_ns();
    let minutes = per_minute(&times, now, 60);
    let c = &node["cluster"];
    let uptime = node["uptime_secs"].as_u64().unwrap_or(0).max(1);

    let mut tiles = String::from("<dl class=\"tiles\">");
    tile(&mut tiles, "Node", &short_id(&text(&node["id"])));
    tile(&mut tiles, "Raft role", &esc(&text(&c["state"])));
    tile(&mut tiles, "Term", &esc(&text(&c["term"])));
    let leader = c["leader"].as_str().map_or("none".into(), short_id);
    tile(&mut tiles, "Leader", &leader);
    let peers = node["peers"].as_array().map_or(0, Vec::len);
    tile(&mut tiles, "Peers connected", &peers.to_string());
    let policy = node["policy_version"]
        .as_u64()
        .map_or("configuration's".into(), |p| p.to_string());
    tile(&mut tiles, "Policy version", &esc(&policy));
    let model = node["model_version"]
        .as_u64()
        .map_or("none".into(), |m| m.to_string());
    tile(&mut tiles, "Active model", &esc(&model));
    tile(&mut tiles, "Alerts, last hour", &times.len().to_string());
    tiles.push_str("</dl>");
    if let Some(e) = node["policy_error"].as_str() {
        let _ = write!(
            tiles,
            "<p class=\"error\" role=\"alert\">Policy not applied: {}</p>",
            esc(e)
        );
    }

    let mut body = tiles;
    body.push_str("<h2>Alerts per minute, last hour</h2>");
    body.push_str(&sparkline(&minutes, "alerts per minute over the last hour"));
    let peak = minutes.iter().copied().fold(0.0_f64, f64::max);
    let _ = write!(
        body,
        "<p id=\"alerts-hour\">{} in the last hour; at most {peak} in one minute. <a href=\"/alerts\">See the alerts</a>.</p>",
        if times.len() == 1 {
            "1 alert".to_owned()
        } else {
            format!("{} alerts", times.len())
        }
    );

    let now_ms = now / 1_000_000;
    let mut rates = state.console.rates();
    let sensors: Vec<Vec<String>> = node["sensors"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .map(|s| {
            let events = s["events"].as_u64().unwrap_or(0);
            let name = text(&s["name"]);
            // Until a second sample, the average since the node started.
            let rate = rates.rate(&name, events, now_ms).map_or_else(
                || format!("{:.1} (since start)", events as f64 / uptime as f64),
                |r| format!("{r:.1}"),
            );
            vec![
                esc(&name),
                esc(&text(&s["state"])),
                rate,
                events.to_string(),
                esc(&text(&s["drops"])),
                esc(&text(&s["message"])),
            ]
        })
        .collect();
    drop(rates);
    body.push_str("<h2>Sensors</h2>");
    body.push_str(&table(
        "Sensors of this node (events per second since the page was last loaded)",
        &["Sensor", "State", "Events/s", "Events", "Drops", "Message"],
        &sensors,
        "No sensors run on this node.",
    ));

    body.push_str("<h2>Last federated round</h2>");
    match rounds["rounds"].as_array().and_then(|r| r.last()) {
        Some(r) => {
            let _ = write!(
                body,
                "<p>Round {} of {} models, {} participants, started {}: {}.</p>",
                esc(&text(&r["id"])),
                esc(&text(&r["kind"])),
                r["participants"].as_array().map_or(0, Vec::len),
                esc(&when(&r["time_ns"])),
                esc(&text(&r["status"])),
            );
        }
        None => body.push_str("<p class=\"empty\">No federated round yet.</p>"),
    }
    render::page(&v, "/", "Overview", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_fall_into_their_minute() {
        let m = 60_000_000_000;
        let now = 100 * m;
        let got = per_minute(
            &[
                now,
                now - 1,
                now - m,
                now - 59 * m - 1,
                now - 60 * m,
                now + 1,
            ],
            now,
            60,
        );
        assert_eq!(got[59], 2.0);
        assert_eq!(got[58], 1.0);
        assert_eq!(got[0], 1.0);
        assert_eq!(got.iter().sum::<f64>(), 4.0);
    }
}
