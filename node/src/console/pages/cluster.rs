//! `GET /cluster`: voters, learners and join requests (admit and remove
//! for admins), the policy in force with its history as diffs, the policy
//! editor (a refusal shows each problem at its key and changes nothing),
//! and proposals awaiting approval.

use std::fmt::Write as _;

use amoskys_consensus::Role;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::policy;
use crate::api::ApiState;
use crate::console::Viewer;
use crate::console::call::{self, Payload};
use crate::console::render::{
    self, button_form, esc, hidden_csrf, may, short_id, table, text, url, when, when_ns,
};

/// Policy versions whose diffs the page shows.
const HISTORY: usize = 5;

fn members_section(v: &Viewer, members: &Value, pending: &[Value]) -> String {
    let admin = may(v, Role::Admin);
    let empty = Vec::new();
    let rows: Vec<Vec<String>> = members["members"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .map(|m| {
            let id = text(&m["id"]);
            let mut row = vec![
                short_id(&id),
                esc(&text(&m["role"])),
                m["admitted_by"].as_str().map_or("-".into(), short_id),
                esc(&when(&m["admitted_ns"])),
            ];
            if admin {
                let action = format!("/cluster/members/{}/remove", url(&id));
                row.push(button_form(v, &action, &[], "Remove"));
            }
            row
        })
        .collect();
    let mut headers = vec!["Node", "Role", "Admitted by", "Admitted"];
    if admin {
        headers.push("Action");
    }
    let mut out = String::from("<h2>Members</h2>");
    out.push_str(&table(
        "Voters and learners",
        &headers,
        &rows,
        "No members: the cluster is not formed.",
    ));
    out.push_str("<h2>Join requests</h2>");
    let rows: Vec<Vec<String>> = pending
        .iter()
        .map(|p| {
            let id = text(&p["id"]);
            let mut row = vec![
                short_id(&id),
                esc(&text(&p["name"])),
                esc(&text(&p["addr"])),
                esc(&text(&p["requested_at"])),
            ];
            if admin {
                row.push(button_form(
                    v,
                    "/cluster/members",
                    &[
                        ("id", &id),
                        ("addr", p["addr"].as_str().unwrap_or_default()),
                    ],
                    "Admit",
                ));
            }
            row
        })
        .collect();
    let mut headers = vec!["Node", "Name", "Mesh address", "Asked at"];
    if admin {
        headers.push("Action");
    }
    out.push_str(&table(
        "Nodes that asked to join",
        &headers,
        &rows,
        "No node is waiting to join.",
    ));
    if admin {
        let _ = write!(
            out,
            "<form method=\"post\" action=\"/cluster/members\" class=\"edit\">{}\
             <label for=\"admit-id\">Node id<input id=\"admit-id\" name=\"id\" required></label>\
             <label for=\"admit-addr\">Mesh address (host:port)<input id=\"admit-addr\" name=\"addr\"></label>\
             <button type=\"submit\">Admit as learner</button></form>",
            hidden_csrf(v)
        );
    }
    out
}

fn proposals_section(v: &Viewer, proposals: &Value) -> String {
    let admin = may(v, Role::Admin);
    let empty = Vec::new();
    let rows: Vec<Vec<String>> = proposals["proposals"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .filter(|p| p["status"] == "open")
        .map(|p| {
            let id = text(&p["id"]);
            let mut row = vec![
                esc(&id),
                esc(&text(&p["kind"])),
                esc(&text(&p["summary"])),
                format!(
                    "{} of {}",
                    p["approvals"].as_array().map_or(0, Vec::len),
                    esc(&text(&p["needed"]))
                ),
                esc(&when(&p["expires_ns"])),
            ];
            if admin {
                let action = format!("/cluster/proposals/{}/approve", url(&id));
                row.push(button_form(v, &action, &[], "Approve"));
            }
            row
        })
        .collect();
    let mut headers = vec!["Proposal", "Kind", "Change", "Approvals", "Expires"];
    if admin {
        headers.push("Action");
    }
    let mut out = String::from("<h2>Proposals awaiting approval</h2>");
    out.push_str(&table(
        "Open proposals",
        &headers,
        &rows,
        "No proposal is waiting.",
    ));
    out
}

fn history_section(state: &ApiState) -> String {
    let applied = state.cluster.applied().borrow().clone();
    let versions: Vec<_> = applied.state.policies.iter().collect();
    let mut out = String::from("<h2>Policy history</h2>");
    if versions.is_empty() {
        out.push_str(
            "<p class=\"empty\">No policy committed yet: the configuration's is in force.</p>",
        );
        return out;
    }
    for (i, p) in versions.iter().enumerate().rev().take(HISTORY) {
        let before = if i == 0 {
            ""
        } else {
            versions[i - 1].document.as_str()
        };
        let _ = write!(
            out,
            "<h3>Version {} by {}, {}</h3>{}",
            p.version,
            short_id(&p.author.to_string()),
            esc(&when_ns(p.time_ns)),
            policy::diff_html(before, &p.document)
        );
    }
    out
}

/// The whole page; `edit` is a refused edit (its text and problems).
async fn render_page(state: &ApiState, v: &Viewer, edit: Option<(&str, &str)>) -> Response {
    let cluster = match call::get(state, v, "/api/v1/cluster", "").await {
        Ok(c) => c,
        Err(r) => return r.page(),
    };
    let members = call::get(state, v, "/api/v1/members", "")
        .await
        .unwrap_or(Value::Null);
    let pol = call::get(state, v, "/api/v1/policy", "")
        .await
        .unwrap_or(Value::Null);
    let proposals = call::get(state, v, "/api/v1/proposals", "")
        .await
        .unwrap_or(Value::Null);
    let c = &cluster["cluster"];
    let mut body = format!(
        "<p>This node is <strong>{}</strong> in term {}; leader {}. Policy version in force: {}.</p>",
        esc(&text(&c["state"])),
        esc(&text(&c["term"])),
        c["leader"].as_str().map_or("none".into(), short_id),
        esc(&cluster["policy_version"]
            .as_u64()
            .map_or("the configuration's".into(), |v| v.to_string())),
    );
    let pending = members["pending"].as_array().cloned().unwrap_or_default();
    body.push_str(&members_section(v, &members, &pending));
    body.push_str(&proposals_section(v, &proposals));
    body.push_str("<h2>Policy in force</h2>");
    let document = pol["in_force"]["document"].as_str().unwrap_or_default();
    if let Some(e) = pol["in_force"]["error"].as_str() {
        let _ = write!(body, "<p class=\"error\">Not applied: {}</p>", esc(e));
    }
    if may(v, Role::Admin) {
        let shown = edit.map_or(document, |(text, _)| text);
        if let Some((text, message)) = edit {
            body.push_str(&policy::annotated(text, &policy::problems(message, text)));
        }
        let _ = write!(
            body,
            "<form method=\"post\" action=\"/cluster/policy\" class=\"edit stacked\">{}\
             <label for=\"policy-doc\">Policy (TOML); checked whole before it is committed, \
             and put to a vote when governance asks for approvals\
             <textarea id=\"policy-doc\" name=\"document\" rows=\"24\" spellcheck=\"false\"{}>{}</textarea></label>\
             <div><button type=\"submit\">Commit policy</button></div></form>",
            hidden_csrf(v),
            if edit.is_some() {
                " aria-describedby=\"policy-problems\" aria-invalid=\"true\""
            } else {
                ""
            },
            esc(shown),
        );
    } else {
        let _ = write!(body, "<pre>{}</pre>", esc(document));
    }
    body.push_str(&history_section(state));
    let resp = render::page(v, "/cluster", "Cluster", &body);
    if edit.is_some() {
        let (mut parts, b) = resp.into_parts();
        parts.status = StatusCode::BAD_REQUEST;
        return Response::from_parts(parts, b);
    }
    resp
}

pub async fn page(State(state): State<ApiState>, Extension(v): Extension<Viewer>) -> Response {
    render_page(&state, &v, None).await
}

/// `POST /cluster/policy`: `PUT /api/v1/policy` with the form's document;
/// a refusal shows the page again with the problems at their keys.
pub async fn set_policy(
    State(state): State<ApiState>,
    Extension(v): Extension<Viewer>,
    body: Bytes,
) -> Response {
    let form = call::form(&body);
    let document = form
        .get("document")
        .cloned()
        .unwrap_or_default()
        .replace("\r\n", "\n");
    match call::api(
        &state,
        &v,
        Method::PUT,
        "/api/v1/policy",
        &[],
        "",
        Payload::Text(document.clone()),
    )
    .await
    {
        Ok(_) => call::see_other("/cluster"),
        Err(r) if r.status == StatusCode::BAD_REQUEST => {
            render_page(&state, &v, Some((&document, &r.message))).await
        }
        Err(r) => r.page(),
    }
}

/// `POST /cluster/members`: admits a node as a learner.
pub async fn admit(
    State(state): State<ApiState>,
    Extension(v): Extension<Viewer>,
    body: Bytes,
) -> Response {
    let form = call::form(&body);
    let req = json!({
        "id": form.get("id").map_or("", |s| s.trim()),
        "addr": form.get("addr").map_or("", |s| s.trim()),
    });
    call::back(
        call::api(
            &state,
            &v,
            Method::POST,
            "/api/v1/members",
            &[],
            "",
            Payload::Json(req),
        )
        .await,
        "/cluster",
    )
}

/// `POST /cluster/members/{id}/remove`
pub async fn remove(
    State(state): State<ApiState>,
    Extension(v): Extension<Viewer>,
    Path(id): Path<String>,
) -> Response {
    let params = [("id", id.as_str())];
    call::back(
        call::api(
            &state,
            &v,
            Method::DELETE,
            "/api/v1/members/{id}",
            &params,
            "",
            Payload::None,
        )
        .await,
        "/cluster",
    )
}

/// `POST /cluster/proposals/{id}/approve`
pub async fn approve(
    State(state): State<ApiState>,
    Extension(v): Extension<Viewer>,
    Path(id): Path<String>,
) -> Response {
    let params = [("id", id.as_str())];
    let pattern = "/api/v1/proposals/{id}/approve";
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
        "/cluster",
    )
}
