//! Webhook output: each alert as one HTTP(S) POST of JSON (the signed alert,
//! OCSF, or a template of the message a chat service takes). A 2xx answer delivers it; 408, 429, 5xx and network errors
//! are retried; any other answer refuses it for good.

use std::time::Duration;

use amoskys_mesh::Alert;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};

use super::DeliveryError;
use super::format::Format;
use crate::config::OutputSection;

/// One HTTP receiver.
#[derive(Debug)]
pub struct WebhookSink {
    url: String,
    format: Format,
    template: String,
    http: reqwest::Client,
}

impl WebhookSink {
    /// The sink of a validated `[[outputs]]` entry.
    pub fn new(o: &OutputSection) -> Result<Self, (&'static str, String)> {
        let mut headers = HeaderMap::new();
        for h in &o.headers {
            let parsed = h.split_once(':').and_then(|(n, v)| {
                Some((
                    HeaderName::from_bytes(n.trim().as_bytes()).ok()?,
                    HeaderValue::from_str(v.trim()).ok()?,
                ))
            });
            let (name, value) = parsed.ok_or(("headers", format!("{h:?} is not a header")))?;
            headers.insert(name, value);
        }
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_millis(o.timeout_ms))
            .user_agent(concat!("amoskys/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers);
        if !o.ca_file.is_empty() {
            let tls = trusting(&o.ca_file, vec![b"http/1.1".to_vec()])?;
            builder = builder.tls_backend_preconfigured(tls);
        }
        let http = builder
            .build()
            .map_err(|e| ("url", format!("cannot set up the HTTP client: {e}")))?;
        Ok(Self {
            url: o.url.clone(),
            format: Format::parse(&o.format),
            template: o.template.clone(),
            http,
        })
    }

    /// Posts one alert.
    pub async fn deliver(&mut self, alert: &Alert) -> Result<(), DeliveryError> {
        let body = if self.template.is_empty() {
            self.format.render(alert)
        } else {
            super::format::fill(&self.template, alert)
        };
        let answer = self
            .http
            .post(&self.url)
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| DeliveryError::Transient(cause(&e)))?;
        let status = answer.status();
        if status.is_success() {
            return Ok(());
        }
        let text = answer.text().await.unwrap_or_default();
        let why = format!(
            "{} answered {status}: {}",
            self.url,
            text.chars().take(200).collect::<String>().trim()
        );
        let code = status.as_u16();
        if status.is_client_error() && code != 408 && code != 429 {
            Err(DeliveryError::Permanent(why))
        } else {
            Err(DeliveryError::Transient(why))
        }
    }
}

/// A request error with its innermost cause ("connection refused").
fn cause(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

/// A TLS client trusting only the CA certificates of a PEM file, offering
/// `alpn`.
pub(super) fn trusting(
    path: &str,
    alpn: Vec<Vec<u8>>,
) -> Result<rustls::ClientConfig, (&'static str, String)> {
    let mut config = crate::tls::client_trusting(std::path::Path::new(path))
        .map_err(|why| ("ca_file", format!("{path:?}: {why}")))?;
    config.alpn_protocols = alpn;
    Ok(config)
}
