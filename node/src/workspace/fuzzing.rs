//! Entry points for fuzzing the workspace sync (`node/fuzz/`): an envelope
//! as a peer sends it, and an Automerge change as an admitted member would
//! sign it (a member's key signs whatever change it likes, so a change's
//! contents must be safe to apply once its signature verifies). Both go
//! through [`Document::sync_in`], the path of every envelope from the mesh.

use automerge::sync::{ChunkList, Message, MessageVersion};
use automerge::{Change, ChangeHash};
use ed25519_dalek::{Signer, SigningKey};
use serde_json::json;

use super::doc::{DocKind, Document, Entry, change_message};
use super::envelope::encode_sync;
use super::sync::PeerSync;

/// The admitted member whose key authors the seed changes.
pub const MEMBER_SEED: [u8; 32] = [3; 32];

fn member() -> SigningKey {
    SigningKey::from_bytes(&MEMBER_SEED)
}

fn admitted(key: &[u8; 32]) -> bool {
    *key == member().verifying_key().to_bytes()
}

/// Applies `bytes` to an empty document of the envelope's kind as if
/// `peer` sent it; an accepted envelope is followed by what the node does
/// next (answer, read the entries).
fn feed(kind: DocKind, bytes: &[u8]) {
    let mut doc = Document::new(kind);
    let mut peer = PeerSync::new();
    if doc.sync_in(&mut peer, bytes, &admitted, &member()).is_ok() {
        let _ = doc.sync_out(&mut peer);
        let _ = doc.entries();
    }
}

/// A workspace sync envelope from a peer.
pub fn envelope(bytes: &[u8]) {
    feed(super::envelope_kind(bytes).unwrap_or(DocKind::Intel), bytes);
}

/// A change signed by the admitted member, in a sync envelope of the
/// intel document.
pub fn signed_change(bytes: &[u8]) {
    let Ok(change) = Change::try_from(bytes) else {
        return;
    };
    let hash = change.hash();
    feed(DocKind::Intel, &envelope_of(&[(bytes.to_vec(), hash)]));
}

/// A sync envelope carrying `changes`, each signed by the member.
fn envelope_of(changes: &[(Vec<u8>, ChangeHash)]) -> Vec<u8> {
    let signatures: Vec<(ChangeHash, [u8; 64])> = changes
        .iter()
        .map(|(_, h)| (*h, member().sign(&change_message(h)).to_bytes()))
        .collect();
    let message = Message {
        heads: changes.iter().map(|(_, h)| *h).collect(),
        need: Vec::new(),
        have: Vec::new(),
        changes: ChunkList::from(changes.iter().map(|(c, _)| c.clone()).collect::<Vec<_>>()),
        flags: None,
        version: MessageVersion::V1,
    };
    encode_sync(
        DocKind::Intel,
        Document::new(DocKind::Intel).epoch(),
        &message.encode(),
        &signatures,
    )
}

/// Seeds for both targets, from real documents: `(target, name, bytes)`.
/// Envelopes a member's document sends to an empty one (every kind), a
/// hello, and the member's changes one by one.
pub fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let key = member();
    let mut out = Vec::new();
    for kind in DocKind::ALL {
        let mut doc = Document::new(kind);
        for i in 0..3u64 {
            let entry = Entry::new(
                json!({"indicator": format!("192.0.2.{i}"), "i": i}),
                i,
                &key,
            );
            let _ = doc.put(&format!("k{i}"), entry, &key);
        }
        let mut empty = Document::new(kind);
        let (mut to_empty, mut to_doc) = (PeerSync::new(), PeerSync::new());
        for round in 0..3 {
            if let Some(m) = empty.sync_out(&mut to_doc) {
                out.push((
                    "envelope",
                    format!("{}-ask-{round}", kind.label()),
                    m.clone(),
                ));
                let _ = doc.sync_in(&mut to_empty, &m, &admitted, &key);
            }
            if let Some(m) = doc.sync_out(&mut to_empty) {
                out.push((
                    "envelope",
                    format!("{}-send-{round}", kind.label()),
                    m.clone(),
                ));
                let _ = empty.sync_in(&mut to_doc, &m, &admitted, &key);
            }
        }
        if kind == DocKind::Intel {
            for (i, c) in doc.doc.get_changes(&[]).iter().enumerate() {
                out.push((
                    "signed_change",
                    format!("change-{i}"),
                    c.raw_bytes().to_vec(),
                ));
            }
        }
    }
    out
}
