use ed25519_dalek::SigningKey;

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

#[test]
fn test_vector_of_the_docs() {
    let alert = Alert::sign(body(), &vector_key());
    let canonical = hex::encode(alert.canonical_bytes());
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/ALERTS.md"))
        .expect("docs/ALERTS.md");
    assert!(doc.contains(&alert.id), "docs carry id {}", alert.id);
    assert!(
        doc.contains(&alert.origin),
        "docs carry origin {}",
        alert.origin
    );
    assert!(
        doc.contains(&canonical),
        "docs carry canonical bytes {canonical}"
    );
    assert!(
        doc.contains(&alert.signature),
        "docs carry signature {}",
        alert.signature
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
