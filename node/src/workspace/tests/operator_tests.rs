//! Operator proofs: a genuine signed request verifies for the entry it
//! wrote; an altered body, another key, another node, another entry, a
//! stale time, any changed signed field or a malformed proof gives "not
//! verified", never a panic, also when a peer's entries arrive by sync.

use ed25519_dalek::SigningKey;
use serde_json::json;

use super::cases::{CaseNotes, Status};
use super::doc::{DocKind, Entry};
use super::intel::ThreatIntel;
use super::key;
use super::operator::{self, MAX_PROOF_BODY_BYTES, Operator, ProofError};
use crate::auth::{RequestParts, SignedRequest, sign_request};

const T: u64 = 1_796_000_000_000;

fn node_id(node: &SigningKey) -> String {
    amoskys_consensus::NodeId(node.verifying_key().to_bytes()).to_string()
}

/// The operator `ana` (analyst) holding `op`, with the request she signed
/// for `node` at `ts_ms`.
fn ana(
    op: &SigningKey,
    node: &SigningKey,
    method: &str,
    path: &str,
    body: &str,
    ts_ms: u64,
) -> Operator {
    let node_id = node_id(node);
    let parts = RequestParts {
        node_id: &node_id,
        method,
        path_and_query: path,
        body: body.as_bytes(),
    };
    let header = sign_request(op, &parts, ts_ms, &rand::random());
    let req = SignedRequest::new(&header, &parts).expect("header parses");
    Operator::from_request("ana", amoskys_consensus::Role::Analyst, &req).expect("kept")
}

fn note_of(cases: &mut CaseNotes, node: &SigningKey, text: &str, op: &Operator) -> (String, Entry) {
    let author = super::operator::Author {
        key: node,
        operator: Some(op),
    };
    cases.note("a1", text, T, author).expect("noted");
    let (k, e) = cases
        .document()
        .entries_with_prefix("case/a1/note/")
        .into_iter()
        .next_back()
        .expect("a note");
    (k, e)
}

#[test]
fn a_note_with_its_signed_request_verifies() {
    let (node, analyst) = (key(1), key(50));
    let op = ana(
        &analyst,
        &node,
        "POST",
        "/api/v1/cases/a1/notes",
        r#"{"text":"host isolated"}"#,
        T - 20,
    );
    let mut cases = CaseNotes::new();
    let (k, entry) = note_of(&mut cases, &node, "host isolated", &op);
    let checked = operator::verify(DocKind::Cases, &k, &entry).expect("verifies");
    assert_eq!(checked.name, "ana");
    let note = &cases.show("a1").notes[0];
    assert!(note.operator_verified);
    let view = note.operator.as_ref().expect("an operator");
    assert_eq!((view.name.as_str(), view.role.as_str()), ("ana", "analyst"));
    assert_eq!(view.key, hex::encode(analyst.verifying_key().to_bytes()));
}

#[test]
fn an_altered_body_another_key_or_another_entry_is_not_verified() {
    let (node, analyst, mallory) = (key(1), key(50), key(51));
    let good = ana(
        &analyst,
        &node,
        "POST",
        "/api/v1/cases/a1/notes",
        r#"{"text":"host isolated"}"#,
        T,
    );
    let mut cases = CaseNotes::new();

    // The body in the proof altered: the signature no longer covers it.
    let mut altered = good.clone();
    altered.request.body = r#"{"text":"false alarm"}"#.into();
    let (k, e) = note_of(&mut cases, &node, "false alarm", &altered);
    assert_eq!(
        operator::verify(DocKind::Cases, &k, &e),
        Err(ProofError::BadSignature)
    );

    // Signed by another key, but claiming ana's key.
    let mut forged = ana(
        &mallory,
        &node,
        "POST",
        "/api/v1/cases/a1/notes",
        r#"{"text":"forged"}"#,
        T,
    );
    forged.key = good.key.clone();
    let (k, e) = note_of(&mut cases, &node, "forged", &forged);
    assert_eq!(
        operator::verify(DocKind::Cases, &k, &e),
        Err(ProofError::BadSignature)
    );

    // A genuine proof on an entry that records something else.
    let (k, e) = note_of(&mut cases, &node, "something else", &good);
    assert!(matches!(
        operator::verify(DocKind::Cases, &k, &e),
        Err(ProofError::Mismatch(_))
    ));

    // A genuine proof replayed by another node.
    let other = key(2);
    let mut theirs = CaseNotes::new();
    let (k, e) = note_of(&mut theirs, &other, "host isolated", &good);
    assert!(matches!(
        operator::verify(DocKind::Cases, &k, &e),
        Err(ProofError::OtherNode { .. })
    ));

    // Only the genuine note would verify; none of these does.
    assert!(cases.show("a1").notes.iter().all(|n| !n.operator_verified));
}

#[test]
fn a_proof_for_another_alert_or_too_old_is_not_verified() {
    let (node, analyst) = (key(1), key(50));
    let body = r#"{"text":"host isolated"}"#;
    let elsewhere = ana(&analyst, &node, "POST", "/api/v1/cases/a2/notes", body, T);
    let mut cases = CaseNotes::new();
    let (k, e) = note_of(&mut cases, &node, "host isolated", &elsewhere);
    assert!(matches!(
        operator::verify(DocKind::Cases, &k, &e),
        Err(ProofError::Mismatch(_))
    ));
    let stale = ana(
        &analyst,
        &node,
        "POST",
        "/api/v1/cases/a1/notes",
        body,
        T - 3_600_000,
    );
    let (k, e) = note_of(&mut cases, &node, "host isolated", &stale);
    assert!(matches!(
        operator::verify(DocKind::Cases, &k, &e),
        Err(ProofError::Time { .. })
    ));
}

#[test]
fn malformed_proofs_and_old_entries_read_as_unverified() {
    let node = key(1);
    let mut cases = CaseNotes::new();
    // An entry from before operators were recorded.
    cases.note("a1", "old note", T, &node).expect("noted");
    let hostile = [
        json!(5),
        json!({"name": "ana"}),
        json!({"name": "ana", "role": "analyst", "key": "zz", "request": {
            "node": "x", "method": "POST", "path": "/", "body": "", "ts_ms": 1,
            "nonce": "00", "sig": "00"}}),
        json!({"name": "ana", "role": "analyst", "key": "00".repeat(32), "request": {
            "node": "x\n", "method": "POST", "path": "/", "body": "x".repeat(10_000),
            "ts_ms": u64::MAX, "nonce": "00".repeat(16), "sig": "ff".repeat(64)}}),
    ];
    for (i, value) in hostile.into_iter().enumerate() {
        let mut entry = Entry::new(json!({"text": format!("hostile {i}")}), T, &node);
        entry.operator = Some(value);
        cases
            .document_mut()
            .put(&format!("case/a1/note/{i}"), entry, &node)
            .expect("stored");
    }
    let case = cases.show("a1");
    assert_eq!(case.notes.len(), 5, "every note still reads");
    assert!(case.notes.iter().all(|n| !n.operator_verified));
    let old = case
        .notes
        .iter()
        .find(|n| n.text == "old note")
        .expect("old");
    assert_eq!(old.operator, None);
}

#[test]
fn status_assignee_and_intel_edits_verify_by_their_routes() {
    let (node, analyst) = (key(1), key(50));
    let ack = ana(
        &analyst,
        &node,
        "POST",
        "/api/v1/cases/a1/ack",
        r#"{"assignee":"ana"}"#,
        T,
    );
    let mut cases = CaseNotes::new();
    let by = super::operator::Author {
        key: &node,
        operator: Some(&ack),
    };
    let case = cases.ack("a1", Some("ana"), T, by).expect("acked");
    let (status, assignee) = (case.status_set.unwrap(), case.assignee_set.unwrap());
    assert!(status.operator_verified && assignee.operator_verified);
    // The ack's proof does not set another status.
    cases.set_status("a1", Status::Resolved, T + 1, by).unwrap();
    assert!(!cases.show("a1").status_set.unwrap().operator_verified);

    let mut intel = ThreatIntel::new();
    let add = ana(
        &analyst,
        &node,
        "POST",
        "/api/v1/intel",
        r#"{"indicator":"10.1.2.3/8","reason":"scan","expires_secs":3600}"#,
        T,
    );
    let by = super::operator::Author {
        key: &node,
        operator: Some(&add),
    };
    let ioc = intel
        .add("10.1.2.3/8", "scan", Some(T + 3_600_000), T, by)
        .unwrap();
    assert!(ioc.operator_verified);
    assert!(intel.list(T)[0].operator_verified);
    // The same proof with another reason is not.
    intel
        .add("10.1.2.3/8", "other", Some(T + 3_600_000), T + 1, by)
        .unwrap();
    assert!(!intel.list(T)[0].operator_verified);

    let remove = ana(
        &analyst,
        &node,
        "DELETE",
        "/api/v1/intel?indicator=10.0.0.0%2F8",
        "",
        T + 2,
    );
    let by = super::operator::Author {
        key: &node,
        operator: Some(&remove),
    };
    let removed = intel.remove("10.0.0.0/8", T + 2, by).unwrap().unwrap();
    assert!(removed.operator_verified);
}

#[test]
fn a_body_too_large_or_not_text_is_not_kept() {
    let node_id = node_id(&key(1));
    let signed = |body: Vec<u8>| SignedRequest {
        node_id: node_id.clone(),
        method: "POST".into(),
        path_and_query: "/api/v1/cases/a1/notes".into(),
        body,
        key: [1; 32],
        ts_ms: T,
        nonce: [0; 16],
        sig: [0; 64],
    };
    let role = amoskys_consensus::Role::Analyst;
    let big = signed(vec![b' '; MAX_PROOF_BODY_BYTES + 1]);
    assert_eq!(
        Operator::from_request("ana", role, &big),
        Err(ProofError::BodyTooLarge(MAX_PROOF_BODY_BYTES + 1))
    );
    assert_eq!(
        Operator::from_request("ana", role, &signed(vec![0xff, 0xfe])),
        Err(ProofError::BodyNotText)
    );
}

#[test]
fn any_change_to_a_signed_field_fails_and_never_panics() {
    let (node, analyst) = (key(1), key(50));
    let good = ana(
        &analyst,
        &node,
        "POST",
        "/api/v1/cases/a1/notes",
        r#"{"text":"host isolated"}"#,
        T,
    );
    let mut cases = CaseNotes::new();
    let (k, entry) = note_of(&mut cases, &node, "host isolated", &good);
    assert!(operator::verify(DocKind::Cases, &k, &entry).is_ok());
    let base = serde_json::to_value(&good).unwrap();
    let fields = [
        "/key",
        "/request/node",
        "/request/method",
        "/request/path",
        "/request/body",
        "/request/nonce",
        "/request/sig",
    ];
    let mut rng = super::Rng::new(19);
    for round in 0..2_000 {
        let mut value = base.clone();
        if round % 10 == 0 {
            *value.pointer_mut("/request/ts_ms").unwrap() = json!(T + 1 + rng.next() % 1000);
        } else {
            let slot = value.pointer_mut(fields[rng.below(fields.len())]).unwrap();
            let mut bytes = slot.as_str().unwrap().as_bytes().to_vec();
            let at = rng.below(bytes.len());
            let old = bytes[at];
            while bytes[at] == old {
                bytes[at] = b' ' + (rng.next() % 95) as u8;
            }
            *slot = json!(String::from_utf8(bytes).unwrap());
        }
        let mut forged = entry.clone();
        forged.operator = Some(value.clone());
        assert!(
            operator::verify(DocKind::Cases, &k, &forged).is_err(),
            "round {round}: {value}"
        );
    }
}

#[test]
fn a_peers_forged_operators_arrive_by_sync_and_read_as_unverified() {
    let (analyst, mallory) = (key(50), key(51));
    let mut a = super::Node::new(super::doc::Document::new(DocKind::Cases), 1);
    let mut m = super::Node::new(super::doc::Document::new(DocKind::Cases), 2);
    let body = r#"{"text":"host isolated"}"#;
    let path = "/api/v1/cases/a1/notes";
    let genuine = ana(&analyst, &a.key, "POST", path, body, T);
    // The peer claims ana's key over a request it signed itself, replays
    // the request ana sent to a, and writes garbage as an operator.
    let mut claimed = ana(&mallory, &m.key, "POST", path, r#"{"text":"all clear"}"#, T);
    claimed.key = genuine.key.clone();
    let write = |n: &mut super::Node, k: &str, text: &str, op: serde_json::Value| {
        let mut e = Entry::new(json!({ "text": text }), T, &n.key);
        e.operator = Some(op);
        n.doc.put(k, e, &n.key).unwrap();
    };
    let to_json = |op: &Operator| serde_json::to_value(op).unwrap();
    write(&mut a, "case/a1/note/1", "host isolated", to_json(&genuine));
    write(&mut m, "case/a1/note/2", "all clear", to_json(&claimed));
    write(&mut m, "case/a1/note/3", "host isolated", to_json(&genuine));
    write(&mut m, "case/a1/note/4", "x", json!({"request": [1, 2, 3]}));
    let mut nodes = [a, m];
    super::sync_nodes(&mut nodes, 0, 1);
    let [a, _] = nodes;
    let cases = CaseNotes::from_document(a.doc).unwrap();
    let notes = cases.show("a1").notes;
    assert_eq!(notes.len(), 4, "every entry is applied");
    let verified: Vec<&str> = notes
        .iter()
        .filter(|n| n.operator_verified)
        .map(|n| n.text.as_str())
        .collect();
    assert_eq!(verified, ["host isolated"], "only a's own note verifies");
    assert!(
        notes
            .iter()
            .filter(|n| n.author == hex::encode(key(2).verifying_key().to_bytes()))
            .all(|n| !n.operator_verified)
    );
}
