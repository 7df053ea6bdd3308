//! HTML for the console: escaping (every value from data goes through
//! [`esc`]), the page frame (navigation, sign-out form), the security
//! headers every console response carries, and small pieces (times, JSON
//! values as text, forms with their CSRF field, the SVG sparkline).

use std::fmt::Write as _;

use amoskys_consensus::Role;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::Viewer;
use super::assets;

/// The Content-Security-Policy of every console response: our own script
/// and style only, nothing inline, no framing.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Percent-escapes a URL query value or path segment.
pub fn url(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Adds the console's security headers to `resp`.
pub fn secure(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// An HTML document with `status`.
pub fn html(status: StatusCode, doc: String) -> Response {
    secure(
        (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            doc,
        )
            .into_response(),
    )
}

/// The pages of the navigation: path, title.
const NAV: &[(&str, &str)] = &[
    ("/", "Overview"),
    ("/alerts", "Alerts"),
    ("/mesh", "Mesh"),
    ("/cluster", "Cluster"),
    ("/models", "Models"),
    ("/intel", "Intel"),
    ("/audit", "Audit"),
];

/// A whole page for a signed-in operator: `title` is its `<h1>`, `body`
/// HTML already escaped.
pub fn page(v: &Viewer, active: &str, title: &str, body: &str) -> Response {
    let mut nav = String::new();
    for (path, name) in NAV {
        let current = if *path == active {
            " aria-current=\"page\""
        } else {
            ""
        };
        let _ = write!(nav, "<li><a href=\"{path}\"{current}>{name}</a></li>");
    }
    let header = format!(
        "<header><p class=\"brand\">AMOSKYS <span class=\"node\">{node}</span></p>\
         <nav aria-label=\"Pages\"><ul>{nav}</ul></nav>\
         <form method=\"post\" action=\"/logout\" class=\"who\">{csrf}\
         <span>{name} ({role})</span> <button type=\"submit\">Sign out</button></form></header>",
        node = esc(&v.node_name),
        csrf = hidden_csrf(v),
        name = esc(&v.caller.name),
        role = v.caller.role,
    );
    html(StatusCode::OK, document(title, &header, body))
}

/// The HTML document around `header` and `body`.
pub fn document(title: &str, header: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t} · AMOSKYS</title><link rel=\"stylesheet\" href=\"{css}\">\
         <script src=\"{js}\" defer></script></head><body>{header}\
         <main><h1>{t}</h1>{body}</main></body></html>",
        t = esc(title),
        css = assets::CSS_PATH.as_str(),
        js = assets::JS_PATH.as_str(),
    )
}

/// A page that says why something was refused or failed.
pub fn problem(status: StatusCode, title: &str, message: &str) -> Response {
    let body = format!(
        "<p class=\"error\" role=\"alert\">{}</p><p><a href=\"/\">Back to the console</a></p>",
        esc(message)
    );
    html(status, document(title, "", &body))
}

/// The hidden CSRF field of every form.
pub fn hidden_csrf(v: &Viewer) -> String {
    format!(
        "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
        super::csrf::FIELD,
        esc(&v.csrf)
    )
}

/// A one-button form that posts to `action` with `fields` (name, value).
pub fn button_form(v: &Viewer, action: &str, fields: &[(&str, &str)], label: &str) -> String {
    let mut out = format!(
        "<form method=\"post\" action=\"{}\" class=\"inline\">{}",
        esc(action),
        hidden_csrf(v)
    );
    for (k, val) in fields {
        let _ = write!(
            out,
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
            esc(k),
            esc(val)
        );
    }
    let _ = write!(
        out,
        "<button type=\"submit\">{}</button></form>",
        esc(label)
    );
    out
}

/// Whether the signed-in operator has at least `role` (to offer a form).
pub fn may(v: &Viewer, role: Role) -> bool {
    v.caller.role >= role
}

/// Nanoseconds since the epoch as UTC, to the second.
pub fn when_ns(ns: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// A JSON value as text: strings bare, null as "-".
pub fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "-".into(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A time in nanoseconds (a JSON number) as UTC, or "-".
pub fn when(v: &serde_json::Value) -> String {
    v.as_u64().map_or_else(|| "-".into(), when_ns)
}

/// A peer id shortened for a table, the whole in its title.
pub fn short_id(id: &str) -> String {
    if id.len() <= 16 {
        return format!("<code>{}</code>", esc(id));
    }
    format!(
        "<code title=\"{}\">{}…{}</code>",
        esc(id),
        esc(&id[..8]),
        esc(&id[id.len() - 6..])
    )
}

/// A table of `rows` (each a list of HTML cells) under `headers`, or
/// `empty` as a paragraph.
pub fn table(caption: &str, headers: &[&str], rows: &[Vec<String>], empty: &str) -> String {
    if rows.is_empty() {
        return format!("<p class=\"empty\">{}</p>", esc(empty));
    }
    let mut out = format!("<table><caption>{}</caption><thead><tr>", esc(caption));
    for h in headers {
        let _ = write!(out, "<th scope=\"col\">{}</th>", esc(h));
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{cell}</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}

/// An SVG line of `values` (oldest first), `label` for screen readers.
pub fn sparkline(values: &[f64], label: &str) -> String {
    let (w, h) = (360.0, 60.0);
    let max = values.iter().copied().fold(0.0_f64, f64::max).max(1.0);
    let n = values.len().max(2) as f64 - 1.0;
    let mut points = String::new();
    for (i, v) in values.iter().enumerate() {
        let x = i as f64 * w / n;
        let y = h - 2.0 - (v / max) * (h - 4.0);
        let _ = write!(points, "{x:.1},{y:.1} ");
    }
    format!(
        "<svg class=\"spark\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"{l}\">\
         <title>{l}</title><polyline fill=\"none\" stroke=\"currentColor\" stroke-width=\"1.5\" points=\"{p}\"/></svg>",
        l = esc(label),
        p = points.trim_end(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_data_is_escaped() {
        assert_eq!(
            esc("<script>alert(\"x\")</script>&'"),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"
        );
        assert_eq!(esc("plain ü"), "plain ü");
        assert_eq!(url("a b&c=d/é"), "a+b%26c%3Dd%2F%C3%A9");
    }

    #[test]
    fn a_table_escapes_headers_and_keeps_cells() {
        let t = table("c<", &["<h>"], &[vec!["<b>x</b>".into()]], "none");
        assert!(t.contains("<caption>c&lt;</caption>"));
        assert!(t.contains("<th scope=\"col\">&lt;h&gt;</th>"));
        assert!(t.contains("<td><b>x</b></td>"));
        assert_eq!(
            table("c", &["h"], &[], "none <"),
            "<p class=\"empty\">none &lt;</p>"
        );
    }

    #[test]
    fn the_sparkline_scales_into_its_box() {
        let s = sparkline(&[0.0, 5.0, 10.0], "alerts");
        assert!(
            s.contains("points=\"0.0,58.0 180.0,30.0 360.0,2.0\""),
            "{s}"
        );
        assert!(sparkline(&[], "none").contains("<svg"));
    }
}
