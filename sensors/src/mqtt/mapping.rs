//! From an MQTT message to a device reading: which configured topic filter
//! the topic matches, the device id it names, and the metrics read from the
//! JSON payload by JSON pointers.

use std::collections::BTreeMap;

/// One subscription and how its messages become readings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMapping {
    /// An MQTT topic filter (`+` one level, `#` the rest), e.g.
    /// `plant/+/telemetry`.
    pub filter: String,
    /// The device id: literal text where `{N}` stands for the topic's Nth
    /// level, counting from 1, e.g. `{2}` or `plant-{2}`.
    pub device: String,
    /// Metric name → JSON pointer (RFC 6901) into the payload, e.g.
    /// `temperature = "/env/temp"`.
    pub metrics: BTreeMap<String, String>,
}

/// Why a message gave no reading.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error("payload is not JSON: {0}")]
    NotJson(String),
    #[error("payload has none of the mapped metrics ({0})")]
    NoMetric(String),
    #[error("metric {metric:?} at {pointer} is not a number")]
    NotNumber { metric: String, pointer: String },
    #[error("the device id is empty")]
    NoDevice,
}

/// A reading of one device from one message.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub device: String,
    pub metrics: BTreeMap<String, f64>,
}

/// What is wrong with a topic filter, if anything (MQTT 3.1.1 §4.7).
pub fn filter_problem(filter: &str) -> Option<String> {
    if filter.is_empty() {
        return Some("is empty".into());
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i + 1 != levels.len()) {
            return Some("'#' must be a whole level and the last one".into());
        }
        if level.contains('+') && *level != "+" {
            return Some("'+' must be a whole level".into());
        }
    }
    None
}

/// What is wrong with a device template for `filter`, if anything.
pub fn device_problem(template: &str, filter: &str) -> Option<String> {
    if template.is_empty() {
        return Some("is empty".into());
    }
    let levels = filter.split('/').count();
    let open_ended = filter.ends_with('#');
    for n in placeholders(template) {
        match n {
            None => return Some("a '{' is not closed by '}' around a level number".into()),
            Some(0) => return Some("levels count from 1: {0} names none".into()),
            Some(n) if !open_ended && n > levels => {
                return Some(format!("{{{n}}}: the filter has {levels} levels"));
            }
            Some(_) => {}
        }
    }
    None
}

/// The level numbers of a template's `{N}`; `None` for a malformed one.
fn placeholders(template: &str) -> Vec<Option<usize>> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                out.push(after[..close].parse().ok());
                rest = &after[close + 1..];
            }
            None => {
                out.push(None);
                break;
            }
        }
    }
    out
}

/// Whether `topic` matches the MQTT `filter`.
pub fn matches(filter: &str, topic: &str) -> bool {
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

impl TopicMapping {
    /// The device id this topic names.
    pub fn device_of(&self, topic: &str) -> Result<String, MappingError> {
        let levels: Vec<&str> = topic.split('/').collect();
        let mut out = String::new();
        let mut rest = self.device.as_str();
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let Some(close) = after.find('}') else {
                break;
            };
            let n: usize = after[..close].parse().unwrap_or(0);
            out.push_str(n.checked_sub(1).and_then(|i| levels.get(i)).unwrap_or(&""));
            rest = &after[close + 1..];
        }
        out.push_str(rest);
        if out.is_empty() {
            return Err(MappingError::NoDevice);
        }
        Ok(out)
    }

    /// The reading in `payload`: every mapped metric present in it. A
    /// present metric that is not a number (or a boolean, read as 0/1) is an
    /// error; so is a payload with none of them.
    pub fn read(&self, topic: &str, payload: &[u8]) -> Result<Reading, MappingError> {
        let json: serde_json::Value =
            serde_json::from_slice(payload).map_err(|e| MappingError::NotJson(e.to_string()))?;
        let mut metrics = BTreeMap::new();
        for (name, pointer) in &self.metrics {
            let Some(value) = json.pointer(pointer) else {
                continue;
            };
            let number = match value {
                serde_json::Value::Number(n) => n.as_f64(),
                serde_json::Value::Bool(b) => Some(f64::from(u8::from(*b))),
                _ => None,
            };
            match number {
                Some(x) if x.is_finite() => {
                    metrics.insert(name.clone(), x);
                }
                _ => {
                    return Err(MappingError::NotNumber {
                        metric: name.clone(),
                        pointer: pointer.clone(),
                    });
                }
            }
        }
        if metrics.is_empty() && !self.metrics.is_empty() {
            let names: Vec<&str> = self.metrics.keys().map(String::as_str).collect();
            return Err(MappingError::NoMetric(names.join(", ")));
        }
        Ok(Reading {
            device: self.device_of(topic)?,
            metrics,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping() -> TopicMapping {
        TopicMapping {
            filter: "plant/+/telemetry".into(),
            device: "plant-{2}".into(),
            metrics: [
                ("temp".to_string(), "/env/temp".to_string()),
                ("on".to_string(), "/on".to_string()),
            ]
            .into(),
        }
    }

    #[test]
    fn filters_match_like_a_broker() {
        assert!(matches("a/+/c", "a/b/c"));
        assert!(!matches("a/+/c", "a/b/d"));
        assert!(!matches("a/+/c", "a/b/c/d"));
        assert!(matches("a/#", "a/b/c"));
        assert!(matches("a/#", "a"));
        assert!(matches("#", "x/y"));
        assert!(!matches("a/b", "a"));
    }

    #[test]
    fn bad_filters_and_templates_are_named() {
        assert!(filter_problem("a/#/b").is_some());
        assert!(filter_problem("a/b+").is_some());
        assert!(filter_problem("").is_some());
        assert!(filter_problem("a/+/#").is_none());
        assert!(device_problem("{4}", "a/+/c").is_some());
        assert!(device_problem("{0}", "a/+").is_some());
        assert!(device_problem("x{2", "a/+").is_some());
        assert!(device_problem("{9}", "a/#").is_none());
        assert!(device_problem("d-{2}", "a/+").is_none());
    }

    #[test]
    fn a_payload_becomes_a_reading_of_the_named_device() {
        let r = mapping()
            .read(
                "plant/7/telemetry",
                br#"{"env":{"temp":21.5},"on":true,"x":"y"}"#,
            )
            .expect("reads");
        assert_eq!(r.device, "plant-7");
        assert_eq!(r.metrics["temp"], 21.5);
        assert_eq!(r.metrics["on"], 1.0);
    }

    #[test]
    fn malformed_payloads_say_why() {
        let m = mapping();
        assert!(matches!(
            m.read("plant/7/telemetry", b"{not json"),
            Err(MappingError::NotJson(_))
        ));
        assert!(matches!(
            m.read("plant/7/telemetry", br#"{"other":1}"#),
            Err(MappingError::NoMetric(_))
        ));
        assert!(matches!(
            m.read("plant/7/telemetry", br#"{"env":{"temp":"hot"}}"#),
            Err(MappingError::NotNumber { .. })
        ));
    }
}
