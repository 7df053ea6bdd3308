//! `GET /alerts`: alerts newest first with severity, rule, ATT&CK
//! technique, origin, subject, time, signature and case status; filters in
//! the URL's query; and `GET /alerts/stream`, the rows of new alerts that
//! match the same filters as Server-Sent Events (the page's script adds
//! them; without it the page is complete, just not live). Below the
//! table, the alerts to judge next (`review.rs`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt::Write as _;

use amoskys_mesh::Alert;
use axum::extract::{Extension, Query, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::{BroadcastStream, WatchStream};

use crate::api::ApiState;
use crate::console::Viewer;
use crate::console::call;
use crate::console::render::{self, esc, short_id, url, when_ns};

/// Most rows the page shows (and keeps as new ones arrive).
pub const MAX_ROWS: usize = 200;
/// Alerts read to fill the page before filtering.
const READ: usize = 1_000;

/// The filters, as the query string carries them; all optional.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Filters {
    #[serde(default)]
    pub severity: String,
    #[serde(default)]
    pub rule: String,
    /// A node id (or its start), `local` or `peer`.
    #[serde(default)]
    pub origin: String,
    /// `since=`: a duration ago (`1h`) or a time, as the API takes it.
    #[serde(default)]
    pub since: String,
    /// `until=`: the end of the time range, in the same forms.
    #[serde(default)]
    pub until: String,
    /// Case status: new, acknowledged, false_positive, resolved.
    #[serde(default)]
    pub status: String,
}

impl Filters {
    /// Whether an alert (from `own` node or a peer) in case status `case`
    /// passes.
    /// The end of the time range in nanoseconds, or why `until` is not a time.
    pub fn until_ns(&self, now_ns: u64) -> Result<Option<u64>, String> {
        let u = self.until.trim();
        if u.is_empty() {
            return Ok(None);
        }
        crate::api::time_of(u, now_ns).map(Some).ok_or_else(|| {
            format!("until: {u:?} is not a time (expected RFC 3339, a duration ago such as 15m, or Unix nanoseconds)")
        })
    }

    /// Whether an alert (from `own` node or a peer) in case status `case`
    /// passes, `until` being [`Filters::until_ns`].
    pub fn pass_until(&self, a: &Alert, own: &str, case: &str, until: Option<u64>) -> bool {
        until.is_none_or(|u| a.body.time_ns <= u) && self.pass(a, own, case)
    }

    pub fn pass(&self, a: &Alert, own: &str, case: &str) -> bool {
        let origin = self.origin.trim();
        let origin_ok = origin.is_empty()
            || a.origin.starts_with(origin)
            || (origin == "local" && a.origin == own)
            || (origin == "peer" && a.origin != own);
        (self.severity.is_empty() || a.body.severity == self.severity)
            && (self.rule.trim().is_empty() || a.body.rule.contains(self.rule.trim()))
            && origin_ok
            && (self.status.is_empty() || case == self.status)
    }

    /// The filters as a query string (without `?`).
    pub fn query(&self) -> String {
        let mut q = String::new();
        for (k, v) in [
            ("severity", &self.severity),
            ("rule", &self.rule),
            ("origin", &self.origin),
            ("since", &self.since),
            ("until", &self.until),
            ("status", &self.status),
        ] {
            if !v.is_empty() {
                let _ = write!(q, "{}{k}={}", if q.is_empty() { "" } else { "&" }, url(v));
            }
        }
        q
    }
}

/// An ATT&CK technique id as a link to its page (`T1046`, `T1059.004`).
pub fn technique(id: &str) -> String {
    let valid = id.starts_with('T')
        && id.len() <= 12
        && id[1..].chars().all(|c| c.is_ascii_digit() || c == '.');
    if !valid {
        return esc(id);
    }
    let path = id.replace('.', "/");
    format!("<a href=\"https://attack.mitre.org/techniques/{path}/\">{id}</a>")
}

/// One alert's table row.
pub fn row(a: &Alert, own: &str, signature: &str, case: &str) -> String {
    let sig_class = if signature == "valid" {
        "sig-valid"
    } else {
        "sig-invalid"
    };
    let origin = if a.origin == own {
        "this node".to_owned()
    } else {
        short_id(&a.origin)
    };
    format!(
        "<tr><td><time>{time}</time></td><td class=\"sev-{sev}\">{sev}</td>\
         <td><a href=\"/alerts/{id}\">{rule}</a></td><td>{tech}</td><td>{origin}</td>\
         <td>{subject}</td><td class=\"{sig_class}\">{sig}</td><td>{case}</td></tr>",
        time = esc(&when_ns(a.body.time_ns)),
        sev = esc(&a.body.severity),
        id = url(&a.id),
        rule = esc(&a.body.rule),
        tech = technique(&a.body.technique),
        subject = esc(&a.body.subject),
        sig = esc(signature),
        case = esc(case),
    )
}

fn select(name: &str, label: &str, current: &str, options: &[(&str, &str)]) -> String {
    let mut out =
        format!("<label for=\"f-{name}\">{label}<select id=\"f-{name}\" name=\"{name}\">");
    for (value, text) in options {
        let sel = if *value == current { " selected" } else { "" };
        let _ = write!(out, "<option value=\"{value}\"{sel}>{text}</option>");
    }
    out.push_str("</select></label>");
    out
}

fn filter_form(f: &Filters) -> String {
    let mut out = String::from("<form method=\"get\" action=\"/alerts\" class=\"filters\">");
    out.push_str(&select(
        "severity",
        "Severity",
        &f.severity,
        &[
            ("", "any"),
            ("low", "low"),
            ("medium", "medium"),
            ("high", "high"),
            ("critical", "critical"),
        ],
    ));
    let _ = write!(
        out,
        "<label for=\"f-rule\">Rule<input id=\"f-rule\" name=\"rule\" value=\"{}\"></label>\
         <label for=\"f-origin\">Origin (node id, local or peer)<input id=\"f-origin\" name=\"origin\" value=\"{}\"></label>\
         <label for=\"f-since\">Since (15m, 24h, a time)<input id=\"f-since\" name=\"since\" value=\"{}\"></label>\
         <label for=\"f-until\">Until (5m, a time)<input id=\"f-until\" name=\"until\" value=\"{}\"></label>",
        esc(&f.rule),
        esc(&f.origin),
        esc(&f.since),
        esc(&f.until)
    );
    out.push_str(&select(
        "status",
        "Case status",
        &f.status,
        &[
            ("", "any"),
            ("new", "new"),
            ("acknowledged", "acknowledged"),
            ("false_positive", "false positive"),
            ("resolved", "resolved"),
        ],
    ));
    out.push_str("<button type=\"submit\">Filter</button> <a href=\"/alerts\">Clear</a></form>");
    out
}

/// Case status by alert id, from `GET /api/v1/cases`.
pub fn case_statuses(cases: &serde_json::Value) -> HashMap<String, String> {
    cases["cases"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .filter_map(|c| {
                    Some((
                        c["alert"].as_str()?.to_owned(),
                        c["status"].as_str()?.to_owned(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Says on the page why a filter or the read failed.
fn problem(body: &mut String, e: &str) {
    let _ = write!(body, "<p class=\"error\" role=\"alert\">{}</p>", esc(e));
}

pub async fn page(
    State(state): State<ApiState>,
    Extension(v): Extension<Viewer>,
    Query(f): Query<Filters>,
) -> Response {
    let mut body = filter_form(&f);
    let now = amoskys_sensors::now_ns();
    let until = f.until_ns(now).unwrap_or_else(|e| {
        problem(&mut body, &e);
        None
    });
    let since = match f.since.trim() {
        "" => None,
        s => crate::api::time_of(s, now).or_else(|| {
            let e = format!("since: {s:?} is not a time (expected RFC 3339, a duration ago such as 15m, or Unix nanoseconds)");
            problem(&mut body, &e);
            None
        }),
    };
    // The store's own query, as `GET /api/v1/alerts` makes it; only the
    // rows shown are verified (the API verifies all it returns).
    let store = state.store.clone();
    let alerts = match tokio::task::spawn_blocking(move || store.alerts(since, READ)).await {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => {
            problem(&mut body, &e.to_string());
            Vec::new()
        }
        Err(e) => {
            problem(&mut body, &e.to_string());
            Vec::new()
        }
    };
    let cases = call::get(&state, &v, "/api/v1/cases", "")
        .await
        .map(|c| case_statuses(&c))
        .unwrap_or_default();
    let own = state.info.id.as_str();
    let mut rows = String::new();
    let mut shown = 0;
    for a in alerts.iter().rev() {
        let case = cases.get(&a.id).map_or("new", String::as_str);
        if !f.pass_until(a, own, case, until) {
            continue;
        }
        let sig = match a.verify() {
            Ok(_) => "valid".to_owned(),
            Err(e) => format!("invalid: {e}"),
        };
        rows.push_str(&row(a, own, &sig, case));
        shown += 1;
        if shown >= MAX_ROWS {
            break;
        }
    }
    let _ = write!(
        body,
        "<p id=\"live-state\" class=\"live\" role=\"status\">{shown} alerts shown (at most {MAX_ROWS}, newest first). Reload for new ones.</p>"
    );
    let hidden = if shown == 0 { "" } else { " hidden" };
    let _ = write!(
        body,
        "<p id=\"alerts-empty\" class=\"empty\"{hidden}>No alerts match.</p>\
         <table id=\"alerts-live\" data-stream=\"/alerts/stream?{stream}\" data-max=\"{MAX_ROWS}\">\
         <caption>Alerts, newest first</caption><thead><tr>\
         <th scope=\"col\">Time (UTC)</th><th scope=\"col\">Severity</th><th scope=\"col\">Rule</th>\
         <th scope=\"col\">ATT&amp;CK</th><th scope=\"col\">Origin</th><th scope=\"col\">Subject</th>\
         <th scope=\"col\">Signature</th><th scope=\"col\">Case</th></tr></thead><tbody>{rows}</tbody></table>",
        stream = esc(&f.query()),
    );
    body.push_str(&super::review::section(&state, &v).await);
    render::page(&v, "/alerts", "Alerts", &body)
}

/// `GET /alerts/stream`: each new alert that passes the filters, as an SSE
/// `row` event carrying its rendered row.
pub async fn stream(
    State(state): State<ApiState>,
    Extension(_v): Extension<Viewer>,
    Query(f): Query<Filters>,
) -> impl IntoResponse {
    let own = state.info.id.clone();
    let until = f.until_ns(amoskys_sensors::now_ns()).ok().flatten();
    let rows = BroadcastStream::new(state.alerts.subscribe()).filter_map(move |item| {
        let a = item.ok()?;
        // A new alert's case is new: no one has worked on it yet.
        if !f.pass_until(&a, &own, "new", until) {
            return None;
        }
        let sig = match a.verify() {
            Ok(_) => "valid".to_owned(),
            Err(e) => format!("invalid: {e}"),
        };
        let html = row(&a, &own, &sig, "new");
        Some(Ok::<_, Infallible>(
            SseEvent::default().event("row").id(a.id.clone()).data(html),
        ))
    });
    // The stream ends when the node shuts down, so no browser can hold it.
    let stop = WatchStream::new(state.shutdown.clone())
        .filter(|stop| *stop)
        .map(|_| None);
    let events = rows
        .map(Some)
        .merge(stop)
        .take_while(Option::is_some)
        .filter_map(|item| item);
    Sse::new(events).keep_alive(KeepAlive::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn techniques_link_to_attack_and_nothing_else_does() {
        assert_eq!(
            technique("T1046"),
            "<a href=\"https://attack.mitre.org/techniques/T1046/\">T1046</a>"
        );
        assert!(technique("T1059.004").contains("techniques/T1059/004/"));
        assert_eq!(technique("\"><script>"), "&quot;&gt;&lt;script&gt;");
        assert_eq!(technique("none"), "none");
    }

    #[test]
    fn filters_round_trip_through_the_query() {
        let f = Filters {
            severity: "high".into(),
            rule: "port scan&x".into(),
            ..Filters::default()
        };
        assert_eq!(f.query(), "severity=high&rule=port+scan%26x");
        assert_eq!(Filters::default().query(), "");
    }
}
