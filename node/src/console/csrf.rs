//! Cross-site request forgery: every console `POST` must come from a page
//! of this node (its `Origin`, when the browser sends one, names the host
//! it was sent to) and carry its session's token in the form field
//! [`FIELD`]. Both checks are pure.

use axum::http::HeaderMap;
use axum::http::header::{HOST, ORIGIN};

/// The name of the hidden form field that carries the token.
pub const FIELD: &str = "csrf";

/// Whether the request's `Origin` (and `Sec-Fetch-Site`) allow it: an
/// `Origin` must be `http(s)://<Host>`; a cross-site fetch is refused.
/// A request without either header (not a browser's) is left to the
/// token.
pub fn same_origin(headers: &HeaderMap) -> Result<(), String> {
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = site.to_str().unwrap_or_default();
        if site != "same-origin" && site != "none" {
            return Err(format!("a {site} request may not change anything here"));
        }
    }
    let Some(origin) = headers.get(ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or_default();
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let authority = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    match authority {
        Some(a) if !host.is_empty() && a.eq_ignore_ascii_case(host) => Ok(()),
        _ => Err(format!(
            "the form was sent from {origin:?}, not from this node's pages ({host})"
        )),
    }
}

/// The token in a form body (`application/x-www-form-urlencoded`), if any.
pub fn token_of(body: &[u8]) -> Option<String> {
    form_urlencoded::parse(body)
        .find(|(k, _)| k == FIELD)
        .map(|(_, v)| v.into_owned())
}

/// Whether `body` carries `expected` as its token (constant time).
pub fn check(body: &[u8], expected: &str) -> Result<(), String> {
    match token_of(body) {
        Some(t) if crate::auth::ct_eq(t.as_bytes(), expected.as_bytes()) => Ok(()),
        Some(_) => Err("the form's token is not this session's; reload the page".into()),
        None => Err("the form has no token; reload the page".into()),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn the_origin_must_be_the_host() {
        assert!(same_origin(&headers(&[("host", "10.0.0.1:8080")])).is_ok());
        let ok = [
            ("host", "10.0.0.1:8080"),
            ("origin", "https://10.0.0.1:8080"),
        ];
        assert!(same_origin(&headers(&ok)).is_ok());
        let evil = [
            ("host", "10.0.0.1:8080"),
            ("origin", "https://evil.example"),
        ];
        assert!(same_origin(&headers(&evil)).is_err());
        let null = [("host", "10.0.0.1:8080"), ("origin", "null")];
        assert!(same_origin(&headers(&null)).is_err());
        let cross = [("host", "h"), ("sec-fetch-site", "cross-site")];
        assert!(same_origin(&headers(&cross)).is_err());
    }

    #[test]
    fn the_token_must_be_the_sessions() {
        assert!(check(b"a=1&csrf=abc", "abc").is_ok());
        assert!(check(b"csrf=abd", "abc").is_err());
        assert!(check(b"a=1", "abc").is_err());
    }
}
