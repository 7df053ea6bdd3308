//! Alert endpoints: list, live stream (Server-Sent Events) and export as
//! JSON lines or OCSF Detection Finding.

use std::convert::Infallible;

use amoskys_mesh::Alert;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::{BroadcastStream, WatchStream};

use super::{ApiState, bad_request, internal, parse_limit, parse_since};
use crate::verdicts::HeadScore;

#[derive(Debug, Deserialize)]
pub(super) struct AlertsParams {
    since: Option<String>,
    limit: Option<String>,
    format: Option<String>,
}

async fn load(state: &ApiState, params: &AlertsParams) -> Result<Vec<Alert>, Response> {
    let since = parse_since(params.since.as_deref()).map_err(bad_request)?;
    let limit = parse_limit(params.limit.as_deref()).map_err(bad_request)?;
    let store = state.store.clone();
    match tokio::task::spawn_blocking(move || store.alerts(since, limit)).await {
        Ok(Ok(alerts)) => Ok(alerts),
        Ok(Err(e)) => Err(internal(e.to_string())),
        Err(e) => Err(internal(format!("alert query failed: {e}"))),
    }
}

/// `GET /api/v1/alerts?since=&limit=`
pub(super) async fn list(
    State(state): State<ApiState>,
    Query(params): Query<AlertsParams>,
) -> Response {
    let alerts = match load(&state, &params).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let heads = match head_scores(&state, &alerts).await {
        Ok(h) => h,
        Err(r) => return r,
    };
    // Each alert re-verified as it is served: where it came from, and
    // whether its signature still holds (a changed database would show).
    let own = state.info.id.as_str();
    let status: Vec<serde_json::Value> = alerts
        .iter()
        .zip(heads)
        .map(|(a, head)| {
            let mut s = serde_json::json!({
                "id": a.id,
                "origin": if a.origin == own { "local" } else { "peer" },
                "signature": match a.verify() {
                    Ok(_) => "valid".to_owned(),
                    Err(e) => format!("invalid: {e}"),
                },
            });
            if let Some((score, rank)) = head {
                s["head"] = serde_json::json!({
                    "probability": score.probability,
                    "logit": score.logit,
                    "rank": rank,
                });
            }
            s
        })
        .collect();
    axum::Json(serde_json::json!({ "alerts": alerts, "status": status })).into_response()
}

/// The supervised head's score of each alert where a head is in force
/// ([`crate::verdicts`]), with its rank among them (1: most likely a true
/// positive).
async fn head_scores(
    state: &ApiState,
    alerts: &[Alert],
) -> Result<Vec<Option<(HeadScore, usize)>>, Response> {
    let learner = state.learner.clone();
    let ids: Vec<String> = alerts.iter().map(|a| a.id.clone()).collect();
    let scores = tokio::task::spawn_blocking(move || {
        ids.iter()
            .map(|id| learner.score_alert(id))
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .map_err(|e| internal(format!("head scores failed: {e}")))?
    .map_err(|e| internal(e.to_string()))?;
    let mut order: Vec<usize> = (0..scores.len()).filter(|&i| scores[i].is_some()).collect();
    let logit = |i: usize| scores[i].map_or(f64::NEG_INFINITY, |s| s.logit);
    order.sort_by(|&a, &b| logit(b).total_cmp(&logit(a)).then(a.cmp(&b)));
    let mut out = vec![None; scores.len()];
    for (rank, i) in order.into_iter().enumerate() {
        out[i] = scores[i].map(|s| (s, rank + 1));
    }
    Ok(out)
}

/// `GET /api/v1/alerts/export?format=jsonl|ocsf&since=&limit=`: one JSON
/// object per line.
pub(super) async fn export(
    State(state): State<ApiState>,
    Query(params): Query<AlertsParams>,
) -> Response {
    let format = params.format.clone().unwrap_or_else(|| "jsonl".into());
    if format != "jsonl" && format != "ocsf" {
        return bad_request(format!("format: {format:?} is not \"jsonl\" or \"ocsf\""));
    }
    let alerts = match load(&state, &params).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let mut body = String::new();
    for alert in &alerts {
        let line = if format == "ocsf" {
            ocsf(alert).to_string()
        } else {
            String::from_utf8_lossy(&alert.encode()).into_owned()
        };
        body.push_str(&line);
        body.push('\n');
    }
    ([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response()
}

/// `GET /api/v1/alerts/stream`: every new alert as an SSE `alert` event.
pub(super) async fn stream(State(state): State<ApiState>) -> impl IntoResponse {
    let updates = BroadcastStream::new(state.alerts.subscribe()).map(
        |item| -> Result<SseEvent, Infallible> {
            Ok(match item {
                Ok(alert) => SseEvent::default()
                    .event("alert")
                    .id(alert.id.clone())
                    .data(String::from_utf8_lossy(&alert.encode())),
                Err(BroadcastStreamRecvError::Lagged(n)) => {
                    SseEvent::default().event("lagged").data(n.to_string())
                }
            })
        },
    );
    // The stream ends when the node shuts down, so no client can hold it.
    let stop = WatchStream::new(state.shutdown.clone())
        .filter(|stop| *stop)
        .map(|_| None);
    let events = updates
        .map(Some)
        .merge(stop)
        .take_while(Option::is_some)
        .filter_map(|item| item);
    Sse::new(events).keep_alive(KeepAlive::default())
}

/// An alert as an OCSF 1.1 Detection Finding (class 2004).
pub fn ocsf(alert: &Alert) -> serde_json::Value {
    let b = &alert.body;
    let severity_id = match b.severity.as_str() {
        "low" => 2,
        "medium" => 3,
        "high" => 4,
        "critical" => 5,
        _ => 0,
    };
    serde_json::json!({
        "class_uid": 2004,
        "class_name": "Detection Finding",
        "category_uid": 2,
        "category_name": "Findings",
        "activity_id": 1,
        "activity_name": "Create",
        "type_uid": 200401,
        "time": b.time_ns / 1_000_000,
        "severity_id": severity_id,
        "severity": b.severity,
        "confidence_score": (b.score * 100.0).round() as u64,
        "message": format!("{} on {}", b.rule, b.subject),
        "finding_info": {
            "uid": alert.id,
            "title": b.rule,
            "analytic": { "name": b.rule, "type_id": 1, "type": "Rule" },
            "attacks": [{
                "technique": { "uid": b.technique },
                "tactic": { "name": b.category },
            }],
        },
        "evidences": [{ "data": b.evidence.iter().cloned().collect::<std::collections::BTreeMap<_, _>>() }],
        "metadata": {
            "version": "1.1.0",
            "product": { "name": "AMOSKYS", "vendor_name": "AMOSKYS", "version": crate::VERSION },
            "uid": alert.id,
        },
        "unmapped": {
            "amoskys_subject": b.subject,
            "amoskys_origin": alert.origin,
            "amoskys_origin_key": alert.origin_key,
            "amoskys_seq": b.seq,
            "amoskys_signature": alert.signature,
        },
    })
}
