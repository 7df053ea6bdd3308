use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use super::*;

fn body() -> AlertBody {
    AlertBody {
        seq: 7,
        time_ns: 1_795_000_000_000_000_000,
        severity: "medium".into(),
        category: "reconnaissance".into(),
        technique: "T1046".into(),
        rule: "port_scan_vertical".into(),
        score: 0.75,
        subject: "source_ip:192.0.2.9".into(),
        evidence: vec![
            ("target".into(), "192.0.2.1".into()),
            ("ports".into(), "120".into()),
        ],
    }
}

/// The key of docs/ALERTS.md's test vector: 32 bytes of 0x07.
fn vector_key() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

fn docs() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/ALERTS.md"))
        .expect("docs/ALERTS.md")
}

/// The text of the code block that follows `heading` in the docs.
fn block_after(doc: &str, heading: &str) -> String {
    let rest = &doc[doc.find(heading).expect(heading)..];
    let start = rest.find("```").expect("a block") + 3;
    let body = &rest[start..];
    let body = &body[body.find('\n').expect("fence line") + 1..];
    body[..body.find("```").expect("block end")].to_owned()
}

#[test]
fn test_vector_of_the_docs() {
    let alert = Alert::sign(body(), &vector_key());
    let doc = docs();
    let block = block_after(&doc, "Signing key:");
    let values: std::collections::HashMap<&str, &str> = block
        .lines()
        .filter_map(|l| l.split_once(char::is_whitespace))
        .map(|(k, v)| (k, v.trim()))
        .collect();
    let canonical = hex::encode(alert.canonical_bytes());
    assert_eq!(values.get("origin_key"), Some(&alert.origin_key.as_str()));
    assert_eq!(values.get("origin"), Some(&alert.origin.as_str()));
    assert_eq!(values.get("id"), Some(&alert.id.as_str()));
    assert_eq!(values.get("canonical"), Some(&canonical.as_str()));
    assert_eq!(values.get("signature"), Some(&alert.signature.as_str()));
}

/// The JSON printed in the docs is exactly what the encoder writes, and it
/// verifies as printed.
#[test]
fn the_docs_json_verifies_as_printed() {
    let doc = docs();
    let printed = block_after(&doc, "The JSON of this alert:");
    let printed = printed.trim_end();
    let alert = Alert::decode(printed.as_bytes()).expect("the docs' alert verifies");
    assert_eq!(alert, Alert::sign(body(), &vector_key()));
    assert_eq!(String::from_utf8_lossy(&alert.encode()), printed);
    assert!(printed.contains("\"time\":\"2026-11-18T11:06:40.000000000Z\""));
}

/// The doc's derivations, computed here without the alert code: `id`
/// hashes the raw key bytes, `origin` is base58 of the identity multihash
/// of the protobuf-encoded key, the signature is strict ed25519 over the
/// canonical bytes.
#[test]
fn the_docs_derivations_hold_independently() {
    let key = vector_key().verifying_key();
    let alert = Alert::sign(body(), &vector_key());
    let mut h = Sha256::new();
    h.update(key.as_bytes());
    h.update(7u64.to_be_bytes());
    assert_eq!(alert.id, hex::encode(&h.finalize()[..16]));
    let mut peer = vec![0x00, 0x24, 0x08, 0x01, 0x12, 0x20];
    peer.extend_from_slice(key.as_bytes());
    assert_eq!(alert.origin, base58(&peer));
    let sig: [u8; 64] = hex::decode(&alert.signature)
        .expect("hex")
        .try_into()
        .expect("64 bytes");
    key.verify_strict(
        &alert.canonical_bytes(),
        &ed25519_dalek::Signature::from_bytes(&sig),
    )
    .expect("strict signature");
}

fn base58(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    let mut digits: Vec<u32> = Vec::new();
    for &b in bytes {
        let mut carry = u32::from(b);
        for d in &mut digits {
            carry += *d << 8;
            *d = carry % 58;
            carry /= 58;
        }
        while carry > 0 {
            digits.push(carry % 58);
            carry /= 58;
        }
    }
    let zeros = bytes.iter().take_while(|&&b| b == 0).count();
    std::iter::repeat_n('1', zeros)
        .chain(
            digits
                .iter()
                .rev()
                .map(|&d| char::from(ALPHABET[d as usize])),
        )
        .collect()
}

/// A small-order key with the identity point as R and s = 0 passes the
/// loose ed25519 check for any message; strict verification refuses it.
#[test]
fn small_order_keys_and_signatures_are_refused() {
    let mut weak = [0u8; 32];
    weak[0] = 1;
    let key = VerifyingKey::from_bytes(&weak).expect("the identity point decodes");
    let mut sig = [0u8; 64];
    sig[0] = 1;
    let sig_hex = hex::encode(sig);
    let b = body();
    let mut alert = Alert {
        version: ALERT_VERSION,
        id: alert_id(&weak, b.seq),
        origin: peer_id_of(&key),
        origin_key: hex::encode(weak),
        body: b,
        signature: sig_hex,
    };
    assert!(!alert.origin.is_empty(), "the weak key has a peer id");
    use ed25519_dalek::Verifier;
    assert!(
        key.verify(
            &alert.canonical_bytes(),
            &ed25519_dalek::Signature::from_bytes(&sig)
        )
        .is_ok(),
        "the loose check accepts it"
    );
    assert_eq!(alert.verify(), Err(AlertError::BadSignature));
    alert.body.subject = "anything at all".into();
    assert_eq!(alert.verify(), Err(AlertError::BadSignature));
}

#[test]
fn hex_is_lowercase_only() {
    let good = Alert::sign(body(), &vector_key());
    let mut upper = good.clone();
    upper.signature = upper.signature.to_uppercase();
    assert!(matches!(
        upper.verify(),
        Err(AlertError::Field {
            field: "signature",
            ..
        })
    ));
    let mut upper = good;
    upper.origin_key = upper.origin_key.to_uppercase();
    assert!(matches!(
        upper.verify(),
        Err(AlertError::Field {
            field: "origin_key",
            ..
        })
    ));
}

/// `time` is written, optional on input, and must agree with `time_ns`;
/// `time_ns` rounded as a double reader would round it fails.
#[test]
fn the_time_string_is_written_optional_and_checked() {
    let mut b = body();
    b.time_ns = 1_795_000_000_123_456_789;
    let alert = Alert::sign(b, &vector_key());
    let mut json: serde_json::Value = serde_json::from_slice(&alert.encode()).expect("json");
    assert_eq!(json["time"], "2026-11-18T11:06:40.123456789Z");
    let without = {
        let mut j = json.clone();
        j.as_object_mut().expect("object").remove("time");
        serde_json::to_vec(&j).expect("json")
    };
    assert_eq!(Alert::decode(&without), Ok(alert.clone()));
    json["time"] = "2026-11-18T11:06:40.123456789+00:00".into();
    assert_eq!(
        Alert::decode(&serde_json::to_vec(&json).expect("json")),
        Ok(alert.clone())
    );
    json["time"] = "2026-11-18T11:06:40.123456788Z".into();
    let err = Alert::decode(&serde_json::to_vec(&json).expect("json")).expect_err("disagrees");
    assert!(
        matches!(&err, AlertError::Malformed(m) if m.contains("time_ns")),
        "{err}"
    );
    // What a reader with doubles makes of time_ns.
    let rounded = (alert.body.time_ns as f64) as u64;
    assert_ne!(rounded, alert.body.time_ns);
    let mut j = serde_json::from_slice::<serde_json::Value>(&without).expect("json");
    j["time_ns"] = rounded.into();
    assert_eq!(
        Alert::decode(&serde_json::to_vec(&j).expect("json")),
        Err(AlertError::BadSignature)
    );
}

#[test]
fn signed_alerts_verify_and_survive_json() {
    let alert = Alert::sign(body(), &vector_key());
    let key = alert.verify().expect("verifies");
    assert_eq!(key, vector_key().verifying_key());
    let back = Alert::decode(&alert.encode()).expect("decodes");
    assert_eq!(back, alert);
}

#[test]
fn any_tampered_field_is_refused() {
    let good = Alert::sign(body(), &vector_key());
    type Tamper = Box<dyn Fn(&mut Alert)>;
    let tamper: Vec<(&str, Tamper)> = vec![
        ("time", Box::new(|a| a.body.time_ns += 1)),
        (
            "severity",
            Box::new(|a| a.body.severity = "critical".into()),
        ),
        ("technique", Box::new(|a| a.body.technique = "T1110".into())),
        ("score", Box::new(|a| a.body.score = 0.5)),
        (
            "subject",
            Box::new(|a| a.body.subject = "source_ip:192.0.2.10".into()),
        ),
        (
            "evidence",
            Box::new(|a| a.body.evidence[1].1 = "121".into()),
        ),
        ("evidence order", Box::new(|a| a.body.evidence.swap(0, 1))),
        ("seq", Box::new(|a| a.body.seq += 1)),
    ];
    for (what, change) in tamper {
        let mut a = good.clone();
        change(&mut a);
        assert!(a.verify().is_err(), "tampered {what} accepted");
    }
}

#[test]
fn forged_and_foreign_signatures_are_refused() {
    let good = Alert::sign(body(), &vector_key());
    // Signed by another key but claiming the vector key's identity.
    let other = Alert::sign(body(), &SigningKey::from_bytes(&[9u8; 32]));
    let mut forged = good.clone();
    forged.signature = other.signature.clone();
    assert_eq!(forged.verify(), Err(AlertError::BadSignature));
    // Claiming another origin without its key.
    let mut moved = good.clone();
    moved.origin_key = other.origin_key.clone();
    assert!(matches!(
        moved.verify(),
        Err(AlertError::Field { field: "id", .. })
    ));
    let mut renamed = good;
    renamed.origin = other.origin;
    assert!(matches!(
        renamed.verify(),
        Err(AlertError::Field {
            field: "origin",
            ..
        })
    ));
}

#[test]
fn oversized_garbage_and_invalid_fields_are_refused() {
    assert!(matches!(
        Alert::decode(&vec![b' '; MAX_ALERT_BYTES + 1]),
        Err(AlertError::TooLarge(_))
    ));
    assert!(matches!(
        Alert::decode(b"\xff\x00garbage"),
        Err(AlertError::Malformed(_))
    ));
    assert!(matches!(
        Alert::decode(b"{}"),
        Err(AlertError::Malformed(_))
    ));
    let good = Alert::sign(body(), &vector_key());
    let mut json: serde_json::Value = serde_json::from_slice(&good.encode()).expect("json");
    json["extra"] = serde_json::json!(1);
    let bytes = serde_json::to_vec(&json).expect("json");
    assert!(
        matches!(Alert::decode(&bytes), Err(AlertError::Malformed(_))),
        "unknown field"
    );

    let mut b = body();
    b.severity = "catastrophic".into();
    assert!(matches!(
        Alert::sign(b, &vector_key()).verify(),
        Err(AlertError::Field {
            field: "severity",
            ..
        })
    ));
    let mut b = body();
    b.evidence = (0..=MAX_EVIDENCE)
        .map(|i| (i.to_string(), String::new()))
        .collect();
    assert!(matches!(
        Alert::sign(b, &vector_key()).verify(),
        Err(AlertError::Field {
            field: "evidence",
            ..
        })
    ));
    let mut v = good;
    v.version = 2;
    assert_eq!(v.verify(), Err(AlertError::Version(2)));
}
