//! `GET /audit`: the audit trail, newest first, filtered by operator,
//! action and time (query parameters), with the check of the hash chain
//! and record signatures over the entries read.

use std::fmt::Write as _;

use amoskys_consensus::audit::{AuditEntry, ChainCheck};
use axum::extract::{Extension, Query, State};
use axum::response::Response;
use serde::Deserialize;

use crate::api::ApiState;
use crate::console::Viewer;
use crate::console::call;
use crate::console::render::{self, esc, short_id, table, url, when_ns};

/// Entries read (the newest) before filtering.
const READ: usize = 1_000;
/// Rows shown.
const SHOWN: usize = 200;

#[derive(Debug, Default, Deserialize)]
pub struct Filters {
    #[serde(default)]
    operator: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    since: String,
}

/// The chain check of `entries` (oldest first): what it found, and
/// whether the newest entry is the head the cluster holds.
pub fn chain(entries: &[AuditEntry], head: &str) -> Result<String, String> {
    let mut check = ChainCheck::default();
    for e in entries {
        check.push(e).map_err(|e| e.to_string())?;
    }
    let Some(last) = entries.last() else {
        return Ok("no entries to check".into());
    };
    if !head.is_empty() && last.hash != head {
        return Ok(format!(
            "{} entries check (hashes, order, signatures); newer entries than {} exist",
            check.count(),
            last.seq
        ));
    }
    Ok(format!(
        "{} entries check (hashes, order, signatures), up to the head the cluster holds",
        check.count()
    ))
}

fn form(f: &Filters) -> String {
    format!(
        "<form method=\"get\" action=\"/audit\" class=\"filters\">\
         <label for=\"a-operator\">Operator<input id=\"a-operator\" name=\"operator\" value=\"{}\"></label>\
         <label for=\"a-action\">Action (e.g. policy.set, case.)<input id=\"a-action\" name=\"action\" value=\"{}\"></label>\
         <label for=\"a-since\">Since (15m, 24h, a time)<input id=\"a-since\" name=\"since\" value=\"{}\"></label>\
         <button type=\"submit\">Filter</button> <a href=\"/audit\">Clear</a></form>",
        esc(&f.operator),
        esc(&f.action),
        esc(&f.since)
    )
}

pub async fn page(
    State(state): State<ApiState>,
    Extension(v): Extension<Viewer>,
    Query(f): Query<Filters>,
) -> Response {
    let mut q = format!("limit={READ}");
    if !f.since.is_empty() {
        let _ = write!(q, "&since={}", url(&f.since));
    }
    let mut body = form(&f);
    let trail = match call::get(&state, &v, "/api/v1/audit", &q).await {
        Ok(t) => t,
        Err(r) => {
            let _ = write!(
                body,
                "<p class=\"error\" role=\"alert\">{}</p>",
                esc(&r.message)
            );
            return render::page(&v, "/audit", "Audit trail", &body);
        }
    };
    let entries: Vec<AuditEntry> = trail["entries"]
        .as_array()
        .map(|es| {
            es.iter()
                .filter_map(|e| serde_json::from_value(e.clone()).ok())
                .collect()
        })
        .unwrap_or_default();
    let head = trail["head"].as_str().unwrap_or_default();
    match chain(&entries, head) {
        Ok(ok) => {
            let _ = write!(
                body,
                "<p class=\"notice\" role=\"status\">Chain check: {}.</p>",
                esc(&ok)
            );
        }
        Err(e) => {
            let _ = write!(
                body,
                "<p class=\"error\" role=\"alert\">Chain check failed: {}.</p>",
                esc(&e)
            );
        }
    }
    let _ = write!(
        body,
        "<p>{} entries recorded in all; export and verify the whole trail with <code>amoskys audit export</code> and <code>amoskys audit verify</code>.</p>",
        esc(&trail["count"].to_string())
    );
    let rows: Vec<Vec<String>> = entries
        .iter()
        .rev()
        .filter(|e| f.operator.is_empty() || e.record.operator == f.operator)
        .filter(|e| f.action.is_empty() || e.record.action.starts_with(&f.action))
        .take(SHOWN)
        .map(|e| {
            let r = &e.record;
            vec![
                e.seq.to_string(),
                esc(&when_ns(r.time_ns)),
                esc(&r.operator),
                esc(&r.role.map_or("-".into(), |x| x.to_string())),
                short_id(&r.node.to_string()),
                format!("<code>{}</code>", esc(&r.action)),
                esc(&r.target),
                esc(&r.summary),
                esc(&e.outcome),
            ]
        })
        .collect();
    body.push_str(&table(
        "Audit entries, newest first",
        &[
            "Seq",
            "Time (UTC)",
            "Operator",
            "Role",
            "Node",
            "Action",
            "Target",
            "Summary",
            "Outcome",
        ],
        &rows,
        "No entry matches.",
    ));
    render::page(&v, "/audit", "Audit trail", &body)
}
