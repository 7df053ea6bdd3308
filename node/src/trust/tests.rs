use ed25519_dalek::SigningKey;

use super::*;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn member(k: &SigningKey, role: Role, name: &str) -> ExportedMember {
    let public = k.verifying_key();
    ExportedMember {
        id: peer_id_of(&public),
        key: hex::encode(public.as_bytes()),
        role,
        name: name.into(),
    }
}

/// An export of voter 1, learner 2 and removed 3, signed by `signer`.
fn export(signer: &SigningKey) -> MembersExport {
    let removed = key(3).verifying_key();
    let mut e = MembersExport {
        version: EXPORT_VERSION,
        membership_log: LogPosition { term: 2, index: 9 },
        members: vec![
            member(&key(1), Role::Voter, "alpha"),
            member(&key(2), Role::Learner, ""),
        ],
        removed: vec![RemovedMember {
            id: peer_id_of(&removed),
            key: hex::encode(removed.as_bytes()),
            removed_at: rfc3339(1_795_000_000_000_000_001),
        }],
        retired: vec![],
        exported_by: peer_id_of(&signer.verifying_key()),
        exported_at: rfc3339(1_795_000_000_123_456_789),
        signature: String::new(),
    };
    e.signature = hex::encode(signer.sign(&e.canonical_bytes()).to_bytes());
    e
}

#[test]
fn a_signed_export_trusts_its_members_only() {
    let e = export(&key(1));
    let json = serde_json::to_vec(&e).expect("json");
    let trust = MembersExport::decode(&json, None).expect("verifies");
    assert_eq!(trust.len(), 2);
    assert!(trust.admits(&key(1).verifying_key(), 0).is_ok());
    assert!(trust.admits(&key(2).verifying_key(), 0).is_ok());
    let stranger = key(9).verifying_key();
    let err = trust.admits(&stranger, 0).expect_err("not a member");
    assert!(err.contains(&peer_id_of(&stranger)), "{err}");
    assert!(err.contains(&hex::encode(stranger.as_bytes())), "{err}");
    let err = trust
        .admits(&key(3).verifying_key(), 0)
        .expect_err("removed");
    assert!(
        err.contains("removed from the cluster at 2026-11-18T11:06:40.000000001Z"),
        "{err}"
    );
    // Pinned to its signer, by peer id or key.
    let me = NodeId(key(1).verifying_key().to_bytes());
    assert!(e.verify(Some(&me)).is_ok());
    let other = NodeId(key(2).verifying_key().to_bytes());
    assert!(matches!(
        e.verify(Some(&other)),
        Err(TrustError::SignerNotPinned { .. })
    ));
}

#[test]
fn tampered_exports_are_refused() {
    let good = export(&key(1));
    // One hex digit of a member key changed.
    let mut e = good.clone();
    let flipped = if e.members[1].key.ends_with('0') {
        '1'
    } else {
        '0'
    };
    e.members[1].key.pop();
    e.members[1].key.push(flipped);
    assert!(e.verify(None).is_err(), "changed key accepted");
    // A key and its id replaced together: the signature fails.
    let mut e = good.clone();
    e.members[1] = member(&key(7), Role::Learner, "");
    assert_eq!(e.verify(None).err(), Some(TrustError::BadSignature));
    let mut e = good.clone();
    e.members[1].role = Role::Voter;
    assert_eq!(e.verify(None).err(), Some(TrustError::BadSignature));
    let mut e = good.clone();
    e.members.swap(0, 1);
    assert_eq!(e.verify(None).err(), Some(TrustError::BadSignature));
    let mut e = good.clone();
    e.membership_log.index += 1;
    assert_eq!(e.verify(None).err(), Some(TrustError::BadSignature));
    let mut e = good.clone();
    e.removed.clear();
    assert_eq!(e.verify(None).err(), Some(TrustError::BadSignature));
    let mut e = good.clone();
    e.signature = e.signature.to_uppercase();
    assert!(matches!(e.verify(None), Err(TrustError::Field { .. })));
    let mut e = good;
    e.version = 2;
    assert_eq!(e.verify(None).err(), Some(TrustError::Version(2)));
}

#[test]
fn the_signer_must_be_a_voter_of_the_export() {
    // Signed by the learner.
    let e = export(&key(2));
    assert!(matches!(e.verify(None), Err(TrustError::SignerNotVoter(_))));
    // Signed by a node that is not in it at all.
    let e = export(&key(9));
    assert!(matches!(e.verify(None), Err(TrustError::SignerNotVoter(_))));
}

#[test]
fn oversized_and_garbled_exports_are_refused() {
    assert!(matches!(
        MembersExport::decode(&vec![b' '; MAX_EXPORT_BYTES + 1], None),
        Err(TrustError::TooLarge(_))
    ));
    assert!(matches!(
        MembersExport::decode(b"{\"version\":1}", None),
        Err(TrustError::Malformed(_))
    ));
    let mut json = serde_json::to_value(export(&key(1))).expect("json");
    json["extra"] = 1.into();
    assert!(matches!(
        MembersExport::decode(&serde_json::to_vec(&json).expect("json"), None),
        Err(TrustError::Malformed(_))
    ));
}

#[test]
fn canonical_bytes_follow_the_documented_layout() {
    let e = export(&key(1));
    let bytes = e.canonical_bytes();
    let mut expected = b"AMOSKYS-MEMBERS\x00".to_vec();
    expected.extend_from_slice(&1u16.to_be_bytes());
    expected.extend_from_slice(&2u64.to_be_bytes());
    expected.extend_from_slice(&9u64.to_be_bytes());
    expected.extend_from_slice(&2u32.to_be_bytes());
    expected.extend_from_slice(&(e.members[0].id.len() as u32).to_be_bytes());
    expected.extend_from_slice(e.members[0].id.as_bytes());
    assert!(bytes.starts_with(&expected));
    let mut tail = Vec::new();
    for s in [&e.exported_by, &e.exported_at] {
        tail.extend_from_slice(&(s.len() as u32).to_be_bytes());
        tail.extend_from_slice(s.as_bytes());
    }
    assert!(bytes.ends_with(&tail));
    // An absent name is the empty string: `learner` then a zero length.
    let learner = [
        &7u32.to_be_bytes()[..],
        &b"learner"[..],
        &0u32.to_be_bytes()[..],
    ]
    .concat();
    assert!(bytes.windows(learner.len()).any(|w| w == learner));
}

#[test]
fn key_files_take_peer_ids_and_hex_keys() {
    let one = key(1).verifying_key();
    let two = key(2).verifying_key();
    let text = format!(
        "# trusted nodes\n{}\n\n  {}  # by key\n",
        peer_id_of(&one),
        hex::encode(two.as_bytes())
    );
    let trust = TrustSet::from_keys(&text, "keys.txt").expect("parses");
    assert_eq!(trust.len(), 2);
    assert_eq!(trust.admits(&one, 0), Ok("keys.txt line 2"));
    assert_eq!(trust.admits(&two, 0), Ok("keys.txt line 4"));
    let err = TrustSet::from_keys("# ok\nnot-a-key\n", "k").expect_err("bad line");
    assert!(matches!(err, TrustError::Keys { line: 2, .. }), "{err}");
}

/// The code blocks that follow `heading` in docs/ALERTS.md.
fn doc_blocks(heading: &str) -> Vec<String> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/ALERTS.md"))
        .expect("docs/ALERTS.md");
    let mut rest = &doc[doc.find(heading).expect(heading)..];
    let mut blocks = Vec::new();
    while let Some(start) = rest.find("```") {
        let body = &rest[start + 3..];
        let body = &body[body.find('\n').expect("fence line") + 1..];
        let end = body.find("```").expect("block end");
        blocks.push(body[..end].to_owned());
        rest = &body[end + 3..];
    }
    blocks
}

#[test]
fn the_docs_export_vector_verifies_as_printed() {
    let blocks = doc_blocks("### Membership export");
    let values: std::collections::HashMap<&str, &str> = blocks[0]
        .lines()
        .filter_map(|l| l.split_once(char::is_whitespace))
        .map(|(k, v)| (k, v.trim()))
        .collect();
    let printed = &blocks[1];
    let trust = MembersExport::decode(printed.as_bytes(), None).expect("the docs' export verifies");
    assert_eq!(trust.len(), 2);
    let e: MembersExport = serde_json::from_str(printed).expect("json");
    assert_eq!(
        values.get("canonical"),
        Some(&hex::encode(e.canonical_bytes()).as_str())
    );
    assert_eq!(values.get("signature"), Some(&e.signature.as_str()));
    let signer = key(7);
    let mut made = MembersExport {
        version: EXPORT_VERSION,
        membership_log: LogPosition { term: 1, index: 3 },
        members: vec![
            member(&signer, Role::Voter, "alpha"),
            member(&key(9), Role::Learner, ""),
        ],
        removed: vec![],
        retired: vec![],
        exported_by: peer_id_of(&signer.verifying_key()),
        exported_at: rfc3339(1_795_000_000_000_000_000),
        signature: String::new(),
    };
    made.signature = hex::encode(signer.sign(&made.canonical_bytes()).to_bytes());
    assert_eq!(made, e);
}

#[test]
fn a_retired_key_is_trusted_up_to_its_hand_over_only() {
    let (old, new) = (key(4), key(5));
    let r = amoskys_consensus::NodeRotation::sign(&old, &new, Some(10), 1_795_000_000_000_000_000);
    let retired = RetiredKey {
        id: peer_id_of(&old.verifying_key()),
        key: hex::encode(old.verifying_key().as_bytes()),
        successor: peer_id_of(&new.verifying_key()),
        last_seq: r.last_seq,
        time_ns: r.time_ns,
        old_sig: r.old_sig.clone(),
        new_sig: r.new_sig.clone(),
    };
    let signer = key(1);
    let mut e = export(&signer);
    e.retired = vec![retired.clone()];
    e.signature = hex::encode(signer.sign(&e.canonical_bytes()).to_bytes());
    let json = serde_json::to_vec(&e).expect("json");
    let trust = MembersExport::decode(&json, None).expect("verifies");
    assert!(trust.admits(&old.verifying_key(), 10).is_ok());
    let err = trust
        .admits(&old.verifying_key(), 11)
        .expect_err("after the hand-over");
    assert!(err.contains("handed over to"), "{err}");
    assert!(trust.admits_node(&old.verifying_key()).is_ok());
    // A hand-over the old key did not sign is refused with the export.
    let mut forged = export(&signer);
    let mut bad = retired;
    bad.last_seq = Some(1_000);
    forged.retired = vec![bad];
    forged.signature = hex::encode(signer.sign(&forged.canonical_bytes()).to_bytes());
    let err = forged.verify(None).expect_err("a forged hand-over");
    assert!(err.to_string().contains("retired[0]"), "{err}");
}
