//! Every [`Rejected`] variant from a crafted envelope, and the document and
//! peer state unchanged afterwards.

use automerge::sync::{ChunkList, Message, MessageVersion};
use automerge::transaction::Transactable;
use automerge::{ActorId, ChangeHash, ROOT};
use ed25519_dalek::{Signer, SigningKey};
use serde_json::json;

use super::doc::{COMPACTOR, DocKind, Document, Entry, change_message};
use super::envelope::{Body, decode, encode_snapshot, encode_sync};
use super::epoch::EpochId;
use super::sync::{MAX_SYNC_BYTES, PeerSync, Rejected};
use super::{admit_all, key};

/// A receiver on epoch 0 and a genuine envelope from a sender that carries
/// one signed change.
struct Setup {
    receiver: Document,
    peer: PeerSync,
    sender_key: SigningKey,
    envelope: Vec<u8>,
}

fn setup() -> Setup {
    let (ka, kb) = (key(1), key(2));
    let (mut a, mut b) = (Document::new(DocKind::Intel), Document::new(DocKind::Intel));
    a.put(
        "ip:10.0.0.1",
        Entry::new(json!({"kind": "ip", "value": "10.0.0.1"}), 1, &ka),
        &ka,
    )
    .unwrap();
    let (mut pa, mut pb) = (PeerSync::new(), PeerSync::new());
    for _ in 0..5 {
        let hello = b.sync_out(&mut pb).unwrap();
        a.sync_in(&mut pa, &hello, &admit_all, &ka).unwrap();
        let envelope = a.sync_out(&mut pa).unwrap();
        if let Ok((_, _, Body::Sync { signatures, .. })) = decode(&envelope)
            && !signatures.is_empty()
        {
            return Setup {
                receiver: b,
                peer: pb,
                sender_key: ka,
                envelope,
            };
        }
        b.sync_in(&mut pb, &envelope, &admit_all, &kb).unwrap();
    }
    panic!("no envelope with changes");
}

/// Feeds `bytes` and checks the rejection label and that nothing changed.
fn expect_rejected(
    s: &mut Setup,
    bytes: &[u8],
    admitted: &dyn Fn(&[u8; 32]) -> bool,
    label: &str,
) -> Rejected {
    let (doc_before, peer_before) = (s.receiver.save(), s.peer.clone());
    let err = s
        .receiver
        .sync_in(&mut s.peer, bytes, admitted, &key(2))
        .unwrap_err();
    assert_eq!(err.label(), label, "{err}");
    assert_eq!(
        s.receiver.save(),
        doc_before,
        "document changed by a rejected envelope"
    );
    assert_eq!(
        s.peer, peer_before,
        "peer state changed by a rejected envelope"
    );
    err
}

/// Kind, epoch, Automerge message and signatures of a sync envelope.
type Parts = (DocKind, EpochId, Vec<u8>, Vec<(ChangeHash, [u8; 64])>);

fn parts(envelope: &[u8]) -> Parts {
    match decode(envelope) {
        Ok((
            kind,
            epoch,
            Body::Sync {
                message,
                signatures,
            },
        )) => (
            kind,
            epoch,
            message.to_vec(),
            signatures.into_iter().collect(),
        ),
        _ => panic!("not a sync envelope"),
    }
}

/// An envelope carrying one change by `actor` that puts an entry into the
/// entries map (or the root map if `at_root`), signed by `signer`.
fn crafted(s: &Setup, actor: ActorId, at_root: bool, signer: &SigningKey) -> Vec<u8> {
    let mut doc = s.receiver.doc.fork();
    doc.set_actor(actor);
    let obj = if at_root {
        ROOT
    } else {
        s.receiver.entries_obj().unwrap()
    };
    let mut tx = doc.transaction();
    tx.put(&obj, "k", Entry::new(json!(1), 1, signer).encode().unwrap())
        .unwrap();
    tx.commit();
    let change = doc.get_last_local_change().unwrap();
    let message = Message {
        heads: vec![change.hash()],
        need: vec![],
        have: vec![],
        changes: ChunkList::from(vec![change.raw_bytes().to_vec()]),
        flags: None,
        version: MessageVersion::V1,
    };
    let sig = signer.sign(&change_message(&change.hash())).to_bytes();
    encode_sync(
        DocKind::Intel,
        s.receiver.epoch(),
        &message.encode(),
        &[(change.hash(), sig)],
    )
}

#[test]
fn the_genuine_envelope_is_accepted() {
    let mut s = setup();
    let out = s
        .receiver
        .sync_in(&mut s.peer, &s.envelope.clone(), &admit_all, &key(2))
        .unwrap();
    assert_eq!(out.applied, 1);
    assert!(s.receiver.get("ip:10.0.0.1").is_some());
}

#[test]
fn oversized_malformed_and_wrong_kind() {
    let mut s = setup();
    expect_rejected(
        &mut s,
        &vec![0; MAX_SYNC_BYTES + 1],
        &admit_all,
        "oversized",
    );
    expect_rejected(&mut s, b"nonsense", &admit_all, "malformed");
    let bad_message = encode_sync(DocKind::Intel, EpochId::GENESIS, b"\x42\x01", &[]);
    expect_rejected(&mut s, &bad_message, &admit_all, "malformed");
    let mut truncated = s.envelope.clone();
    truncated.truncate(truncated.len() - 1);
    expect_rejected(&mut s, &truncated, &admit_all, "malformed");
    let (_, epoch, message, sigs) = parts(&s.envelope);
    let cases = encode_sync(DocKind::Cases, epoch, &message, &sigs);
    expect_rejected(&mut s, &cases, &admit_all, "wrong_kind");
}

#[test]
fn unsigned_bad_signature_and_not_admitted() {
    let mut s = setup();
    let (kind, epoch, message, mut sigs) = parts(&s.envelope);
    expect_rejected(
        &mut s,
        &encode_sync(kind, epoch, &message, &[]),
        &admit_all,
        "unsigned",
    );
    sigs[0].1[10] ^= 1;
    expect_rejected(
        &mut s,
        &encode_sync(kind, epoch, &message, &sigs),
        &admit_all,
        "bad_signature",
    );
    let sender = s.sender_key.verifying_key().to_bytes();
    let envelope = s.envelope.clone();
    expect_rejected(&mut s, &envelope, &|k| *k != sender, "not_admitted");
}

#[test]
fn foreign_actor_and_writes_outside_the_entries_map() {
    let mut s = setup();
    let forged = crafted(&s, ActorId::from(COMPACTOR), false, &key(1));
    expect_rejected(&mut s, &forged, &admit_all, "foreign_actor");
    let k = key(1);
    let outside = crafted(&s, ActorId::from(k.verifying_key().to_bytes()), true, &k);
    let err = expect_rejected(&mut s, &outside, &admit_all, "malformed");
    assert!(
        err.to_string().contains("writes outside the entries map"),
        "{err}"
    );
    // An actor id that is not a 32-byte key is not an admitted key.
    let short = crafted(&s, ActorId::from([7u8; 16]), false, &k);
    expect_rejected(&mut s, &short, &admit_all, "not_admitted");
}

#[test]
fn bad_snapshots() {
    let mut s = setup();
    let k = key(1);
    let mut compacted = Document::new(DocKind::Intel);
    compacted.put("a", Entry::new(json!(1), 1, &k), &k).unwrap();
    compacted.compact(100, 10, |_, _| false, &k).unwrap();
    let snapshot = compacted.snapshot.clone().unwrap();

    let mut tampered = snapshot.clone();
    let last = tampered.bytes.len() - 1;
    tampered.bytes[last] ^= 1;
    let err = expect_rejected(
        &mut s,
        &encode_snapshot(DocKind::Intel, &tampered),
        &admit_all,
        "bad_snapshot",
    );
    assert!(err.to_string().contains("do not hash"), "{err}");

    let mut forged = snapshot.clone();
    forged.signature[0] ^= 1;
    expect_rejected(
        &mut s,
        &encode_snapshot(DocKind::Intel, &forged),
        &admit_all,
        "bad_snapshot",
    );

    let signer = k.verifying_key().to_bytes();
    let genuine = encode_snapshot(DocKind::Intel, &snapshot);
    let err = expect_rejected(&mut s, &genuine, &|key| *key != signer, "bad_snapshot");
    assert!(err.to_string().contains("not admitted"), "{err}");

    // The genuine one is adopted.
    let out = s
        .receiver
        .sync_in(&mut s.peer, &genuine, &admit_all, &key(2))
        .unwrap();
    assert_eq!(out.adopted, Some(compacted.epoch()));
}

/// Parts of a message that Automerge would trust and then panic on.
#[test]
fn poisoned_sync_state_is_refused() {
    use automerge::sync::{BloomFilter, Have};
    let mut s = setup();
    let empty = |have: Vec<Have>, heads: Vec<ChangeHash>| Message {
        heads,
        need: vec![],
        have,
        changes: ChunkList::empty(),
        flags: None,
        version: MessageVersion::V1,
    };
    // One entry, zero bits: probes would be taken modulo zero.
    let bloom = BloomFilter::try_from(&[1u8, 0, 7][..]).unwrap();
    let zero_bits = empty(
        vec![Have {
            last_sync: vec![],
            bloom,
        }],
        vec![],
    )
    .encode();
    let bytes = encode_sync(DocKind::Intel, EpochId::GENESIS, &zero_bits, &[]);
    let err = expect_rejected(&mut s, &bytes, &admit_all, "malformed");
    assert!(err.to_string().contains("bloom"), "{err}");
    // Unsorted heads would be echoed back and trip an assertion.
    let heads = vec![ChangeHash([2; 32]), ChangeHash([1; 32])];
    let mut unsorted = vec![0x42, 2];
    unsorted.extend_from_slice(&[2; 32]);
    unsorted.extend_from_slice(&[1; 32]);
    unsorted.extend_from_slice(&[0, 0, 0]);
    assert_eq!(Message::decode(&unsorted).unwrap().heads, heads);
    let bytes = encode_sync(DocKind::Intel, EpochId::GENESIS, &unsorted, &[]);
    expect_rejected(&mut s, &bytes, &admit_all, "malformed");
}

/// A correctly signed change whose operation names an actor index the
/// change does not list: Automerge would panic decoding or applying it.
#[test]
fn a_signed_change_with_a_dangling_actor_index_is_malformed() {
    use sha2::{Digest, Sha256};
    let mut s = setup();
    let k = key(1);
    let mut doc = s.receiver.doc.fork();
    doc.set_actor(ActorId::from(k.verifying_key().to_bytes()));
    let obj = s.receiver.entries_obj().unwrap();
    let mut tx = doc.transaction();
    let entry = Entry::new(json!(1), 1, &k).encode().unwrap();
    tx.put(&obj, "k", entry).unwrap();
    tx.commit();
    let raw = doc.get_last_local_change().unwrap().raw_bytes().to_vec();
    // Drop the compactor from the change's other actors (count 1, length
    // 32, zeros → count 0); the op's object still names actor index 1.
    let mut needle = vec![1u8, 32];
    needle.extend_from_slice(&COMPACTOR);
    let at = raw.windows(needle.len()).position(|w| w == needle).unwrap();
    // Chunk: magic (4), checksum (4), type (1), LEB128 length, body.
    let body_start = 9 + raw[9..].iter().position(|b| b & 0x80 == 0).unwrap() + 1;
    let mut body = raw[body_start..at].to_vec();
    body.push(0);
    body.extend_from_slice(&raw[at + needle.len()..]);
    let mut hashed = vec![raw[8]];
    let mut len = body.len();
    while len >= 0x80 {
        hashed.push((len as u8 & 0x7f) | 0x80);
        len >>= 7;
    }
    hashed.push(len as u8);
    hashed.extend_from_slice(&body);
    let hash: [u8; 32] = Sha256::digest(&hashed).into();
    let mut forged = raw[..4].to_vec();
    forged.extend_from_slice(&hash[..4]);
    forged.extend_from_slice(&hashed);
    let change = automerge::Change::try_from(forged.as_slice()).unwrap();
    let message = Message {
        heads: vec![change.hash()],
        need: vec![],
        have: vec![],
        changes: ChunkList::from(vec![forged]),
        flags: None,
        version: MessageVersion::V1,
    };
    let sig = k.sign(&change_message(&change.hash())).to_bytes();
    let bytes = encode_sync(
        DocKind::Intel,
        EpochId::GENESIS,
        &message.encode(),
        &[(change.hash(), sig)],
    );
    let err = expect_rejected(&mut s, &bytes, &admit_all, "malformed");
    assert!(err.to_string().contains("do not decode"), "{err}");
}
