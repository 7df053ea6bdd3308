//! The JSON form of an alert: the signed fields plus `time`, the detection
//! time as RFC 3339 text. `time_ns` is above 2^53, so a reader whose
//! numbers are doubles (jq 1.6, JavaScript) rounds it and the signature no
//! longer verifies; `time` survives such readers. `time` is not signed: a
//! decoder accepts JSON with or without it and refuses one that names
//! another instant than `time_ns`.

use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::{Alert, AlertBody};

/// Alert JSON, field by field, in the order the encoder writes them.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AlertJson {
    version: u16,
    id: String,
    origin: String,
    origin_key: String,
    seq: u64,
    time_ns: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    time: Option<String>,
    severity: String,
    category: String,
    technique: String,
    rule: String,
    score: f64,
    subject: String,
    evidence: Vec<(String, String)>,
    signature: String,
}

/// `time_ns` as RFC 3339 in UTC with nine fraction digits, the form the
/// encoder writes: `2026-11-18T11:06:40.000000000Z`.
pub fn rfc3339(time_ns: u64) -> String {
    humantime::format_rfc3339_nanos(UNIX_EPOCH + Duration::from_nanos(time_ns)).to_string()
}

/// Nanoseconds since the epoch of an RFC 3339 UTC time (`Z` or `+00:00`).
fn nanos_of(text: &str) -> Option<u64> {
    let t = humantime::parse_rfc3339(text).ok()?;
    u64::try_from(t.duration_since(UNIX_EPOCH).ok()?.as_nanos()).ok()
}

impl From<Alert> for AlertJson {
    fn from(a: Alert) -> Self {
        let b = a.body;
        AlertJson {
            version: a.version,
            id: a.id,
            origin: a.origin,
            origin_key: a.origin_key,
            seq: b.seq,
            time_ns: b.time_ns,
            time: Some(rfc3339(b.time_ns)),
            severity: b.severity,
            category: b.category,
            technique: b.technique,
            rule: b.rule,
            score: b.score,
            subject: b.subject,
            evidence: b.evidence,
            signature: a.signature,
        }
    }
}

impl TryFrom<AlertJson> for Alert {
    type Error = String;

    fn try_from(j: AlertJson) -> Result<Alert, String> {
        if let Some(time) = &j.time
            && nanos_of(time) != Some(j.time_ns)
        {
            return Err(format!(
                "time {time:?} is not time_ns {} (expected {:?})",
                j.time_ns,
                rfc3339(j.time_ns)
            ));
        }
        Ok(Alert {
            version: j.version,
            id: j.id,
            origin: j.origin,
            origin_key: j.origin_key,
            body: AlertBody {
                seq: j.seq,
                time_ns: j.time_ns,
                severity: j.severity,
                category: j.category,
                technique: j.technique,
                rule: j.rule,
                score: j.score,
                subject: j.subject,
                evidence: j.evidence,
            },
            signature: j.signature,
        })
    }
}
