use super::*;

const NODE: &str = "12D3KooWNodeA";
const NOW: u64 = 1_800_000_000_000;
const NONCE: [u8; 16] = [0x5a; 16];

fn key() -> SigningKey {
    SigningKey::from_bytes(&[3; 32])
}

fn parts<'a>(method: &'a str, path: &'a str, body: &'a [u8]) -> RequestParts<'a> {
    RequestParts {
        node_id: NODE,
        method,
        path_and_query: path,
        body,
    }
}

fn put() -> RequestParts<'static> {
    parts("PUT", "/api/v1/policy?dry%20run=1", b"[rules]\nx = 1\n")
}

/// Verifies with a fresh cache and `key()` as the only operator.
fn verify(header: &str, p: &RequestParts<'_>, now: u64) -> Result<&'static str, AuthError> {
    let mut cache = ReplayCache::default();
    verify_with(header, p, now, &mut cache)
}

fn verify_with(
    header: &str,
    p: &RequestParts<'_>,
    now: u64,
    cache: &mut ReplayCache,
) -> Result<&'static str, AuthError> {
    let known = key().verifying_key();
    verify_request(Some(header), p, now, cache, |k| {
        (*k == known).then_some("alice")
    })
    .map(|(_, n)| n)
}

#[test]
fn the_signed_bytes_are_as_documented() {
    // The example of docs/SECURITY.md, "Signed requests".
    let p = RequestParts {
        node_id: "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN",
        ..parts("GET", "/api/v1/alerts?limit=100", b"")
    };
    let bytes = signed_bytes(&p, 1_800_000_000_000, &[0xab; 16]);
    let doc = include_str!("../../../../docs/SECURITY.md");
    let shown = doc
        .lines()
        .find(|l| l.starts_with("AMOSKYS-API-1\\n"))
        .expect("the example in docs/SECURITY.md");
    assert_eq!(
        String::from_utf8(bytes).unwrap(),
        shown.replace("\\n", "\n")
    );
}

#[test]
fn a_signed_request_verifies_once() {
    let header = sign_request(&key(), &put(), NOW, &NONCE);
    assert!(header.starts_with("Amoskys-Ed25519 key="), "{header}");
    let mut cache = ReplayCache::default();
    assert_eq!(verify_with(&header, &put(), NOW, &mut cache), Ok("alice"));
    assert_eq!(
        verify_with(&header, &put(), NOW + 1000, &mut cache),
        Err(AuthError::Replayed)
    );
    // Another nonce is another request.
    let other = sign_request(&key(), &put(), NOW, &[1; 16]);
    assert_eq!(verify_with(&other, &put(), NOW, &mut cache), Ok("alice"));
}

#[test]
fn no_header_is_missing() {
    let mut cache = ReplayCache::default();
    let r = verify_request(None, &put(), NOW, &mut cache, |_| Some(()));
    assert_eq!(r.map(|_| ()), Err(AuthError::Missing));
}

#[test]
fn any_tampered_part_breaks_the_signature() {
    let header = sign_request(&key(), &put(), NOW, &NONCE);
    let body = b"[rules]\nx = 2\n";
    let tampered = [
        parts("POST", put().path_and_query, put().body),
        parts("PUT", "/api/v1/policy?dry%20run=0", put().body),
        parts("PUT", "/api/v1/policy?dry run=1", put().body),
        parts("PUT", put().path_and_query, body),
        RequestParts {
            node_id: "12D3KooWNodeB",
            ..put()
        },
    ];
    for p in &tampered {
        assert_eq!(
            verify(&header, p, NOW),
            Err(AuthError::BadSignature),
            "{p:?}"
        );
    }
    let ts = header.replace(&format!("ts={NOW}"), &format!("ts={}", NOW + 1));
    assert_eq!(verify(&ts, &put(), NOW), Err(AuthError::BadSignature));
    let nonce = header.replace(&"5a".repeat(16), &"5b".repeat(16));
    assert_eq!(verify(&nonce, &put(), NOW), Err(AuthError::BadSignature));
    let other_key = SigningKey::from_bytes(&[4; 32]).verifying_key();
    let key_swapped = header.replace(
        &hex::encode(key().verifying_key().to_bytes()),
        &hex::encode(other_key.to_bytes()),
    );
    assert_eq!(
        verify(&key_swapped, &put(), NOW),
        Err(AuthError::BadSignature)
    );
}

#[test]
fn the_timestamp_must_be_within_60_seconds() {
    for (signed_at, ok) in [
        (NOW - 60_000, true),
        (NOW + 60_000, true),
        (NOW - 61_000, false),
        (NOW + 61_000, false),
    ] {
        let header = sign_request(&key(), &put(), signed_at, &NONCE);
        let got = verify(&header, &put(), NOW);
        if ok {
            assert_eq!(got, Ok("alice"));
        } else {
            assert_eq!(
                got,
                Err(AuthError::Expired {
                    ts_ms: signed_at,
                    now_ms: NOW
                })
            );
        }
    }
}

#[test]
fn an_unknown_key_is_named_and_takes_no_place_in_the_cache() {
    let stranger = SigningKey::from_bytes(&[9; 32]);
    let header = sign_request(&stranger, &put(), NOW, &NONCE);
    let mut cache = ReplayCache::new(1);
    assert_eq!(
        verify_with(&header, &put(), NOW, &mut cache),
        Err(AuthError::UnknownKey(hex::encode(
            stranger.verifying_key().to_bytes()
        )))
    );
    assert!(cache.is_empty());
    let good = sign_request(&key(), &put(), NOW, &NONCE);
    assert_eq!(verify_with(&good, &put(), NOW, &mut cache), Ok("alice"));
    let next = sign_request(&key(), &put(), NOW, &[2; 16]);
    assert_eq!(
        verify_with(&next, &put(), NOW, &mut cache),
        Err(AuthError::Busy)
    );
}

#[test]
fn malformed_headers_are_named() {
    let header = sign_request(&key(), &put(), NOW, &NONCE);
    let params = header.strip_prefix("Amoskys-Ed25519 ").unwrap();
    let key_hex = hex::encode(key().verifying_key().to_bytes());
    let sig_hex = params.rsplit_once("sig=").unwrap().1;
    let cases = [
        format!("Bearer {params}"),
        "Amoskys-Ed25519".to_owned(),
        header.replace(&key_hex, &key_hex.to_uppercase()),
        header.replace(&"5a".repeat(16), &"5A".repeat(16)),
        header.replace(sig_hex, &sig_hex.to_uppercase()),
        header.replace(&format!("ts={NOW}"), &format!("ts=0{NOW}")),
        header.replace(&format!("ts={NOW}"), &format!("ts=+{NOW}")),
        header.replace(&format!("ts={NOW}"), "ts=18446744073709551616"),
        header.replace(",sig=", ",sag="),
        format!("{header},ts={NOW}"),
        header.replace(&format!(",nonce={}", "5a".repeat(16)), ""),
        header.replace(&key_hex, &key_hex[..62]),
        format!("{header},{}", "x".repeat(600)),
    ];
    for h in &cases {
        let got = verify(h, &put(), NOW);
        assert!(matches!(got, Err(AuthError::Malformed(_))), "{h}: {got:?}");
    }
    // The scheme is case-insensitive; spaces after commas and any order are fine.
    let (first, rest) = params.split_once(',').unwrap();
    let reordered = format!("amoskys-ed25519 {}, {first}", rest.replace(',', ", "));
    assert_eq!(verify(&reordered, &put(), NOW), Ok("alice"));
}

#[test]
fn a_non_canonical_signature_is_refused() {
    let header = sign_request(&key(), &put(), NOW, &NONCE);
    let sig_hex = header.rsplit_once("sig=").unwrap().1.to_owned();
    let mut sig = hex::decode(&sig_hex).unwrap();
    // S + L is the same scalar, encoded non-canonically.
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut carry = 0u16;
    for (s, l) in sig[32..].iter_mut().zip(L) {
        let sum = u16::from(*s) + u16::from(l) + carry;
        *s = sum as u8;
        carry = sum >> 8;
    }
    assert_eq!(carry, 0);
    let forged = header.replace(&sig_hex, &hex::encode(&sig));
    assert_eq!(verify(&forged, &put(), NOW), Err(AuthError::BadSignature));
}

#[test]
fn a_weak_key_never_verifies() {
    // The identity point as key and as R, with S = 0, satisfies the plain
    // verification equation for any message; verify_strict refuses it.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let mut sig = [0u8; 64];
    sig[0] = 1;
    let header = format!(
        "{SCHEME} key={},ts={NOW},nonce={},sig={}",
        hex::encode(identity),
        hex::encode(NONCE),
        hex::encode(sig)
    );
    let mut cache = ReplayCache::default();
    let got = verify_request(Some(&header), &put(), NOW, &mut cache, |_| Some(()));
    assert_eq!(got.map(|_| ()), Err(AuthError::BadSignature));
}

#[test]
fn reasons_are_metric_labels() {
    let all = [
        AuthError::Missing,
        AuthError::Malformed(String::new()),
        AuthError::BadSignature,
        AuthError::Expired {
            ts_ms: 0,
            now_ms: 0,
        },
        AuthError::Replayed,
        AuthError::Busy,
        AuthError::UnknownKey(String::new()),
        AuthError::Forbidden(String::new()),
    ];
    let labels: Vec<_> = all.iter().map(AuthError::reason).collect();
    assert_eq!(
        labels,
        [
            "missing",
            "malformed",
            "bad_signature",
            "expired",
            "replayed",
            "busy",
            "unknown_key",
            "forbidden"
        ]
    );
}

#[test]
fn secrets_compare_in_constant_time_and_correctly() {
    assert!(ct_eq(b"token", b"token"));
    assert!(!ct_eq(b"token", b"tokem"));
    assert!(!ct_eq(b"token", b"token2"));
    assert!(ct_eq(b"", b""));
}
