//! Signed requests: the bytes an operator signs, the `Authorization`
//! header that carries the signature, and its verification.
//!
//! ```text
//! Authorization: Amoskys-Ed25519 key=<64 hex>,ts=<unix ms>,nonce=<32 hex>,sig=<128 hex>
//! ```
//!
//! The signature covers [`signed_bytes`]: the target node's peer id (a
//! request signed for one node is refused by every other), the method, the
//! path and query as sent, the SHA-256 of the body, the timestamp and the
//! nonce. A node accepts a timestamp within [`MAX_SKEW_MS`] of its clock
//! and each (key, nonce) once ([`ReplayCache`]).

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{AuthError, ReplayCache};

/// The authorization scheme.
pub const SCHEME: &str = "Amoskys-Ed25519";
/// Largest difference between a request's timestamp and the node's clock.
pub const MAX_SKEW_MS: u64 = 60_000;
/// First line of the signed bytes: the format and its version.
const DOMAIN: &[u8] = b"AMOSKYS-API-1\n";
/// Longest header accepted (a well-formed one is about 290 bytes).
const MAX_HEADER: usize = 512;

/// The parts of a request a signature covers.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    /// The target node's peer id, as `GET /healthz` answers it.
    pub node_id: &'a str,
    /// The method in upper case, as sent (`GET`, `PUT`).
    pub method: &'a str,
    /// The path and query as sent, percent-encoding included
    /// (`/api/v1/alerts?limit=100`).
    pub path_and_query: &'a str,
    pub body: &'a [u8],
}

/// The bytes a request's signature covers:
///
/// ```text
/// "AMOSKYS-API-1\n" node_id "\n" METHOD "\n" path_and_query "\n"
/// hex(sha256(body)) "\n" ts_ms "\n" hex(nonce)
/// ```
///
/// Hex is lowercase, `ts_ms` is decimal without leading zeros, and there is
/// no newline at the end.
pub fn signed_bytes(parts: &RequestParts<'_>, ts_ms: u64, nonce: &[u8; 16]) -> Vec<u8> {
    let body_hash = hex::encode(Sha256::digest(parts.body));
    let mut out = Vec::with_capacity(DOMAIN.len() + 200 + parts.path_and_query.len());
    out.extend_from_slice(DOMAIN);
    for field in [
        parts.node_id,
        parts.method,
        parts.path_and_query,
        &body_hash,
        &ts_ms.to_string(),
    ] {
        out.extend_from_slice(field.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(hex::encode(nonce).as_bytes());
    out
}

/// Signs a request; returns the `Authorization` header value.
pub fn sign_request(
    key: &SigningKey,
    parts: &RequestParts<'_>,
    ts_ms: u64,
    nonce: &[u8; 16],
) -> String {
    let sig = key.sign(&signed_bytes(parts, ts_ms, nonce));
    format!(
        "{SCHEME} key={},ts={ts_ms},nonce={},sig={}",
        hex::encode(key.verifying_key().to_bytes()),
        hex::encode(nonce),
        hex::encode(sig.to_bytes()),
    )
}

/// Verifies a request's `Authorization` header (`None` when the request
/// has none) at `now_ms`, and looks its key up with `operator` (the
/// cluster's operators, or the local admin). Returns the key and what
/// `operator` found.
///
/// The checks run cheapest first: the header's form, the timestamp, the
/// signature (`verify_strict`: canonical signatures, no weak keys), the key,
/// and last the replay cache, so only a correctly signed request by a
/// known key takes a place in it.
pub fn verify_request<T>(
    header: Option<&str>,
    parts: &RequestParts<'_>,
    now_ms: u64,
    cache: &mut ReplayCache,
    operator: impl FnOnce(&VerifyingKey) -> Option<T>,
) -> Result<(VerifyingKey, T), AuthError> {
    let header = header.ok_or(AuthError::Missing)?;
    let cred = Credential::parse(header)?;
    if [parts.node_id, parts.method, parts.path_and_query]
        .iter()
        .any(|f| f.contains('\n'))
    {
        return Err(AuthError::Malformed(
            "the request line contains a line feed".into(),
        ));
    }
    if cred.ts_ms.abs_diff(now_ms) > MAX_SKEW_MS {
        return Err(AuthError::Expired {
            ts_ms: cred.ts_ms,
            now_ms,
        });
    }
    let key = VerifyingKey::from_bytes(&cred.key)
        .map_err(|_| AuthError::Malformed("key is not an ed25519 public key".into()))?;
    key.verify_strict(&signed_bytes(parts, cred.ts_ms, &cred.nonce), &cred.sig)
        .map_err(|_| AuthError::BadSignature)?;
    let found = operator(&key).ok_or_else(|| AuthError::UnknownKey(hex::encode(cred.key)))?;
    cache.insert(&cred.key, &cred.nonce, now_ms)?;
    Ok((key, found))
}

/// A request as its operator signed it: what a handler keeps as the
/// operator's proof (the workspace's edits). Built by the API's layer from
/// a request it has verified; the API's layer inserts it as a request
/// extension of every authenticated write.
#[derive(Debug, Clone)]
pub struct SignedRequest {
    pub node_id: String,
    pub method: String,
    pub path_and_query: String,
    pub body: Vec<u8>,
    pub key: [u8; 32],
    pub ts_ms: u64,
    pub nonce: [u8; 16],
    pub sig: [u8; 64],
}

impl SignedRequest {
    /// The request of `parts` signed as `header` says (the header is parsed,
    /// not verified: call it for a request [`verify_request`] accepted).
    pub fn new(header: &str, parts: &RequestParts<'_>) -> Result<SignedRequest, AuthError> {
        let cred = Credential::parse(header)?;
        Ok(SignedRequest {
            node_id: parts.node_id.to_owned(),
            method: parts.method.to_owned(),
            path_and_query: parts.path_and_query.to_owned(),
            body: parts.body.to_vec(),
            key: cred.key,
            ts_ms: cred.ts_ms,
            nonce: cred.nonce,
            sig: cred.sig.to_bytes(),
        })
    }
}

/// Compares two secrets (tokens) in time that does not depend on where
/// they differ.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// A parsed `Authorization` header.
struct Credential {
    key: [u8; 32],
    ts_ms: u64,
    nonce: [u8; 16],
    sig: Signature,
}

impl Credential {
    /// Parses `Amoskys-Ed25519 key=…,ts=…,nonce=…,sig=…`: the scheme (any
    /// case), then the four parameters once each in any order, separated by
    /// commas (spaces around them allowed), hex in lower case.
    fn parse(header: &str) -> Result<Self, AuthError> {
        let bad = |m: &str| AuthError::Malformed(m.to_owned());
        if header.len() > MAX_HEADER {
            return Err(bad("longer than 512 bytes"));
        }
        let (scheme, params) = header
            .split_once(' ')
            .ok_or_else(|| bad("expected `Amoskys-Ed25519 key=…,ts=…,nonce=…,sig=…`"))?;
        if !scheme.eq_ignore_ascii_case(SCHEME) {
            return Err(AuthError::Malformed(format!(
                "scheme `{}` is not {SCHEME}",
                scheme.chars().take(32).collect::<String>()
            )));
        }
        let (mut key, mut ts, mut nonce, mut sig) = (None, None, None, None);
        for param in params.split(',') {
            let (name, value) = param
                .trim_matches([' ', '\t'])
                .split_once('=')
                .ok_or_else(|| bad("a parameter is not `name=value`"))?;
            let slot = match name {
                "key" => &mut key,
                "ts" => &mut ts,
                "nonce" => &mut nonce,
                "sig" => &mut sig,
                _ => return Err(bad("unknown parameter (expected key, ts, nonce, sig)")),
            };
            if slot.replace(value).is_some() {
                return Err(AuthError::Malformed(format!("`{name}` is given twice")));
            }
        }
        let ts = need(ts, "ts")?;
        let canonical = !ts.is_empty()
            && ts.bytes().all(|b| b.is_ascii_digit())
            && !(ts.len() > 1 && ts.starts_with('0'));
        let ts_ms = ts
            .parse::<u64>()
            .ok()
            .filter(|_| canonical)
            .ok_or_else(|| bad("`ts` is not Unix milliseconds in decimal"))?;
        Ok(Credential {
            key: lower_hex(need(key, "key")?, "key")?,
            ts_ms,
            nonce: lower_hex(need(nonce, "nonce")?, "nonce")?,
            sig: Signature::from_bytes(&lower_hex(need(sig, "sig")?, "sig")?),
        })
    }
}

fn need<'a>(v: Option<&'a str>, name: &str) -> Result<&'a str, AuthError> {
    v.ok_or_else(|| AuthError::Malformed(format!("`{name}` is missing")))
}

/// Decodes exactly `N` bytes of lowercase hex.
fn lower_hex<const N: usize>(value: &str, name: &str) -> Result<[u8; N], AuthError> {
    let mut out = [0u8; N];
    let lower = value
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if value.len() != 2 * N || !lower || hex::decode_to_slice(value, &mut out).is_err() {
        return Err(AuthError::Malformed(format!(
            "`{name}` is not {} lowercase hex digits",
            2 * N
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
