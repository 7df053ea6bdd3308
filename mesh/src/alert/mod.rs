//! Signed alerts: the one record about detections that crosses the network.
//!
//! An alert carries its own signature, so it can be verified after relaying,
//! from storage, or after crossing an air gap. The signature is ed25519 over
//! the alert's canonical bytes (see [`Alert::canonical_bytes`] and
//! docs/ALERTS.md), never over JSON, whose encoding is not unique. It is
//! checked with `verify_strict`, which refuses small-order keys and
//! non-canonical signatures.

mod json;

pub use json::rfc3339;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Version of the alert format and of its canonical encoding.
pub const ALERT_VERSION: u16 = 1;
/// Domain separator that starts the canonical bytes.
pub const DOMAIN: &[u8] = b"AMOSKYS-ALERT\x00";
/// Largest encoded alert accepted anywhere (JSON bytes).
pub const MAX_ALERT_BYTES: usize = 16 * 1024;
/// Most evidence pairs in one alert.
pub const MAX_EVIDENCE: usize = 32;
/// Longest string field.
pub const MAX_FIELD: usize = 1024;

/// The severities an alert may carry, lowest first.
pub const SEVERITIES: [&str; 4] = ["low", "medium", "high", "critical"];

/// What a node asserts about a detection, before signing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertBody {
    /// Per-origin sequence number, from 0; with the origin it names the alert.
    pub seq: u64,
    /// Time of detection, ns since the Unix epoch.
    pub time_ns: u64,
    /// One of [`SEVERITIES`].
    pub severity: String,
    /// ATT&CK tactic or `anomaly`.
    pub category: String,
    /// ATT&CK technique id, e.g. `T1046`.
    pub technique: String,
    /// Rule or model that fired.
    pub rule: String,
    /// Confidence in [0, 1].
    pub score: f64,
    /// What it is about, after the privacy policy (e.g. `source_ip:10.0.0.9`).
    pub subject: String,
    /// Short facts, after the privacy policy.
    pub evidence: Vec<(String, String)>,
}

/// A signed alert. Its JSON also carries `time`, the RFC 3339 form of
/// `time_ns`, which is not signed (see docs/ALERTS.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "json::AlertJson", into = "json::AlertJson")]
pub struct Alert {
    pub version: u16,
    /// 32 lowercase hex characters: SHA-256 of the raw key bytes and the
    /// sequence number.
    pub id: String,
    /// Origin node id (libp2p PeerId of `origin_key`).
    pub origin: String,
    /// Origin's ed25519 public key, 64 lowercase hex characters.
    pub origin_key: String,
    pub body: AlertBody,
    /// ed25519 signature over [`Alert::canonical_bytes`], 128 lowercase hex
    /// characters.
    pub signature: String,
}

/// Why an alert was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlertError {
    #[error("alert of {0} bytes is over the limit of {MAX_ALERT_BYTES}")]
    TooLarge(usize),
    #[error("alert does not decode: {0}")]
    Malformed(String),
    #[error("alert version {0} is not supported (expected {ALERT_VERSION})")]
    Version(u16),
    #[error("alert field {field} is invalid: {reason}")]
    Field { field: &'static str, reason: String },
    #[error("alert signature does not verify")]
    BadSignature,
}

impl Alert {
    /// Signs `body` as the node holding `key`.
    pub fn sign(body: AlertBody, key: &SigningKey) -> Alert {
        let public = key.verifying_key();
        let mut alert = Alert {
            version: ALERT_VERSION,
            id: alert_id(public.as_bytes(), body.seq),
            origin: peer_id_of(&public),
            origin_key: hex::encode(public.as_bytes()),
            body,
            signature: String::new(),
        };
        alert.signature = hex::encode(key.sign(&alert.canonical_bytes()).to_bytes());
        alert
    }

    /// Decodes JSON with the size limit applied first, then checks every
    /// field and the signature.
    pub fn decode(bytes: &[u8]) -> Result<Alert, AlertError> {
        let alert = Alert::parse(bytes)?;
        alert.verify()?;
        Ok(alert)
    }

    /// Size check and JSON decoding only, without verification: for a
    /// receiver that checks who sent it before spending a signature check.
    pub fn parse(bytes: &[u8]) -> Result<Alert, AlertError> {
        if bytes.len() > MAX_ALERT_BYTES {
            return Err(AlertError::TooLarge(bytes.len()));
        }
        serde_json::from_slice(bytes).map_err(|e| AlertError::Malformed(e.to_string()))
    }

    /// JSON encoding.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Checks the fields, that `id` and `origin` derive from `origin_key`,
    /// and the signature. Returns the origin's key.
    pub fn verify(&self) -> Result<VerifyingKey, AlertError> {
        if self.version != ALERT_VERSION {
            return Err(AlertError::Version(self.version));
        }
        self.check_fields()?;
        let key_bytes: [u8; 32] = lower_hex(&self.origin_key)
            .ok_or_else(|| field("origin_key", "expected 64 lowercase hex characters"))?;
        let key = VerifyingKey::from_bytes(&key_bytes)
            .map_err(|_| field("origin_key", "not an ed25519 key"))?;
        if self.id != alert_id(&key_bytes, self.body.seq) {
            return Err(field("id", "does not match origin_key and seq"));
        }
        if self.origin != peer_id_of(&key) {
            return Err(field("origin", "is not the peer id of origin_key"));
        }
        let sig: [u8; 64] = lower_hex(&self.signature)
            .ok_or_else(|| field("signature", "expected 128 lowercase hex characters"))?;
        key.verify_strict(&self.canonical_bytes(), &Signature::from_bytes(&sig))
            .map_err(|_| AlertError::BadSignature)?;
        Ok(key)
    }

    /// The bytes that are signed. Fixed order, big-endian integers, every
    /// string as the u32 count of its UTF-8 bytes, then those bytes:
    /// `DOMAIN, version u16, id, origin, origin_key, seq u64, time_ns u64,
    /// severity, category, technique, rule, score (f64 bits u64), subject,
    /// evidence count u32, then key and value of each pair`.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let b = &self.body;
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(DOMAIN);
        out.extend_from_slice(&self.version.to_be_bytes());
        for s in [&self.id, &self.origin, &self.origin_key] {
            put_str(&mut out, s);
        }
        out.extend_from_slice(&b.seq.to_be_bytes());
        out.extend_from_slice(&b.time_ns.to_be_bytes());
        for s in [&b.severity, &b.category, &b.technique, &b.rule] {
            put_str(&mut out, s);
        }
        out.extend_from_slice(&b.score.to_bits().to_be_bytes());
        put_str(&mut out, &b.subject);
        out.extend_from_slice(&(b.evidence.len() as u32).to_be_bytes());
        for (k, v) in &b.evidence {
            put_str(&mut out, k);
            put_str(&mut out, v);
        }
        out
    }

    fn check_fields(&self) -> Result<(), AlertError> {
        let b = &self.body;
        if !SEVERITIES.contains(&b.severity.as_str()) {
            return Err(field(
                "severity",
                format!("{:?} is not one of {SEVERITIES:?}", b.severity),
            ));
        }
        if !(0.0..=1.0).contains(&b.score) {
            return Err(field("score", format!("{} is outside [0, 1]", b.score)));
        }
        if b.evidence.len() > MAX_EVIDENCE {
            return Err(field(
                "evidence",
                format!("{} pairs, at most {MAX_EVIDENCE}", b.evidence.len()),
            ));
        }
        let strings = [
            ("category", &b.category),
            ("technique", &b.technique),
            ("rule", &b.rule),
            ("subject", &b.subject),
        ];
        for (name, s) in strings {
            if s.len() > MAX_FIELD {
                return Err(field(
                    name,
                    format!("{} bytes, at most {MAX_FIELD}", s.len()),
                ));
            }
        }
        if b.evidence
            .iter()
            .any(|(k, v)| k.len() > MAX_FIELD || v.len() > MAX_FIELD)
        {
            return Err(field(
                "evidence",
                format!("a string is over {MAX_FIELD} bytes"),
            ));
        }
        Ok(())
    }
}

fn field(field: &'static str, reason: impl Into<String>) -> AlertError {
    AlertError::Field {
        field,
        reason: reason.into(),
    }
}

/// The bytes of lowercase hex text of exactly `N` bytes; uppercase is
/// refused so that each value has one text form.
fn lower_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    hex::decode(s).ok()?.try_into().ok()
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// `hex(SHA-256(key ++ seq u64 BE))[..32]`, over the 32 raw key bytes (not
/// their hex text), in lowercase hex.
pub fn alert_id(origin_key: &[u8; 32], seq: u64) -> String {
    let mut h = Sha256::new();
    h.update(origin_key);
    h.update(seq.to_be_bytes());
    let digest = h.finalize();
    hex::encode(&digest[..16])
}

/// The libp2p PeerId of an ed25519 public key, as text.
pub fn peer_id_of(key: &VerifyingKey) -> String {
    libp2p_identity::ed25519::PublicKey::try_from_bytes(key.as_bytes())
        .map(|k| libp2p_identity::PublicKey::from(k).to_peer_id().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
