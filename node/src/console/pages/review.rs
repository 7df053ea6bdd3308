//! The alerts page's "Review" list: the unjudged anomaly alerts whose
//! verdict would teach the supervised head the most
//! (`GET /api/v1/alerts/review`), in the order to judge them, and whether
//! each kind's head is in force.

use std::fmt::Write as _;

use crate::api::ApiState;
use crate::console::Viewer;
use crate::console::call;
use crate::console::render::{self, esc, url, when_ns};

/// Alerts the list shows.
const SHOWN: usize = 10;

/// The section's HTML (a refusal or failure is said in its place).
pub async fn section(state: &ApiState, v: &Viewer) -> String {
    let body = match call::get(state, v, "/api/v1/alerts/review", &format!("limit={SHOWN}")).await {
        Ok(b) => b,
        Err(r) => {
            return format!(
                "<section id=\"review\"><h2>Review</h2><p class=\"error\">{}</p></section>",
                esc(&r.message)
            );
        }
    };
    let empty = Vec::new();
    let heads: Vec<String> = body["heads"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .filter(|h| h["in_force"] == true)
        .map(|h| {
            format!(
                "{} ({}, {} TP / {} FP)",
                render::text(&h["entity"]),
                render::text(&h["source"]),
                h["attacks"],
                h["normals"]
            )
        })
        .collect();
    let mut out = String::from("<section id=\"review\"><h2>Review</h2>");
    let _ = write!(
        out,
        "<p>Judge these first: their verdicts teach the most. Head <code>{}</code>; in force for: {}.</p>",
        esc(&render::text(&body["head"])),
        if heads.is_empty() {
            format!(
                "none yet (it needs {} verdicts of each class)",
                body["min_per_class"]
            )
        } else {
            esc(&heads.join(", "))
        }
    );
    let rows: Vec<Vec<String>> = body["review"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .map(|r| {
            let a = &r["alert"]["body"];
            let id = r["id"].as_str().unwrap_or_default();
            vec![
                format!(
                    "<time>{}</time>",
                    esc(&when_ns(r["time_ns"].as_u64().unwrap_or(0)))
                ),
                format!(
                    "<a href=\"/alerts/{}\">{}</a>",
                    url(id),
                    esc(&render::text(&a["rule"]))
                ),
                esc(&render::text(&a["subject"])),
                r["score"]
                    .as_f64()
                    .map_or("-".into(), |s| format!("{s:.2}")),
                r["head_probability"]
                    .as_f64()
                    .map_or("-".into(), |p| format!("{p:.2}")),
            ]
        })
        .collect();
    out.push_str(&render::table(
        "Alerts to judge next",
        &["Time (UTC)", "Rule", "Subject", "Score", "P(true positive)"],
        &rows,
        "Nothing to review: no unjudged anomaly alert on this node.",
    ));
    out.push_str("</section>");
    out
}
