//! `[sensors.mqtt]`: the broker the MQTT sensor subscribes to, how each
//! topic's messages become device readings, and the checks of its keys.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use amoskys_sensors::mqtt::{MqttConfig, Protocol, TopicMapping, mapping};
use serde::{Deserialize, Serialize};

use super::Problem;
use super::validate::{host_port, range};

/// Every key of one `[[sensors.mqtt.topics]]` entry, with its default.
pub const MQTT_TOPIC_TOML: &str = include_str!("mqtt_topic.toml");

/// Most subscriptions one node holds.
const MAX_TOPICS: usize = 256;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttSection {
    pub enabled: bool,
    pub broker: String,
    pub protocol: String,
    pub client_id: String,
    pub username: String,
    pub password: String,
    pub tls: bool,
    pub ca_file: String,
    pub keep_alive_secs: u64,
    pub qos: u64,
    pub max_payload_bytes: u64,
    pub max_backoff_ms: u64,
    pub topics: Vec<MqttTopicSection>,
}

/// One subscription; keys absent from the file take the defaults of
/// [`MQTT_TOPIC_TOML`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttTopicSection {
    pub filter: String,
    pub device: String,
    pub metrics: Vec<String>,
}

impl MqttSection {
    /// Whether the sensor runs: enabled, with a broker and a topic.
    pub fn active(&self) -> bool {
        self.enabled && !self.broker.is_empty() && !self.topics.is_empty()
    }

    /// Every problem with the section; none when it is inactive.
    pub fn validate(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut bad = |k: &str, m: String| out.push(Problem::new(&format!("sensors.mqtt.{k}"), m));
        if !self.enabled || (self.broker.is_empty() && self.topics.is_empty()) {
            return out;
        }
        if host_port("", &self.broker).is_err() {
            bad(
                "broker",
                format!(
                    "{:?} is not a broker address (expected HOST:PORT, e.g. 127.0.0.1:1883 or mqtt.site:8883)",
                    self.broker
                ),
            );
        }
        if self.topics.is_empty() {
            bad(
                "topics",
                "is empty; expected at least one [[sensors.mqtt.topics]] with a filter and a device".into(),
            );
        }
        if !["3.1.1", "5"].contains(&self.protocol.as_str()) {
            bad(
                "protocol",
                format!("{:?} is not \"3.1.1\" or \"5\"", self.protocol),
            );
        }
        if self.username.is_empty() != self.password.is_empty() {
            bad(
                "password",
                "username and password go together; set both or neither".into(),
            );
        }
        if self.tls && self.ca_file.is_empty() {
            bad(
                "ca_file",
                "is empty; with tls = true expected a PEM file of the CAs that sign the broker's certificate".into(),
            );
        }
        if !self.tls && !self.ca_file.is_empty() {
            bad("ca_file", "is set but tls is false".into());
        }
        for (key, value, min, max) in [
            ("keep_alive_secs", self.keep_alive_secs, 5, 3_600),
            ("qos", self.qos, 0, 1),
            ("max_payload_bytes", self.max_payload_bytes, 16, 16 << 20),
            ("max_backoff_ms", self.max_backoff_ms, 100, 3_600_000),
        ] {
            if let Err(p) = range(&format!("sensors.mqtt.{key}"), value, min, max) {
                out.push(p);
            }
        }
        if self.topics.len() > MAX_TOPICS {
            out.push(Problem::new(
                "sensors.mqtt.topics",
                format!("{} entries; at most {MAX_TOPICS}", self.topics.len()),
            ));
        }
        for (i, t) in self.topics.iter().enumerate() {
            let key = |k: &str| format!("sensors.mqtt.topics[{i}].{k}");
            if let Some(why) = mapping::filter_problem(&t.filter) {
                out.push(Problem::new(
                    &key("filter"),
                    format!("{:?}: {why}", t.filter),
                ));
            }
            if let Some(why) = mapping::device_problem(&t.device, &t.filter) {
                out.push(Problem::new(
                    &key("device"),
                    format!("{:?}: {why}", t.device),
                ));
            }
            for (j, m) in t.metrics.iter().enumerate() {
                if let Err(why) = metric(m) {
                    out.push(Problem::new(&format!("{}[{j}]", key("metrics")), why));
                }
            }
        }
        out
    }

    /// The sensor's settings for node `host`. Call after
    /// [`MqttSection::validate`] passed; the CA file is read here.
    pub fn sensor_config(&self, host: &str) -> Result<MqttConfig, Problem> {
        let tls = if self.tls {
            let config = crate::tls::client_trusting(std::path::Path::new(&self.ca_file)).map_err(
                |why| Problem::new("sensors.mqtt.ca_file", format!("{:?}: {why}", self.ca_file)),
            )?;
            Some(Arc::new(config))
        } else {
            None
        };
        let tail = host.len()
            - host
                .chars()
                .rev()
                .take(12)
                .map(char::len_utf8)
                .sum::<usize>();
        Ok(MqttConfig {
            host: host.to_owned(),
            broker: self.broker.clone(),
            protocol: if self.protocol == "5" {
                Protocol::V5
            } else {
                Protocol::V311
            },
            client_id: if self.client_id.is_empty() {
                format!("amoskys-{}", &host[tail..])
            } else {
                self.client_id.clone()
            },
            credentials: (!self.username.is_empty())
                .then(|| (self.username.clone(), self.password.clone())),
            tls,
            keep_alive_secs: self.keep_alive_secs,
            qos: u8::try_from(self.qos).unwrap_or(0),
            max_payload_bytes: usize::try_from(self.max_payload_bytes).unwrap_or(usize::MAX),
            max_backoff: Duration::from_millis(self.max_backoff_ms),
            topics: self
                .topics
                .iter()
                .map(|t| TopicMapping {
                    filter: t.filter.clone(),
                    device: t.device.clone(),
                    metrics: t
                        .metrics
                        .iter()
                        .filter_map(|m| metric(m).ok())
                        .collect::<BTreeMap<_, _>>(),
                })
                .collect(),
        })
    }
}

/// `NAME=POINTER` split, or why it is not one.
fn metric(text: &str) -> Result<(String, String), String> {
    let Some((name, pointer)) = text.split_once('=') else {
        return Err(format!(
            "{text:?} is not NAME=POINTER (e.g. \"temperature=/env/temp\")"
        ));
    };
    let name = name.trim();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!(
            "{name:?}: a metric name is letters, digits and '_'"
        ));
    }
    let pointer = pointer.trim();
    if !(pointer.is_empty() || pointer.starts_with('/')) {
        return Err(format!(
            "{pointer:?} is not a JSON pointer (it starts with '/', or is empty for the whole payload)"
        ));
    }
    Ok((name.to_owned(), pointer.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section() -> MqttSection {
        MqttSection {
            enabled: true,
            broker: "127.0.0.1:1883".into(),
            protocol: "3.1.1".into(),
            client_id: String::new(),
            username: String::new(),
            password: String::new(),
            tls: false,
            ca_file: String::new(),
            keep_alive_secs: 30,
            qos: 0,
            max_payload_bytes: 65_536,
            max_backoff_ms: 30_000,
            topics: vec![MqttTopicSection {
                filter: "plant/+/telemetry".into(),
                device: "{2}".into(),
                metrics: vec!["temp=/temp".into()],
            }],
        }
    }

    #[test]
    fn a_plain_section_is_valid_and_the_topic_file_holds_the_defaults() {
        assert_eq!(section().validate(), Vec::new());
        let from_file: MqttTopicSection =
            toml::from_str(MQTT_TOPIC_TOML).expect("mqtt_topic.toml parses");
        assert_eq!(from_file, MqttTopicSection::default());
        let c = section()
            .sensor_config("node-abcdef0123456789")
            .expect("config");
        // Peer ids share their first characters; the last ones differ.
        assert_eq!(c.client_id, "amoskys-ef0123456789");
        assert_eq!(c.topics[0].metrics["temp"], "/temp");
    }

    #[test]
    fn every_problem_names_its_key() {
        let mut s = section();
        s.broker = "no port".into();
        s.protocol = "4".into();
        s.username = "u".into();
        s.tls = true;
        s.qos = 2;
        s.topics[0].filter = "a/#/b".into();
        s.topics[0].device = "{7}".into();
        s.topics[0].metrics = vec!["temp".into(), "t=x".into()];
        let keys: Vec<String> = s.validate().into_iter().map(|p| p.key).collect();
        for k in [
            "broker",
            "protocol",
            "password",
            "ca_file",
            "qos",
            "topics[0].filter",
            "topics[0].device",
            "topics[0].metrics[0]",
            "topics[0].metrics[1]",
        ] {
            assert!(
                keys.contains(&format!("sensors.mqtt.{k}")),
                "{k} in {keys:?}"
            );
        }
    }
}
