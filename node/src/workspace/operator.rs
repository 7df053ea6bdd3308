//! Who made a workspace edit through the API: the operator's name, role and
//! key, and, as proof, the signed HTTP request itself, kept in the entry
//! (so inside the Automerge change the node signs).
//!
//! The node never holds an operator's private key; what an operator signs is
//! each request (`auth/sign.rs`). An entry keeps that request's fields, so
//! any node, or anyone holding the document, can recompute the signed bytes,
//! check the signature, and check that the request asked for what the entry
//! records ([`verify`], with the route rules in `claims.rs`). Entries written
//! without a request (tests, internal edits) and entries from before this
//! format carry no operator; they stay valid and show as not verified.
//!
//! Everything here reads data that peers wrote: it never panics, and a
//! malformed or forged proof is only ever "not verified".

use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::doc::{DocKind, Entry};
use crate::auth::{RequestParts, SignedRequest, signed_bytes};

/// Largest request body an entry keeps as proof, in bytes. The bodies of
/// the workspace's routes are small (a note is at most 4 KiB of text); a
/// larger one is refused by the API.
pub const MAX_PROOF_BODY_BYTES: usize = 8 * 1024;
/// Largest time between a request's signature and the entry it wrote.
pub const PROOF_WINDOW_MS: u64 = 5 * 60_000;
/// Longest path and query kept (an indicator, percent-encoded, fits).
pub const MAX_PROOF_PATH_BYTES: usize = 2048;
/// Longest node id, method, operator name or role kept.
const MAX_FIELD_BYTES: usize = 128;

/// The operator of an entry and the request they signed, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operator {
    /// The operator's name as the receiving node knew it (`local-admin`
    /// for a node's local admin credential).
    pub name: String,
    /// `analyst` or `admin`.
    pub role: String,
    /// The operator's ed25519 public key, 64 lowercase hex digits.
    pub key: String,
    pub request: RequestProof,
}

/// The fields of a signed request (docs/SECURITY.md, "Signed requests").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestProof {
    /// The peer id the request was addressed to.
    pub node: String,
    pub method: String,
    /// Path and query as sent.
    pub path: String,
    /// The body as sent (UTF-8 JSON, or empty).
    pub body: String,
    pub ts_ms: u64,
    /// 32 lowercase hex digits.
    pub nonce: String,
    /// 128 lowercase hex digits.
    pub sig: String,
}

/// Why a request cannot be kept as proof, or a stored proof does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error(
        "request body of {0} bytes is over the {MAX_PROOF_BODY_BYTES} bytes a workspace edit keeps as its operator's proof; send the JSON without padding"
    )]
    BodyTooLarge(usize),
    #[error("request body is not UTF-8 text; workspace edits take JSON")]
    BodyNotText,
    #[error("path and query of {0} bytes is over the {MAX_PROOF_PATH_BYTES} bytes kept as proof")]
    PathTooLong(usize),
    #[error("the entry has no operator")]
    Missing,
    #[error("the operator is malformed: {0}")]
    Malformed(String),
    #[error("the request was addressed to {proof}, not to the entry's node {entry}")]
    OtherNode { proof: String, entry: String },
    #[error("the request signature does not verify with the operator's key")]
    BadSignature,
    #[error("the request was signed at {ts_ms} ms, too far from the entry's time {at_ms} ms")]
    Time { ts_ms: u64, at_ms: u64 },
    #[error("the request does not ask for what the entry records: {0}")]
    Mismatch(String),
}

impl Operator {
    /// The operator `name` of `role`, with the request they signed.
    pub fn from_request(
        name: &str,
        role: amoskys_consensus::Role,
        req: &SignedRequest,
    ) -> Result<Operator, ProofError> {
        if req.body.len() > MAX_PROOF_BODY_BYTES {
            return Err(ProofError::BodyTooLarge(req.body.len()));
        }
        if req.path_and_query.len() > MAX_PROOF_PATH_BYTES {
            return Err(ProofError::PathTooLong(req.path_and_query.len()));
        }
        let body = std::str::from_utf8(&req.body).map_err(|_| ProofError::BodyNotText)?;
        Ok(Operator {
            name: name.to_owned(),
            role: role.as_str().to_owned(),
            key: hex::encode(req.key),
            request: RequestProof {
                node: req.node_id.clone(),
                method: req.method.clone(),
                path: req.path_and_query.clone(),
                body: body.to_owned(),
                ts_ms: req.ts_ms,
                nonce: hex::encode(req.nonce),
                sig: hex::encode(req.sig),
            },
        })
    }

    /// Name, role and key, as the case and intel JSON show them.
    pub fn view(&self) -> OperatorView {
        OperatorView {
            name: self.name.clone(),
            role: self.role.clone(),
            key: self.key.clone(),
        }
    }
}

/// The operator of an entry as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OperatorView {
    pub name: String,
    pub role: String,
    pub key: String,
}

/// Who writes an edit: the node's key, which signs the change, and the
/// operator whose request it carries out, if any. A bare key converts.
#[derive(Debug, Clone, Copy)]
pub struct Author<'a> {
    pub key: &'a SigningKey,
    pub operator: Option<&'a Operator>,
}

impl<'a> From<&'a SigningKey> for Author<'a> {
    fn from(key: &'a SigningKey) -> Self {
        Author {
            key,
            operator: None,
        }
    }
}

impl Author<'_> {
    /// `entry` carrying this author's operator.
    pub(super) fn stamp(&self, entry: Entry) -> Entry {
        entry.with_operator(self.operator)
    }
}

/// The operator of `entry` at `key` in a document of `kind`, and whether
/// the proof holds: `(None, false)` when there is none or it does not parse.
pub fn check(kind: DocKind, key: &str, entry: &Entry) -> (Option<OperatorView>, bool) {
    match parse(entry) {
        Ok(op) => {
            let ok = verify_parsed(kind, key, entry, &op).is_ok();
            (Some(op.view()), ok)
        }
        Err(_) => (None, false),
    }
}

/// Checks the operator proof of `entry` at `key` in a document of `kind`:
/// the fields are well formed, the request was addressed to the entry's
/// node, the signature verifies over the recomputed request with the
/// operator's key, the request was signed within [`PROOF_WINDOW_MS`] of the
/// entry's time, and it asked for what the entry records.
pub fn verify(kind: DocKind, key: &str, entry: &Entry) -> Result<Operator, ProofError> {
    let op = parse(entry)?;
    verify_parsed(kind, key, entry, &op)?;
    Ok(op)
}

fn parse(entry: &Entry) -> Result<Operator, ProofError> {
    let value = entry.operator.as_ref().ok_or(ProofError::Missing)?;
    Operator::deserialize(value).map_err(|e| ProofError::Malformed(e.to_string()))
}

fn verify_parsed(kind: DocKind, key: &str, entry: &Entry, op: &Operator) -> Result<(), ProofError> {
    let req = &op.request;
    well_formed(op)?;
    let node = node_id(&entry.author)?;
    if req.node != node {
        return Err(ProofError::OtherNode {
            proof: req.node.clone(),
            entry: node,
        });
    }
    let op_key: [u8; 32] = lower_hex(&op.key, "key")?;
    let nonce: [u8; 16] = lower_hex(&req.nonce, "nonce")?;
    let sig: [u8; 64] = lower_hex(&req.sig, "sig")?;
    let parts = RequestParts {
        node_id: &req.node,
        method: &req.method,
        path_and_query: &req.path,
        body: req.body.as_bytes(),
    };
    VerifyingKey::from_bytes(&op_key)
        .and_then(|k| {
            k.verify_strict(
                &signed_bytes(&parts, req.ts_ms, &nonce),
                &Signature::from_bytes(&sig),
            )
        })
        .map_err(|_| ProofError::BadSignature)?;
    if entry.at_ms.abs_diff(req.ts_ms) > PROOF_WINDOW_MS {
        return Err(ProofError::Time {
            ts_ms: req.ts_ms,
            at_ms: entry.at_ms,
        });
    }
    super::claims::matches(kind, key, entry, req).map_err(ProofError::Mismatch)
}

/// Bounds and forms no signature check covers: the signed text is joined by
/// line feeds, so no field may hold one; the role is one that may edit.
fn well_formed(op: &Operator) -> Result<(), ProofError> {
    let bad = |m: String| Err(ProofError::Malformed(m));
    let req = &op.request;
    for (name, value, max) in [
        ("name", &op.name, MAX_FIELD_BYTES),
        ("node", &req.node, MAX_FIELD_BYTES),
        ("method", &req.method, MAX_FIELD_BYTES),
        ("path", &req.path, MAX_PROOF_PATH_BYTES),
        ("body", &req.body, MAX_PROOF_BODY_BYTES),
    ] {
        if value.len() > max {
            return bad(format!("{name} is over {max} bytes"));
        }
        if name != "body" && (value.is_empty() || value.contains('\n')) {
            return bad(format!("{name} is empty or holds a line feed"));
        }
    }
    match op.role.parse::<amoskys_consensus::Role>() {
        Ok(r) if r >= amoskys_consensus::Role::Analyst => Ok(()),
        _ => bad(format!(
            "role {:?} is not one that edits the workspace",
            op.role.chars().take(16).collect::<String>()
        )),
    }
}

/// The peer id of the node whose hex key is `author`.
fn node_id(author: &str) -> Result<String, ProofError> {
    let key: [u8; 32] = lower_hex(author, "entry author")?;
    Ok(amoskys_consensus::NodeId(key).to_string())
}

/// Exactly `N` bytes of lowercase hex.
fn lower_hex<const N: usize>(value: &str, name: &str) -> Result<[u8; N], ProofError> {
    let mut out = [0u8; N];
    let lower = value
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if value.len() != 2 * N || !lower || hex::decode_to_slice(value, &mut out).is_err() {
        return Err(ProofError::Malformed(format!(
            "{name} is not {} lowercase hex digits",
            2 * N
        )));
    }
    Ok(out)
}
