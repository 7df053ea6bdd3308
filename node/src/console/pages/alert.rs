//! `GET /alerts/{id}`: one alert — its fields and evidence, the check of
//! its signature over the canonical bytes, its case (status, assignee,
//! notes) with the analyst's forms, and the campaigns it belongs to. The
//! forms post to `/alerts/{id}/ack`, `/status` and `/notes`, which call the
//! API's case handlers.

use std::fmt::Write as _;

use amoskys_consensus::Role;
use amoskys_mesh::Alert;
use amoskys_mesh::correlate::CAMPAIGN_RULE;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::alerts::technique;
use crate::api::ApiState;
use crate::console::Viewer;
use crate::console::call::{self, Payload};
use crate::console::render::{
    self, button_form, esc, hidden_csrf, may, problem, table, text, url, when_ns,
};

async fn stored(state: &ApiState, id: &str) -> Result<Option<Alert>, String> {
    let store = state.store.clone();
    let id = id.to_owned();
    match tokio::task::spawn_blocking(move || store.alert(&id)).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// Campaign alerts among the newest stored that name `id` as a report.
async fn campaigns_of(state: &ApiState, id: &str) -> Vec<Alert> {
    let store = state.store.clone();
    let all = tokio::task::spawn_blocking(move || store.alerts(None, 5_000))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    all.into_iter()
        .filter(|a| a.body.rule == CAMPAIGN_RULE && a.body.evidence.iter().any(|(_, v)| v == id))
        .collect()
}

fn signature(a: &Alert) -> String {
    let bytes = a.canonical_bytes();
    let digest = hex::encode(Sha256::digest(&bytes));
    match a.verify() {
        Ok(_) => format!(
            "<p class=\"sig-valid\">Valid: the signature verifies with the origin's key over the {} canonical bytes (SHA-256 <code>{digest}</code>), and the id and origin derive from that key.</p>",
            bytes.len()
        ),
        Err(e) => format!(
            "<p class=\"sig-invalid\" role=\"alert\">Invalid: {} (canonical bytes SHA-256 <code>{digest}</code>).</p>",
            esc(&e.to_string())
        ),
    }
}

fn case_forms(v: &Viewer, id: &str) -> String {
    let base = format!("/alerts/{}", url(id));
    let mut out = String::from("<h3>Work on it</h3>");
    let _ = write!(
        out,
        "<form method=\"post\" action=\"{base}/ack\" class=\"edit\">{csrf}\
         <label for=\"assignee\">Assignee (optional)<input id=\"assignee\" name=\"assignee\"></label>\
         <button type=\"submit\">Acknowledge</button></form>",
        csrf = hidden_csrf(v)
    );
    out.push_str("<p>");
    for (status, label) in [
        ("false_positive", "Mark false positive"),
        ("resolved", "Mark resolved"),
        ("new", "Reopen"),
    ] {
        out.push_str(&button_form(
            v,
            &format!("{base}/status"),
            &[("status", status)],
            label,
        ));
        out.push(' ');
    }
    out.push_str("</p>");
    let _ = write!(
        out,
        "<form method=\"post\" action=\"{base}/notes\" class=\"edit stacked\">{csrf}\
         <label for=\"note\">Note<textarea id=\"note\" name=\"text\" rows=\"3\" required></textarea></label>\
         <div><button type=\"submit\">Add note</button></div></form>",
        csrf = hidden_csrf(v)
    );
    out
}

pub async fn page_of(state: &ApiState, v: &Viewer, id: &str) -> Response {
    let a = match stored(state, id).await {
        Ok(Some(a)) => a,
        Ok(None) => {
            return problem(
                StatusCode::NOT_FOUND,
                "No such alert",
                &format!("alert {id:?} is not stored on this node"),
            );
        }
        Err(e) => return problem(StatusCode::INTERNAL_SERVER_ERROR, "Error", &e),
    };
    let b = &a.body;
    let fields = vec![
        vec!["Time (UTC)".into(), esc(&when_ns(b.time_ns))],
        vec![
            "Severity".into(),
            format!("<span class=\"sev-{0}\">{0}</span>", esc(&b.severity)),
        ],
        vec!["Rule".into(), esc(&b.rule)],
        vec!["Category".into(), esc(&b.category)],
        vec!["ATT&amp;CK technique".into(), technique(&b.technique)],
        vec!["Score".into(), format!("{:.2}", b.score)],
        vec!["Subject".into(), esc(&b.subject)],
        vec!["Origin".into(), format!("<code>{}</code>", esc(&a.origin))],
        vec![
            "Origin key".into(),
            format!("<code>{}</code>", esc(&a.origin_key)),
        ],
        vec!["Sequence".into(), b.seq.to_string()],
        vec!["Id".into(), format!("<code>{}</code>", esc(&a.id))],
    ];
    let mut body = table("The alert", &["Field", "Value"], &fields, "");
    body.push_str("<h2>Evidence</h2>");
    let evidence: Vec<Vec<String>> = b
        .evidence
        .iter()
        .map(|(k, val)| {
            let shown = if k.starts_with("report.") {
                format!("<a href=\"/alerts/{}\">{}</a>", url(val), esc(val))
            } else {
                esc(val)
            };
            vec![format!("<code>{}</code>", esc(k)), shown]
        })
        .collect();
    body.push_str(&table(
        "Evidence",
        &["Key", "Value"],
        &evidence,
        "No evidence.",
    ));
    body.push_str("<h2>Signature</h2>");
    body.push_str(&signature(&a));

    body.push_str("<h2>Case</h2>");
    match call::api(
        state,
        v,
        Method::GET,
        "/api/v1/cases/{alert}",
        &[("alert", id)],
        "",
        Payload::None,
    )
    .await
    {
        Ok(c) => {
            let c = &c["case"];
            let _ = write!(
                body,
                "<p>Status: <strong>{}</strong>. Assignee: {}.</p>",
                esc(&text(&c["status"])),
                esc(&text(&c["assignee"]))
            );
            let notes: Vec<Vec<String>> = c["notes"]
                .as_array()
                .map(|ns| {
                    ns.iter()
                        .map(|n| {
                            // The operator when the entry names one (checked
                            // against their signed request), else the node.
                            let who = match n["operator"]["name"].as_str() {
                                Some(name) if n["operator_verified"] == true => name.to_owned(),
                                Some(name) => format!("{name} (unverified)"),
                                None => format!(
                                    "node {}",
                                    text(&n["author"]).chars().take(12).collect::<String>()
                                ),
                            };
                            vec![
                                esc(&n["at_ms"]
                                    .as_u64()
                                    .map_or("-".into(), |ms| when_ns(ms * 1_000_000))),
                                esc(&who),
                                esc(&text(&n["text"])),
                            ]
                        })
                        .collect()
                })
                .unwrap_or_default();
            body.push_str(&table(
                "Notes",
                &["Time (UTC)", "By", "Note"],
                &notes,
                "No notes yet.",
            ));
        }
        Err(r) => {
            let _ = write!(body, "<p class=\"error\">{}</p>", esc(&r.message));
        }
    }
    if may(v, Role::Analyst) {
        body.push_str(&case_forms(v, id));
    }

    body.push_str("<h2>Campaigns</h2>");
    let campaigns = campaigns_of(state, id).await;
    let rows: Vec<Vec<String>> = campaigns
        .iter()
        .map(|c| {
            vec![
                format!("<a href=\"/alerts/{}\">{}</a>", url(&c.id), esc(&c.id)),
                esc(&when_ns(c.body.time_ns)),
                technique(&c.body.technique),
                esc(&c.body.subject),
            ]
        })
        .collect();
    body.push_str(&table(
        "Cross-site campaigns this alert is part of",
        &["Campaign", "Time (UTC)", "Technique", "Subject"],
        &rows,
        "Not part of any campaign seen here.",
    ));
    render::page(v, "/alerts", &format!("Alert {}", b.rule), &body)
}

pub async fn page(
    State(state): State<ApiState>,
    Extension(v): Extension<Viewer>,
    Path(id): Path<String>,
) -> Response {
    page_of(&state, &v, &id).await
}

/// Runs a case write and goes back to the alert's page, or shows why not.
async fn case_write(
    state: &ApiState,
    v: &Viewer,
    id: &str,
    pattern: &str,
    body: serde_json::Value,
) -> Response {
    let done = call::api(
        state,
        v,
        Method::POST,
        pattern,
        &[("alert", id)],
        "",
        Payload::Json(body),
    )
    .await;
    call::back(done, &format!("/alerts/{}", url(id)))
}

/// `POST /alerts/{id}/ack`
pub async fn ack(
    State(state): State<ApiState>,
    Extension(v): Extension<Viewer>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let form = call::form(&body);
    let assignee = form.get("assignee").filter(|a| !a.trim().is_empty());
    let json = match assignee {
        Some(a) => json!({ "assignee": a.trim() }),
        None => json!({}),
    };
    case_write(&state, &v, &id, "/api/v1/cases/{alert}/ack", json).await
}

/// `POST /alerts/{id}/status`
pub async fn status(
    State(state): State<ApiState>,
    Extension(v): Extension<Viewer>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let form = call::form(&body);
    let status = form.get("status").cloned().unwrap_or_default();
    case_write(
        &state,
        &v,
        &id,
        "/api/v1/cases/{alert}/status",
        json!({ "status": status }),
    )
    .await
}

/// `POST /alerts/{id}/notes`
pub async fn note(
    State(state): State<ApiState>,
    Extension(v): Extension<Viewer>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let form = call::form(&body);
    let text = form.get("text").cloned().unwrap_or_default();
    case_write(
        &state,
        &v,
        &id,
        "/api/v1/cases/{alert}/notes",
        json!({ "text": text }),
    )
    .await
}
