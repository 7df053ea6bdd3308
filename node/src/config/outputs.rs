//! `[[outputs]]`: where alerts go besides the mesh (syslog, webhook, file),
//! and the checks of each entry's keys.

use serde::{Deserialize, Serialize};

use super::Problem;

/// Every key of one `[[outputs]]` entry, with its default.
pub const OUTPUT_TOML: &str = include_str!("output.toml");

/// Most outputs one node runs.
pub const MAX_OUTPUTS: usize = 32;

/// One output; keys absent from the file take the defaults of
/// [`OUTPUT_TOML`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputSection {
    pub name: String,
    pub kind: String,
    pub format: String,
    pub min_severity: String,
    pub rules: Vec<String>,
    pub origin: String,
    pub address: String,
    pub transport: String,
    pub facility: String,
    pub app_name: String,
    pub url: String,
    pub headers: Vec<String>,
    pub template: String,
    pub ca_file: String,
    pub timeout_ms: u64,
    pub path: String,
    pub rotate_kib: u64,
    pub keep_files: u64,
    pub retry_min_ms: u64,
    pub retry_max_ms: u64,
    pub spool_max_kib: u64,
}

impl Default for OutputSection {
    fn default() -> Self {
        Self {
            name: String::new(),
            kind: String::new(),
            format: "json".into(),
            min_severity: "low".into(),
            rules: Vec::new(),
            origin: "local".into(),
            address: String::new(),
            transport: "udp".into(),
            facility: "local0".into(),
            app_name: "amoskys".into(),
            url: String::new(),
            headers: Vec::new(),
            template: String::new(),
            ca_file: String::new(),
            timeout_ms: 5000,
            path: String::new(),
            rotate_kib: 102_400,
            keep_files: 5,
            retry_min_ms: 500,
            retry_max_ms: 60_000,
            spool_max_kib: 65_536,
        }
    }
}

/// Syslog facilities by name, with their numbers (RFC 5424 table 1).
pub const FACILITIES: [(&str, u8); 13] = [
    ("kern", 0),
    ("user", 1),
    ("daemon", 3),
    ("auth", 4),
    ("authpriv", 10),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

/// Every problem of the `[[outputs]]` entries.
pub(super) fn validate(outputs: &[OutputSection]) -> Vec<Problem> {
    let mut out = Vec::new();
    if outputs.len() > MAX_OUTPUTS {
        out.push(Problem::new(
            "outputs",
            format!("has {} outputs; at most {MAX_OUTPUTS}", outputs.len()),
        ));
    }
    let mut names = std::collections::HashSet::new();
    for (i, o) in outputs.iter().enumerate() {
        let key = |k: &str| format!("outputs[{i}].{k}");
        let mut bad = |k: &str, msg: String| out.push(Problem::new(&key(k), msg));
        let name_ok = !o.name.is_empty()
            && o.name.len() <= 64
            && o.name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !name_ok {
            bad(
                "name",
                format!(
                    "{:?} is not an output name (expected 1 to 64 letters, digits, '-' or '_')",
                    o.name
                ),
            );
        } else if !names.insert(o.name.as_str()) {
            bad("name", format!("{:?} is used by another output", o.name));
        }
        let formats: &[&str] = match o.kind.as_str() {
            "syslog" => &["json", "ocsf", "cef"],
            "webhook" | "file" => &["json", "ocsf"],
            other => {
                bad(
                    "kind",
                    format!("{other:?} is not \"syslog\", \"webhook\" or \"file\""),
                );
                &["json", "ocsf", "cef"]
            }
        };
        if !formats.contains(&o.format.as_str()) {
            bad(
                "format",
                format!(
                    "{:?} is not one of {} for a {} output",
                    o.format,
                    formats.join(", "),
                    if o.kind.is_empty() { "?" } else { &o.kind }
                ),
            );
        }
        if !amoskys_mesh::alert::SEVERITIES.contains(&o.min_severity.as_str()) {
            bad(
                "min_severity",
                format!(
                    "{:?} is not one of {}",
                    o.min_severity,
                    amoskys_mesh::alert::SEVERITIES.join(", ")
                ),
            );
        }
        if o.origin != "local" && o.origin != "any" {
            bad(
                "origin",
                format!("{:?} is not \"local\" or \"any\"", o.origin),
            );
        }
        for (j, rule) in o.rules.iter().enumerate() {
            if rule.is_empty() || rule.len() > 128 {
                out.push(Problem::new(
                    &format!("outputs[{i}].rules[{j}]"),
                    format!("{rule:?} is not a rule name (1 to 128 characters)"),
                ));
            }
        }
        let mut bad = |k: &str, msg: String| out.push(Problem::new(&key(k), msg));
        for (k, value, lo, hi) in [
            ("retry_min_ms", o.retry_min_ms, 10, 3_600_000),
            (
                "retry_max_ms",
                o.retry_max_ms,
                o.retry_min_ms.max(10),
                86_400_000,
            ),
            ("spool_max_kib", o.spool_max_kib, 16, 16 << 20),
            ("timeout_ms", o.timeout_ms, 100, 600_000),
            ("rotate_kib", o.rotate_kib, 16, 64 << 20),
            ("keep_files", o.keep_files, 0, 1000),
        ] {
            if !(lo..=hi).contains(&value) {
                bad(
                    k,
                    format!("{value} is out of range (expected {lo} to {hi})"),
                );
            }
        }
        // Keys of another kind, set away from their default, are mistakes.
        let d = OutputSection::default();
        let foreign: [(&str, &str, bool); 12] = [
            ("address", "syslog", o.address != d.address),
            ("transport", "syslog", o.transport != d.transport),
            ("facility", "syslog", o.facility != d.facility),
            ("app_name", "syslog", o.app_name != d.app_name),
            ("url", "webhook", o.url != d.url),
            ("headers", "webhook", o.headers != d.headers),
            ("template", "webhook", o.template != d.template),
            (
                "ca_file",
                "webhook",
                o.ca_file != d.ca_file && o.kind != "syslog",
            ),
            ("timeout_ms", "webhook", o.timeout_ms != d.timeout_ms),
            ("path", "file", o.path != d.path),
            ("rotate_kib", "file", o.rotate_kib != d.rotate_kib),
            ("keep_files", "file", o.keep_files != d.keep_files),
        ];
        for (k, kind, set) in foreign {
            if set && o.kind != kind && ["syslog", "webhook", "file"].contains(&o.kind.as_str()) {
                bad(
                    k,
                    format!(
                        "is a key of {kind} outputs; this output's kind is {}",
                        o.kind
                    ),
                );
            }
        }
        match o.kind.as_str() {
            "syslog" => syslog(o, &mut bad),
            "webhook" => webhook(o, &mut bad),
            "file" if o.path.is_empty() || !o.path.starts_with('/') => {
                bad("path", format!("{:?} is not an absolute file path", o.path))
            }
            _ => {}
        }
    }
    out
}

fn syslog(o: &OutputSection, bad: &mut impl FnMut(&str, String)) {
    if o.address.is_empty() {
        bad(
            "address",
            "is empty; expected the collector as HOST:PORT (e.g. 192.0.2.5:514)".into(),
        );
    } else if let Err(p) = super::host_port("address", &o.address) {
        bad(
            "address",
            p.message.replace("a peer address", "a collector address"),
        );
    }
    if !["udp", "tcp", "tls"].contains(&o.transport.as_str()) {
        bad(
            "transport",
            format!("{:?} is not \"udp\", \"tcp\" or \"tls\"", o.transport),
        );
    }
    ca_file(o, bad);
    if !FACILITIES.iter().any(|(n, _)| *n == o.facility) {
        let names: Vec<&str> = FACILITIES.iter().map(|(n, _)| *n).collect();
        bad(
            "facility",
            format!("{:?} is not one of {}", o.facility, names.join(", ")),
        );
    }
    // RFC 5424 APP-NAME: 1 to 48 printable US-ASCII characters.
    if o.app_name.is_empty()
        || o.app_name.len() > 48
        || !o.app_name.bytes().all(|b| (33..=126).contains(&b))
    {
        bad(
            "app_name",
            format!(
                "{:?} is not an APP-NAME (1 to 48 printable ASCII characters, no spaces)",
                o.app_name
            ),
        );
    }
}

fn webhook(o: &OutputSection, bad: &mut impl FnMut(&str, String)) {
    match reqwest::Url::parse(&o.url) {
        Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.host().is_some() => {}
        _ => bad(
            "url",
            format!(
                "{:?} is not an http:// or https:// URL (e.g. https://siem.example/hook)",
                o.url
            ),
        ),
    }
    for (j, h) in o.headers.iter().enumerate() {
        let parsed = h.split_once(':').and_then(|(n, v)| {
            let name = reqwest::header::HeaderName::from_bytes(n.trim().as_bytes()).ok()?;
            let value = reqwest::header::HeaderValue::from_str(v.trim()).ok()?;
            Some((name, value))
        });
        if parsed.is_none() {
            bad(
                &format!("headers[{j}]"),
                "is not a header \"Name: value\" (e.g. \"Authorization: Bearer TOKEN\")".into(),
            );
        }
    }
    ca_file(o, bad);
    template(o, bad);
}

fn template(o: &OutputSection, bad: &mut impl FnMut(&str, String)) {
    use crate::outputs::format::{TEMPLATE_FIELDS, unknown_placeholders};
    if o.template.is_empty() {
        return;
    }
    let unknown = unknown_placeholders(&o.template);
    if !unknown.is_empty() {
        bad(
            "template",
            format!(
                "has unknown placeholders {}; expected {{{{field}}}} with field one of {}",
                unknown.join(", "),
                TEMPLATE_FIELDS.join(", ")
            ),
        );
        return;
    }
    // Filled with plain text, the template must be JSON.
    let mut sample = o.template.clone();
    for f in TEMPLATE_FIELDS {
        sample = sample.replace(&format!("{{{{{f}}}}}"), "x");
    }
    if let Err(e) = serde_json::from_str::<serde_json::Value>(&sample) {
        bad("template", format!("is not JSON once filled in: {e}"));
    }
    if o.format != "json" {
        bad(
            "format",
            "is ignored with a template; leave it \"json\"".into(),
        );
    }
}

fn ca_file(o: &OutputSection, bad: &mut impl FnMut(&str, String)) {
    if !o.ca_file.is_empty() && std::fs::metadata(&o.ca_file).is_err() {
        bad(
            "ca_file",
            format!(
                "cannot read {:?}; expected a PEM file of CA certificates",
                o.ca_file
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syslog_output() -> OutputSection {
        OutputSection {
            name: "siem".into(),
            kind: "syslog".into(),
            address: "127.0.0.1:514".into(),
            ..OutputSection::default()
        }
    }

    #[test]
    fn the_defaults_match_the_file_and_a_plain_syslog_output_is_valid() {
        let from_file: OutputSection = toml::from_str(OUTPUT_TOML).expect("output.toml parses");
        assert_eq!(from_file, OutputSection::default());
        assert_eq!(validate(&[syslog_output()]), Vec::new());
    }

    #[test]
    fn every_problem_names_its_key() {
        let wrong = OutputSection {
            name: "a b".into(),
            format: "xml".into(),
            url: "https://x.example/".into(),
            transport: "sctp".into(),
            min_severity: "severe".into(),
            ..syslog_output()
        };
        let keys: Vec<String> = validate(&[wrong]).into_iter().map(|p| p.key).collect();
        for k in ["name", "format", "url", "transport", "min_severity"] {
            assert!(keys.contains(&format!("outputs[0].{k}")), "{k} in {keys:?}");
        }
    }

    #[test]
    fn a_webhook_needs_a_url_and_names_must_differ() {
        let hook = OutputSection {
            name: "siem".into(),
            kind: "webhook".into(),
            url: "ftp://x".into(),
            headers: vec!["no colon".into()],
            ..OutputSection::default()
        };
        let keys: Vec<String> = validate(&[syslog_output(), hook])
            .into_iter()
            .map(|p| p.key)
            .collect();
        assert_eq!(
            keys,
            ["outputs[1].name", "outputs[1].url", "outputs[1].headers[0]"]
        );
    }
}
