//! What an output writes for one alert: the message (the signed alert's
//! JSON, OCSF or CEF) and the RFC 5424 syslog line around it. Pure
//! functions, no I/O.

use std::time::{Duration, UNIX_EPOCH};

use amoskys_mesh::Alert;

/// The message body of an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The signed alert as the node stores it (verifiable anywhere).
    Json,
    /// An OCSF 1.1 Detection Finding, as `alerts export --format ocsf`.
    Ocsf,
    /// ArcSight Common Event Format, mapped as docs/OUTPUTS.md lists.
    Cef,
}

impl Format {
    /// The format of a validated `format` key.
    pub fn parse(name: &str) -> Format {
        match name {
            "ocsf" => Format::Ocsf,
            "cef" => Format::Cef,
            _ => Format::Json,
        }
    }

    /// The alert in this format, one line.
    pub fn render(self, alert: &Alert) -> String {
        match self {
            Format::Json => String::from_utf8_lossy(&alert.encode()).into_owned(),
            Format::Ocsf => crate::api::ocsf(alert).to_string(),
            Format::Cef => cef(alert),
        }
    }
}

/// The placeholders of a webhook `template`, each replaced by the alert's
/// value, JSON-escaped (without quotes).
pub const TEMPLATE_FIELDS: [&str; 10] = [
    "id",
    "origin",
    "time",
    "severity",
    "category",
    "technique",
    "rule",
    "score",
    "subject",
    "evidence",
];

/// A webhook body from `template`: `{{field}}` replaced by the alert's
/// field, JSON-escaped, for the message formats of chat services. Unknown
/// placeholders stay as they are (validation refuses them).
pub fn fill(template: &str, alert: &Alert) -> String {
    let b = &alert.body;
    let value = |field: &str| -> Option<String> {
        Some(match field {
            "id" => alert.id.clone(),
            "origin" => alert.origin.clone(),
            "time" => amoskys_mesh::alert::rfc3339(b.time_ns),
            "severity" => b.severity.clone(),
            "category" => b.category.clone(),
            "technique" => b.technique.clone(),
            "rule" => b.rule.clone(),
            "score" => format!("{:.2}", b.score),
            "subject" => b.subject.clone(),
            "evidence" => {
                let facts: Vec<String> =
                    b.evidence.iter().map(|(k, v)| format!("{k}={v}")).collect();
                facts.join(", ")
            }
            _ => return None,
        })
    };
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after
            .find("}}")
            .and_then(|end| Some((end, value(after[..end].trim())?)))
        {
            Some((end, v)) => {
                let quoted = serde_json::Value::String(v).to_string();
                out.push_str(&quoted[1..quoted.len() - 1]);
                rest = &after[end + 2..];
            }
            None => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The placeholders of `template` that are not fields.
pub fn unknown_placeholders(template: &str) -> Vec<String> {
    template
        .split("{{")
        .skip(1)
        .filter_map(|part| {
            part.split_once("}}")
                .map(|(name, _)| name.trim().to_owned())
        })
        .filter(|name| !TEMPLATE_FIELDS.contains(&name.as_str()))
        .collect()
}

/// CEF severity (0 to 10) of an alert severity.
pub fn cef_severity(severity: &str) -> u8 {
    match severity {
        "low" => 3,
        "medium" => 5,
        "high" => 8,
        "critical" => 10,
        _ => 0,
    }
}

/// Syslog severity (RFC 5424: 2 critical, 3 error, 4 warning, 5 notice).
pub fn syslog_severity(severity: &str) -> u8 {
    match severity {
        "critical" => 2,
        "high" => 3,
        "medium" => 4,
        _ => 5,
    }
}

/// `CEF:0|Vendor|Product|Version|SignatureID|Name|Severity|Extension`.
pub fn cef(alert: &Alert) -> String {
    let b = &alert.body;
    let mut ext: Vec<(&str, String)> = vec![
        ("rt", (b.time_ns / 1_000_000).to_string()),
        ("externalId", alert.id.clone()),
        ("cat", b.category.clone()),
        ("cs1Label", "technique".into()),
        ("cs1", b.technique.clone()),
        ("cs2Label", "subject".into()),
        ("cs2", b.subject.clone()),
        ("cs3Label", "origin".into()),
        ("cs3", alert.origin.clone()),
        ("cn1Label", "seq".into()),
        ("cn1", b.seq.to_string()),
        ("cfp1Label", "score".into()),
        ("cfp1", format!("{:.3}", b.score)),
    ];
    if let Some(ip) = b.subject.strip_prefix("source_ip:")
        && ip.parse::<std::net::IpAddr>().is_ok()
    {
        ext.push(("src", ip.to_owned()));
    }
    if !b.evidence.is_empty() {
        let facts: Vec<String> = b.evidence.iter().map(|(k, v)| format!("{k}={v}")).collect();
        ext.push(("msg", facts.join(", ")));
    }
    let ext: Vec<String> = ext
        .into_iter()
        .map(|(k, v)| format!("{k}={}", cef_value(&v)))
        .collect();
    format!(
        "CEF:0|AMOSKYS|AMOSKYS|{}|{}|{}|{}|{}",
        cef_header(crate::VERSION),
        cef_header(&b.rule),
        cef_header(&format!("{} on {}", b.rule, b.subject)),
        cef_severity(&b.severity),
        ext.join(" ")
    )
}

/// A CEF header field: `\` and `|` escaped, no line breaks.
fn cef_header(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\r', '\n'], " ")
}

/// A CEF extension value: `\` and `=` escaped, line breaks as `\n`.
fn cef_value(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('=', "\\=")
        .replace("\r\n", "\\n")
        .replace(['\r', '\n'], "\\n")
}

/// The fixed parts of an output's RFC 5424 header.
#[derive(Debug, Clone)]
pub struct SyslogHeader {
    pub facility: u8,
    pub hostname: String,
    pub app_name: String,
    pub procid: String,
}

impl SyslogHeader {
    pub fn new(facility: u8, hostname: &str, app_name: &str) -> Self {
        Self {
            facility,
            hostname: header_field(hostname, 255),
            app_name: header_field(app_name, 48),
            procid: std::process::id().to_string(),
        }
    }

    /// `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG`: the alert's
    /// time in UTC with microseconds, the rule as MSGID, no structured data.
    pub fn line(&self, alert: &Alert, msg: &str) -> String {
        let b = &alert.body;
        let pri = u16::from(self.facility) * 8 + u16::from(syslog_severity(&b.severity));
        let time = humantime::format_rfc3339_micros(UNIX_EPOCH + Duration::from_nanos(b.time_ns));
        format!(
            "<{pri}>1 {time} {} {} {} {} - {msg}",
            self.hostname,
            self.app_name,
            self.procid,
            header_field(&b.rule, 32)
        )
    }
}

/// An RFC 5424 header field: printable US-ASCII without spaces, at most
/// `max` characters; `-` (the nil value) when nothing is left.
fn header_field(s: &str, max: usize) -> String {
    let f: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if f.is_empty() { "-".into() } else { f }
}

/// RFC 6587 octet-counted framing: `LEN SP MSG`.
pub fn octet_counted(line: &str) -> Vec<u8> {
    let mut out = format!("{} ", line.len()).into_bytes();
    out.extend_from_slice(line.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(rule: &str, subject: &str) -> Alert {
        Alert::sign(
            amoskys_mesh::AlertBody {
                seq: 7,
                time_ns: 1_800_000_000_123_456_789,
                severity: "high".into(),
                category: "discovery".into(),
                technique: "T1046".into(),
                rule: rule.into(),
                score: 0.9,
                subject: subject.into(),
                evidence: vec![("ports".into(), "64".into())],
            },
            &ed25519_dalek::SigningKey::from_bytes(&[3; 32]),
        )
    }

    #[test]
    fn a_syslog_line_has_every_rfc5424_header_field() {
        let a = alert("port_scan_vertical", "source_ip:192.0.2.7");
        let h = SyslogHeader::new(16, "node a", "amoskys");
        let line = h.line(&a, "hello");
        // local0 (16) * 8 + error (3) = 131.
        let expected = format!(
            "<131>1 2027-01-15T08:00:00.123456Z nodea amoskys {} port_scan_vertical - hello",
            std::process::id()
        );
        assert_eq!(line, expected);
        assert_eq!(octet_counted("abc"), b"3 abc");
    }

    #[test]
    fn a_template_takes_escaped_fields_and_stays_json() {
        let a = alert("odd\"rule", "source_ip:192.0.2.7");
        let body = fill(
            r#"{"text": "{{severity}}: {{rule}} on {{ subject }} ({{nope}})"}"#,
            &a,
        );
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(
            v["text"],
            "high: odd\"rule on source_ip:192.0.2.7 ({{nope}})"
        );
        assert_eq!(unknown_placeholders("{{rule}} {{nope}}"), ["nope"]);
    }

    #[test]
    fn cef_escapes_its_separators_and_maps_the_source() {
        let a = alert("odd|rule", "source_ip:192.0.2.7");
        let line = cef(&a);
        assert!(line.starts_with("CEF:0|AMOSKYS|AMOSKYS|"), "{line}");
        assert!(line.contains("|odd\\|rule|odd\\|rule on source_ip:192.0.2.7|8|"));
        assert!(line.contains(" src=192.0.2.7"), "{line}");
        assert!(line.contains(" msg=ports\\=64"), "{line}");
        assert!(line.contains(&format!("externalId={}", a.id)));
    }
}
