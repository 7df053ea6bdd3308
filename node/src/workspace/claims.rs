//! Whether a signed request asked for what a workspace entry records: the
//! route rules of the operator proof (`operator.rs`).
//!
//! Each API edit writes entries in one way, so each entry has one request
//! shape it may come from:
//!
//! | entry | request |
//! |---|---|
//! | intel `<kind>:<value>` | `POST /api/v1/intel`, the same indicator, reason and lifetime |
//! | intel tombstone | `DELETE /api/v1/intel?indicator=…` of the same indicator |
//! | `case/<alert>/status` | `POST /api/v1/cases/<alert>/status` with the same status, or `…/ack` for `acknowledged` |
//! | `case/<alert>/assignee` | `POST /api/v1/cases/<alert>/ack` with the same assignee |
//! | `case/<alert>/note/…` | `POST /api/v1/cases/<alert>/notes` with the same text |
//! | decision `<action>:<subject>` (and its tombstone) | `POST /api/v1/decisions`, `DELETE /api/v1/decisions?subject=…` (`decisions.rs`) |
//!
//! Request bodies are read as the API reads them (unknown fields refused).

use serde::Deserialize;

use super::doc::{DocKind, Entry};
use super::indicator::parse_indicator;
use super::operator::{PROOF_WINDOW_MS, RequestProof};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddBody {
    indicator: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    expires_secs: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AckBody {
    #[serde(default)]
    assignee: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusBody {
    status: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoteBody {
    text: String,
}

/// `Ok` when `req` asked for the entry at `key`; otherwise what differs.
pub(super) fn matches(
    kind: DocKind,
    key: &str,
    entry: &Entry,
    req: &RequestProof,
) -> Result<(), String> {
    let (path, query) = match req.path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (req.path.as_str(), None),
    };
    let path = percent_decode(path, false).ok_or("the path does not decode")?;
    match kind {
        DocKind::Intel => intel(key, entry, req, &path, query),
        DocKind::Cases => case(key, entry, req, &path),
        DocKind::Decisions => super::decisions::claim(key, entry, req, &path, query),
    }
}

fn body<'a, T: Deserialize<'a>>(req: &'a RequestProof) -> Result<T, String> {
    serde_json::from_str(&req.body).map_err(|e| format!("the request body does not parse: {e}"))
}

fn text<'a>(entry: &'a Entry, field: &str) -> Option<&'a str> {
    entry.body.get(field).and_then(|v| v.as_str())
}

fn intel(
    key: &str,
    entry: &Entry,
    req: &RequestProof,
    path: &str,
    query: Option<&str>,
) -> Result<(), String> {
    let (Some(kind), Some(value)) = (text(entry, "kind"), text(entry, "value")) else {
        return Err("the entry is not an indicator".into());
    };
    if key != format!("{kind}:{value}") {
        return Err("the entry's key is not its indicator".into());
    }
    if path != "/api/v1/intel" {
        return Err(format!("path {path:?} is not /api/v1/intel"));
    }
    let same = |indicator: &str| {
        parse_indicator(indicator)
            .is_ok_and(|(k, v)| k.label() == kind && v == value)
            .then_some(())
            .ok_or_else(|| format!("indicator {indicator:?} is not {kind}:{value}"))
    };
    if entry.removed {
        if req.method != "DELETE" {
            return Err(format!("a removal by {}", req.method));
        }
        let indicator = query
            .and_then(|q| form_value(q, "indicator"))
            .ok_or("the query names no indicator once")?;
        return same(&indicator);
    }
    if req.method != "POST" {
        return Err(format!("an addition by {}", req.method));
    }
    let add: AddBody = body(req)?;
    same(&add.indicator)?;
    if text(entry, "reason").unwrap_or_default() != add.reason {
        return Err("the reason differs".into());
    }
    let expires = entry.body.get("expires_ms").and_then(|v| v.as_u64());
    let lifetime_ok = match (add.expires_secs, expires) {
        (None, None) => true,
        (Some(secs), Some(at)) => secs
            .checked_mul(1000)
            .and_then(|ms| req.ts_ms.checked_add(ms))
            .is_some_and(|want| want.abs_diff(at) <= PROOF_WINDOW_MS),
        _ => false,
    };
    if !lifetime_ok {
        return Err("the lifetime differs".into());
    }
    Ok(())
}

fn case(key: &str, entry: &Entry, req: &RequestProof, path: &str) -> Result<(), String> {
    let (alert, field) = key
        .strip_prefix("case/")
        .and_then(|rest| rest.split_once('/'))
        .ok_or("the entry is not part of a case")?;
    if entry.removed {
        return Err("no request removes a case entry".into());
    }
    if req.method != "POST" {
        return Err(format!("a case edit by {}", req.method));
    }
    let route = |tail: &str| format!("/api/v1/cases/{alert}/{tail}");
    if field == "status" {
        let status = text(entry, "status").ok_or("the entry holds no status")?;
        if path == route("ack") {
            return (status == "acknowledged")
                .then_some(())
                .ok_or_else(|| format!("an ack does not set {status}"));
        }
        if path != route("status") {
            return Err(format!("path {path:?} does not set the case's status"));
        }
        let asked: StatusBody = body(req)?;
        return (asked.status == status)
            .then_some(())
            .ok_or_else(|| format!("the request set {:?}, not {status}", asked.status));
    }
    if field == "assignee" {
        if path != route("ack") {
            return Err(format!("path {path:?} does not assign the case"));
        }
        let asked: AckBody = if req.body.is_empty() {
            AckBody { assignee: None }
        } else {
            body(req)?
        };
        let assignee = entry.body.get("assignee").and_then(|v| v.as_str());
        return (asked.assignee.as_deref() == assignee)
            .then_some(())
            .ok_or_else(|| "the assignee differs".into());
    }
    if field.starts_with("note/") {
        if path != route("notes") {
            return Err(format!("path {path:?} does not add a note"));
        }
        let asked: NoteBody = body(req)?;
        return (Some(asked.text.as_str()) == text(entry, "text"))
            .then_some(())
            .ok_or_else(|| "the note's text differs".into());
    }
    Err(format!("no request writes the case field {field:?}"))
}

/// The value of `name` in a form-encoded query, when it appears exactly
/// once.
pub(super) fn form_value(query: &str, name: &str) -> Option<String> {
    let mut found = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if percent_decode(k, true)? == name && found.replace(percent_decode(v, true)?).is_some() {
            return None;
        }
    }
    found
}

/// Decodes `%XX` escapes (and `+` as a space in a form); `None` for a bad
/// escape or bytes that are not UTF-8.
fn percent_decode(s: &str, form: bool) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if form => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::{form_value, percent_decode};

    #[test]
    fn queries_decode_as_forms() {
        assert_eq!(
            form_value("indicator=10.0.0.0%2F8", "indicator").as_deref(),
            Some("10.0.0.0/8")
        );
        assert_eq!(
            form_value("a=1&indicator=x+y", "indicator").as_deref(),
            Some("x y")
        );
        assert_eq!(form_value("indicator=a&indicator=b", "indicator"), None);
        assert_eq!(form_value("other=1", "indicator"), None);
        assert_eq!(percent_decode("%zz", false), None);
        assert_eq!(percent_decode("%4", false), None);
        assert_eq!(percent_decode("%+f", false), None);
        assert_eq!(percent_decode("%ff", false), None);
        assert_eq!(percent_decode("a+b", false).as_deref(), Some("a+b"));
    }
}
