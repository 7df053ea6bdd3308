//! `GET /intel`: the threat intel (indicators with reason, author and
//! expiry), the add form with reason and expiry and a remove button each
//! (analysts), and where each indicator matched (the IOC alerts stored
//! here that name it).

use std::collections::HashMap;
use std::fmt::Write as _;

use amoskys_consensus::Role;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::Method;
use axum::response::Response;
use serde_json::json;

use crate::api::ApiState;
use crate::console::Viewer;
use crate::console::call::{self, Payload};
use crate::console::render::{self, button_form, esc, hidden_csrf, may, table, text, url, when_ns};

/// Alerts searched for matches, newest first.
const SEARCHED: usize = 10_000;

/// Expiry choices of the add form: value (seconds), label.
const EXPIRES: &[(&str, &str)] = &[
    ("", "never"),
    ("3600", "1 hour"),
    ("86400", "1 day"),
    ("604800", "7 days"),
    ("2592000", "30 days"),
    ("31536000", "1 year"),
];

fn add_form(v: &Viewer) -> String {
    let mut options = String::new();
    for (value, label) in EXPIRES {
        let _ = write!(options, "<option value=\"{value}\">{label}</option>");
    }
    format!(
        "<h2>Add an indicator</h2><form method=\"post\" action=\"/intel\" class=\"edit\">{}\
         <label for=\"ioc-value\">Indicator (address, CIDR, domain or file hash)<input id=\"ioc-value\" name=\"indicator\" required></label>\
         <label for=\"ioc-reason\">Reason<input id=\"ioc-reason\" name=\"reason\"></label>\
         <label for=\"ioc-expires\">Expires<select id=\"ioc-expires\" name=\"expires_secs\">{options}</select></label>\
         <button type=\"submit\">Add</button></form>",
        hidden_csrf(v)
    )
}

pub async fn page(State(state): State<ApiState>, Extension(v): Extension<Viewer>) -> Response {
    let intel = match call::get(&state, &v, "/api/v1/intel", "").await {
        Ok(i) => i,
        Err(r) => return r.page(),
    };
    let store = state.store.clone();
    let alerts = tokio::task::spawn_blocking(move || store.alerts(None, SEARCHED))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let mut matches: HashMap<&str, Vec<&amoskys_mesh::Alert>> = HashMap::new();
    for a in alerts
        .iter()
        .rev()
        .filter(|a| a.body.rule.starts_with("ioc_"))
    {
        if let Some((_, value)) = a.body.evidence.iter().find(|(k, _)| k == "ioc") {
            matches.entry(value.as_str()).or_default().push(a);
        }
    }
    let analyst = may(&v, Role::Analyst);
    let empty = Vec::new();
    let iocs = intel["iocs"].as_array().unwrap_or(&empty);
    let rows: Vec<Vec<String>> = iocs
        .iter()
        .map(|i| {
            let value = text(&i["value"]);
            let found = matches.get(value.as_str()).map_or(0, Vec::len);
            let mut row = vec![
                esc(&text(&i["kind"])),
                format!("<code>{}</code>", esc(&value)),
                esc(&text(&i["reason"])),
                esc(i["operator"]["name"].as_str().unwrap_or("-")),
                esc(&i["expires_ms"]
                    .as_u64()
                    .map_or("never".into(), |ms| when_ns(ms * 1_000_000))),
                found.to_string(),
            ];
            if analyst {
                row.push(button_form(
                    &v,
                    "/intel/remove",
                    &[("indicator", &value)],
                    "Remove",
                ));
            }
            row
        })
        .collect();
    let mut headers = vec![
        "Kind",
        "Indicator",
        "Reason",
        "Added by",
        "Expires (UTC)",
        "Matches",
    ];
    if analyst {
        headers.push("Action");
    }
    let mut body = table("Indicators in force", &headers, &rows, "No indicator yet.");
    if analyst {
        body.push_str(&add_form(&v));
    }
    body.push_str("<h2>Matches</h2>");
    let mut rows = Vec::new();
    for i in iocs {
        let value = text(&i["value"]);
        for a in matches.get(value.as_str()).into_iter().flatten().take(20) {
            rows.push(vec![
                format!("<code>{}</code>", esc(&value)),
                format!(
                    "<a href=\"/alerts/{}\">{}</a>",
                    url(&a.id),
                    esc(&a.body.rule)
                ),
                esc(&a.body.subject),
                esc(&when_ns(a.body.time_ns)),
            ]);
        }
    }
    body.push_str(&table(
        "Alerts raised by an indicator (newest first, 20 per indicator)",
        &["Indicator", "Alert", "Subject", "Time (UTC)"],
        &rows,
        "No indicator has matched yet.",
    ));
    render::page(&v, "/intel", "Threat intel", &body)
}

/// `POST /intel`: adds an indicator.
pub async fn add(
    State(state): State<ApiState>,
    Extension(v): Extension<Viewer>,
    body: Bytes,
) -> Response {
    let form = call::form(&body);
    let mut req = json!({
        "indicator": form.get("indicator").map_or("", |s| s.trim()),
        "reason": form.get("reason").map_or("", |s| s.trim()),
    });
    if let Some(s) = form.get("expires_secs").filter(|s| !s.is_empty()) {
        match s.parse::<u64>() {
            Ok(n) => req["expires_secs"] = json!(n),
            Err(_) => {
                return call::Refusal {
                    status: axum::http::StatusCode::BAD_REQUEST,
                    message: format!("expires_secs: {s:?} is not a number of seconds"),
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
            "/api/v1/intel",
            &[],
            "",
            Payload::Json(req),
        )
        .await,
        "/intel",
    )
}

/// `POST /intel/remove`: removes an indicator.
pub async fn remove(
    State(state): State<ApiState>,
    Extension(v): Extension<Viewer>,
    body: Bytes,
) -> Response {
    let form = call::form(&body);
    let indicator = form.get("indicator").cloned().unwrap_or_default();
    let query = format!("indicator={}", url(&indicator));
    call::back(
        call::api(
            &state,
            &v,
            Method::DELETE,
            "/api/v1/intel",
            &[],
            &query,
            Payload::None,
        )
        .await,
        "/intel",
    )
}
