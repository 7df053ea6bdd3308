//! `GET /models`: the model registry (lineage, metrics, active) with
//! activate and roll back for admins, the models this node runs, the form
//! that starts a federated round, the rounds (participants, rule, DP ε,
//! outcome) and each model metric per round as an SVG plot.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use amoskys_consensus::Role;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::Method;
use axum::response::Response;
use serde_json::{Value, json};

use crate::api::ApiState;
use crate::console::Viewer;
use crate::console::call::{self, Payload};
use crate::console::render::{
    self, button_form, esc, hidden_csrf, may, short_id, table, text, when,
};

/// An SVG plot of `points` (round, value), `label` naming the metric.
pub fn plot(points: &[(u64, f64)], label: &str) -> String {
    let (w, h, pad) = (360.0, 140.0, 24.0);
    let (lo, hi) = points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (_, v)| {
            (lo.min(*v), hi.max(*v))
        });
    let span = if hi > lo { hi - lo } else { 1.0 };
    let n = points.len().max(2) as f64 - 1.0;
    let mut line = String::new();
    let mut dots = String::new();
    for (i, (round, v)) in points.iter().enumerate() {
        let x = pad + i as f64 * (w - 2.0 * pad) / n;
        let y = h - pad - (v - lo) / span * (h - 2.0 * pad);
        let _ = write!(line, "{x:.1},{y:.1} ");
        let _ = write!(
            dots,
            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3\" fill=\"currentColor\"><title>round {round}: {v:.4}</title></circle>"
        );
    }
    let low = if lo.is_finite() {
        format!("{lo:.3}")
    } else {
        "-".into()
    };
    let high = if hi.is_finite() {
        format!("{hi:.3}")
    } else {
        "-".into()
    };
    format!(
        "<figure><svg class=\"plot\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"{l} per round\">\
         <title>{l} per round</title>\
         <text x=\"2\" y=\"12\" font-size=\"10\" fill=\"#57606a\">{high}</text>\
         <text x=\"2\" y=\"{by}\" font-size=\"10\" fill=\"#57606a\">{low}</text>\
         <polyline fill=\"none\" stroke=\"currentColor\" stroke-width=\"1.5\" points=\"{p}\"/>{dots}</svg>\
         <figcaption>{l} per round</figcaption></figure>",
        l = esc(label),
        by = h - 4.0,
        p = line.trim_end(),
    )
}

fn registry(v: &Viewer, m: &Value) -> String {
    let admin = may(v, Role::Admin);
    let active = m["registry"]["active"].as_u64();
    let empty = Vec::new();
    let rows: Vec<Vec<String>> = m["registry"]["versions"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .rev()
        .map(|ver| {
            let n = ver["version"].as_u64().unwrap_or(0);
            let metrics = ver["metrics"]
                .as_object()
                .map(|o| {
                    o.iter()
                        .map(|(k, x)| format!("{}={}", esc(k), esc(&text(x))))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            let mut row = vec![
                if Some(n) == active {
                    format!("{n} (active)")
                } else {
                    n.to_string()
                },
                esc(&text(&ver["schema"])),
                esc(&ver["parent"].as_u64().map_or("-".into(), |p| p.to_string())),
                esc(&ver["round"].as_u64().map_or("-".into(), |r| r.to_string())),
                ver["participants"]
                    .as_array()
                    .map_or(0, Vec::len)
                    .to_string(),
                metrics,
                esc(&when(&ver["time_ns"])),
            ];
            if admin {
                row.push(if Some(n) == active {
                    String::new()
                } else {
                    button_form(v, &format!("/models/{n}/activate"), &[], "Activate")
                });
            }
            row
        })
        .collect();
    let mut headers = vec![
        "Version",
        "Schema",
        "Parent",
        "Round",
        "Participants",
        "Metrics",
        "Registered",
    ];
    if admin {
        headers.push("Action");
    }
    table(
        "Registered model versions, newest first",
        &headers,
        &rows,
        "No model is registered yet.",
    )
}

fn rounds(m: &Value) -> String {
    let empty = Vec::new();
    let list = m["rounds"].as_array().unwrap_or(&empty);
    let rows: Vec<Vec<String>> = list
        .iter()
        .rev()
        .map(|r| {
            let spec: Value = r["spec"]
                .as_str()
                .and_then(|s| serde_json::from_str(s).ok())
                .unwrap_or_default();
            let outcome = match r["status"].as_str() {
                Some("done") => format!("done: version {}", text(&r["version"])),
                Some("abandoned") => format!("abandoned: {}", text(&r["reason"])),
                other => other.unwrap_or("-").to_owned(),
            };
            vec![
                esc(&text(&r["id"])),
                esc(&text(&r["kind"])),
                r["participants"].as_array().map_or(0, Vec::len).to_string(),
                r["aggregator"].as_str().map_or("-".into(), short_id),
                esc(&text(&spec["rule"]["rule"])),
                if spec["dp"].is_object() {
                    "on".into()
                } else {
                    "off".into()
                },
                esc(&outcome),
                esc(&when(&r["time_ns"])),
            ]
        })
        .collect();
    table(
        "Federated rounds, newest first",
        &[
            "Round",
            "Kind",
            "Participants",
            "Aggregator",
            "Rule",
            "DP",
            "Outcome",
            "Started",
        ],
        &rows,
        "No federated round yet.",
    )
}

/// Each metric of the round-produced versions, by round.
fn per_round(m: &Value) -> BTreeMap<String, Vec<(u64, f64)>> {
    let mut out: BTreeMap<String, Vec<(u64, f64)>> = BTreeMap::new();
    for ver in m["registry"]["versions"].as_array().into_iter().flatten() {
        let Some(round) = ver["round"].as_u64() else {
            continue;
        };
        for (k, x) in ver["metrics"].as_object().into_iter().flatten() {
            if let Some(x) = x.as_f64() {
                out.entry(k.clone()).or_default().push((round, x));
            }
        }
    }
    for points in out.values_mut() {
        points.sort_by_key(|(r, _)| *r);
    }
    out
}

fn round_form(v: &Viewer) -> String {
    let mut kinds = String::new();
    for k in ["source", "host", "process", "device"] {
        let _ = write!(kinds, "<option value=\"{k}\">{k}</option>");
    }
    let mut rules = String::new();
    for r in ["fedavg", "median"] {
        let _ = write!(rules, "<option value=\"{r}\">{r}</option>");
    }
    format!(
        "<h2>Start a federated round</h2><form method=\"post\" action=\"/models/rounds\" class=\"edit\">{}\
         <label for=\"round-kind\">Entity kind<select id=\"round-kind\" name=\"kind\">{kinds}</select></label>\
         <label for=\"round-rule\">Rule<select id=\"round-rule\" name=\"rule\">{rules}</select></label>\
         <label for=\"round-epochs\">Epochs<input id=\"round-epochs\" name=\"epochs\" inputmode=\"numeric\" value=\"2\"></label>\
         <label for=\"round-deadline\">Deadline (s)<input id=\"round-deadline\" name=\"deadline_secs\" inputmode=\"numeric\" value=\"60\"></label>\
         <label for=\"round-min\">Least participants<input id=\"round-min\" name=\"min_participants\" inputmode=\"numeric\" value=\"1\"></label>\
         <button type=\"submit\">Start round</button></form>",
        hidden_csrf(v)
    )
}

pub async fn page(State(state): State<ApiState>, Extension(v): Extension<Viewer>) -> Response {
    let models = match call::get(&state, &v, "/api/v1/models", "").await {
        Ok(m) => m,
        Err(r) => return r.page(),
    };
    let learn = call::get(&state, &v, "/api/v1/learn/rounds", "")
        .await
        .unwrap_or(Value::Null);
    let mut body = String::from("<h2>Registry</h2>");
    body.push_str(&registry(&v, &models));
    body.push_str("<h2>Quality per round</h2>");
    let metrics = per_round(&models);
    if metrics.is_empty() {
        body.push_str("<p class=\"empty\">No model came from a round yet.</p>");
    }
    for (name, points) in &metrics {
        body.push_str(&plot(points, name));
    }
    body.push_str("<h2>Rounds</h2>");
    body.push_str(&rounds(&learn));
    if may(&v, Role::Admin) {
        body.push_str(&round_form(&v));
    }
    body.push_str("<h2>Models this node runs</h2>");
    let empty = Vec::new();
    let rows: Vec<Vec<String>> = models["models"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .map(|m| {
            vec![
                esc(&text(&m["entity"])),
                esc(&text(&m["schema"])),
                esc(&text(&m["model"])),
                format!(
                    "<code>{}</code>",
                    esc(&text(&m["sha256"]).chars().take(16).collect::<String>())
                ),
                esc(&when(&m["trained_at_ns"])),
            ]
        })
        .collect();
    body.push_str(&table(
        "Anomaly models in use here",
        &["Entity", "Schema", "Model", "SHA-256", "Trained"],
        &rows,
        "No anomaly model is trained on this node yet.",
    ));
    render::page(&v, "/models", "Models and learning", &body)
}

/// `POST /models/{version}/activate`
pub async fn activate(
    State(state): State<ApiState>,
    Extension(v): Extension<Viewer>,
    Path(version): Path<String>,
) -> Response {
    let params = [("version", version.as_str())];
    let pattern = "/api/v1/models/{version}/activate";
    call::back(
        call::api(
            &state,
            &v,
            Method::POST,
            pattern,
            &params,
            "",
            Payload::None,
        )
        .await,
        "/models",
    )
}

/// `POST /models/rounds`: starts a round with the form's settings.
pub async fn start_round(
    State(state): State<ApiState>,
    Extension(v): Extension<Viewer>,
    body: Bytes,
) -> Response {
    let form = call::form(&body);
    let mut req = json!({ "kind": form.get("kind").cloned().unwrap_or_default() });
    if let Some(r) = form.get("rule").filter(|r| !r.is_empty()) {
        req["rule"] = json!({ "rule": r });
    }
    for field in ["epochs", "deadline_secs", "min_participants"] {
        let Some(s) = form.get(field).map(|s| s.trim()).filter(|s| !s.is_empty()) else {
            continue;
        };
        match s.parse::<u64>() {
            Ok(n) => req[field] = json!(n),
            Err(_) => {
                return call::Refusal {
                    status: axum::http::StatusCode::BAD_REQUEST,
                    message: format!("{field}: {s:?} is not a whole number"),
                }
                .page();
            }
        }
    }
    call::back(
        call::api(
            &state,
            &v,
            Method::POST,
            "/api/v1/learn/rounds",
            &[],
            "",
            Payload::Json(req),
        )
        .await,
        "/models",
    )
}
