//! The signed document: genesis, LWW, signatures, save and load.

use serde_json::json;

use super::doc::{COMPACTOR, DocKind, Document, Entry, WsError, author_hex, change_signature_ok};
use super::epoch::EpochId;
use super::key;

#[test]
fn genesis_is_identical_on_every_node_and_per_kind() {
    let a = Document::new(DocKind::Intel);
    let b = Document::new(DocKind::Intel);
    let c = Document::new(DocKind::Cases);
    assert_eq!(a.heads(), b.heads());
    assert_ne!(a.heads(), c.heads());
    assert_eq!(a.epoch(), EpochId::GENESIS);
    assert!(a.entries().is_empty());
}

#[test]
fn put_get_and_signatures() {
    let k = key(1);
    let mut doc = Document::new(DocKind::Intel);
    let stored = doc
        .put("a", Entry::new(json!({"x": 1}), 1_000, &k), &k)
        .unwrap();
    assert_eq!(stored.at_ms, 1_000);
    assert_eq!(doc.get("a").unwrap().body, json!({"x": 1}));
    assert_eq!(doc.signatures.len(), 1);
    let (hash, sig) = doc.signatures.iter().next().unwrap();
    assert!(change_signature_ok(
        &k.verifying_key().to_bytes(),
        hash,
        sig
    ));
    // The change's actor is the author's public key.
    let change = doc.doc.get_last_local_change().unwrap();
    assert_eq!(change.actor_id().to_bytes(), k.verifying_key().as_bytes());
}

#[test]
fn an_overwrite_always_wins_in_lww_order() {
    let k = key(1);
    let mut doc = Document::new(DocKind::Intel);
    doc.put("a", Entry::new(json!(1), 5_000, &k), &k).unwrap();
    // A clock that went backwards still overwrites: at_ms is raised.
    let stored = doc.put("a", Entry::new(json!(2), 4_000, &k), &k).unwrap();
    assert_eq!(stored.at_ms, 5_001);
    assert_eq!(doc.get("a").unwrap().body, json!(2));
}

#[test]
fn put_refuses_bad_keys_entries_and_authors() {
    let (k, other) = (key(1), key(2));
    let mut doc = Document::new(DocKind::Intel);
    assert_eq!(
        doc.put("", Entry::new(json!(1), 1, &k), &k),
        Err(WsError::KeyLength(0))
    );
    let big = json!("x".repeat(70_000));
    assert!(matches!(
        doc.put("a", Entry::new(big, 1, &k), &k),
        Err(WsError::EntryTooLarge(_))
    ));
    let err = doc
        .put("a", Entry::new(json!(1), 1, &other), &k)
        .unwrap_err();
    assert!(err.to_string().contains("is not the signing key"), "{err}");
    assert!(doc.entries().is_empty());
}

#[test]
fn entries_are_ordered_and_prefix_scans_work() {
    let k = key(1);
    let mut doc = Document::new(DocKind::Cases);
    for key_name in ["b/2", "a/1", "b/1", "c", "b/3", "ba"] {
        doc.put(key_name, Entry::new(json!(key_name), 1, &k), &k)
            .unwrap();
    }
    let all: Vec<_> = doc.entries().into_keys().collect();
    assert_eq!(all, ["a/1", "b/1", "b/2", "b/3", "ba", "c"]);
    let b: Vec<_> = doc.entries_with_prefix("b/").into_keys().collect();
    assert_eq!(b, ["b/1", "b/2", "b/3"]);
}

#[test]
fn save_load_roundtrip() {
    let k = key(1);
    let mut doc = Document::new(DocKind::Cases);
    for i in 0..50u64 {
        doc.put(&format!("k{i}"), Entry::new(json!({"i": i}), i, &k), &k)
            .unwrap();
    }
    doc.put("k3", Entry::tombstone(json!(null), 100, &k), &k)
        .unwrap();
    let bytes = doc.save();
    assert_eq!(bytes.len(), doc.len_bytes());
    let back = Document::load(&bytes).unwrap();
    assert_eq!(back.kind(), DocKind::Cases);
    assert_eq!(back.entries(), doc.entries());
    assert_eq!(back.heads(), doc.heads());
    assert_eq!(back.signatures, doc.signatures);
    assert!(back.get("k3").unwrap().removed);
    assert_eq!(back.save(), bytes);
}

#[test]
fn save_load_roundtrip_after_compaction() {
    let k = key(1);
    let mut doc = Document::new(DocKind::Intel);
    doc.put("a", Entry::new(json!(1), 1, &k), &k).unwrap();
    doc.compact(10, 5, |_, _| false, &k).unwrap();
    doc.put("b", Entry::new(json!(2), 11, &k), &k).unwrap();
    let back = Document::load(&doc.save()).unwrap();
    assert_eq!(back.epoch(), doc.epoch());
    assert_eq!(back.entries(), doc.entries());
}

#[test]
fn corrupt_files_are_errors_that_say_what_is_wrong() {
    let k = key(1);
    let mut doc = Document::new(DocKind::Intel);
    doc.put("a", Entry::new(json!(1), 1, &k), &k).unwrap();
    let good = doc.save();
    let expect = |bytes: &[u8], needle: &str| {
        let err = Document::load(bytes).unwrap_err().to_string();
        assert!(err.contains(needle), "{err:?} should mention {needle:?}");
    };
    expect(b"", "magic is truncated");
    expect(b"XXXX\x01", "bad magic");
    let mut v = good.clone();
    v[4] = 9;
    expect(&v, "format version 9");
    let mut v = good.clone();
    v[5] = 7;
    expect(&v, "unknown document kind 7");
    expect(&good[..50], "automerge document is truncated");
    expect(&good[..good.len() - 10], "signatures count 1 does not fit");
    let mut v = good.clone();
    v.push(0);
    expect(&v, "unexpected bytes");
    // Drop the only signature: the change is then unsigned.
    let mut v = good[..good.len() - 100].to_vec();
    v.extend_from_slice(&0u32.to_be_bytes());
    expect(&v, "has no signature");
    // A flipped byte inside the Automerge document.
    let mut v = good.clone();
    let mid = 60 + (good.len() - 160) / 2;
    v[mid] ^= 0xff;
    assert!(Document::load(&v).is_err());
    // The compactor actor is never a real author.
    assert_eq!(author_hex(&key(1)).len(), 64);
    assert_ne!(k.verifying_key().to_bytes(), COMPACTOR);
}
