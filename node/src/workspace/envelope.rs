//! The sync envelope: a versioned binary wrapper around one Automerge sync
//! message and the signatures of the changes it carries, or around a
//! snapshot, or a bare hello that announces the sender's epoch (layout in
//! NOTES.md). Decoding never panics and checks the parts of the Automerge
//! message that Automerge itself would trust.

use std::collections::HashMap;

use automerge::ChangeHash;
use automerge::sync::Message;

use super::doc::DocKind;
use super::epoch::{EpochId, Snapshot};
use super::wire::{Reader, WireError, Writer};

const MAGIC: &[u8; 4] = b"AMWS";
const VERSION: u8 = 1;
const TAG_SYNC: u8 = 0;
const TAG_SNAPSHOT: u8 = 1;
const TAG_HELLO: u8 = 2;
/// Envelope bytes besides the Automerge message and the signatures.
pub(super) const SYNC_OVERHEAD: usize = 4 + 1 + 1 + 8 + 32 + 1 + 4 + 4;

/// A decoded envelope body.
pub(super) enum Body<'a> {
    Sync {
        message: &'a [u8],
        signatures: HashMap<ChangeHash, [u8; 64]>,
    },
    Snapshot(Snapshot),
    Hello,
}

/// The document an envelope is for, read from its header alone (the
/// receiver picks the document, then `sync_in` checks everything).
pub(super) fn peek_kind(bytes: &[u8]) -> Option<DocKind> {
    match bytes {
        [m0, m1, m2, m3, VERSION, kind, ..] if [*m0, *m1, *m2, *m3] == *MAGIC => {
            DocKind::from_code(*kind)
        }
        _ => None,
    }
}

fn header(kind: DocKind, epoch: EpochId, tag: u8) -> Writer {
    let mut w = Writer::new();
    w.bytes(MAGIC)
        .u8(VERSION)
        .u8(kind.code())
        .u64(epoch.number)
        .bytes(&epoch.hash)
        .u8(tag);
    w
}

/// A sync envelope: the Automerge message and a signature per change.
pub(super) fn encode_sync(
    kind: DocKind,
    epoch: EpochId,
    message: &[u8],
    signatures: &[(ChangeHash, [u8; 64])],
) -> Vec<u8> {
    let mut w = header(kind, epoch, TAG_SYNC);
    w.blob(message)
        .u32(u32::try_from(signatures.len()).unwrap_or(u32::MAX));
    for (hash, sig) in signatures {
        w.bytes(hash.as_ref()).bytes(sig);
    }
    w.finish()
}

/// A snapshot envelope; its epoch is the snapshot's.
pub(super) fn encode_snapshot(kind: DocKind, snapshot: &Snapshot) -> Vec<u8> {
    let mut w = header(kind, snapshot.epoch, TAG_SNAPSHOT);
    snapshot.write(&mut w);
    w.finish()
}

/// A hello: only the sender's epoch, so a peer ahead sends its snapshot.
pub(super) fn encode_hello(kind: DocKind, epoch: EpochId) -> Vec<u8> {
    header(kind, epoch, TAG_HELLO).finish()
}

pub(super) fn decode(bytes: &[u8]) -> Result<(DocKind, EpochId, Body<'_>), String> {
    let mut r = Reader::new(bytes);
    let wire = |e: WireError| e.0;
    if r.take(4, "magic").map_err(wire)? != MAGIC {
        return Err("bad magic".into());
    }
    let version = r.u8("version").map_err(wire)?;
    if version != VERSION {
        return Err(format!(
            "envelope version {version} is not supported (expected {VERSION})"
        ));
    }
    let code = r.u8("kind").map_err(wire)?;
    let kind = DocKind::from_code(code).ok_or_else(|| format!("unknown document kind {code}"))?;
    let epoch = EpochId {
        number: r.u64("epoch number").map_err(wire)?,
        hash: r.array("epoch hash").map_err(wire)?,
    };
    let body = match r.u8("tag").map_err(wire)? {
        TAG_SYNC => {
            let message = r.blob("automerge message").map_err(wire)?;
            let n = r.count(96, "signatures").map_err(wire)?;
            let mut signatures = HashMap::with_capacity(n);
            for _ in 0..n {
                let hash = ChangeHash(r.array("signature hash").map_err(wire)?);
                if signatures
                    .insert(hash, r.array("signature").map_err(wire)?)
                    .is_some()
                {
                    return Err(format!("two signatures for change {hash}"));
                }
            }
            Body::Sync {
                message,
                signatures,
            }
        }
        TAG_SNAPSHOT => Body::Snapshot(Snapshot::read(&mut r, epoch).map_err(wire)?),
        TAG_HELLO => Body::Hello,
        tag => return Err(format!("unknown envelope tag {tag}")),
    };
    r.end("envelope").map_err(wire)?;
    Ok((kind, epoch, body))
}

/// Automerge trusts parts of the peer's message: bloom filter parameters
/// (zero bits with entries divide by zero, a huge probe count allocates
/// without bound) and sorted hash lists (re-encoding unsorted heads trips a
/// debug assertion). Accept only what Automerge itself generates.
pub(super) fn check_message(message: &Message) -> Result<(), String> {
    let sorted = |hashes: &[ChangeHash]| hashes.windows(2).all(|w| w[0] <= w[1]);
    if !sorted(&message.heads)
        || !sorted(&message.need)
        || !message.have.iter().all(|h| sorted(&h.last_sync))
    {
        return Err("hash lists are not sorted".into());
    }
    if message.have.len() > 1 {
        return Err(format!(
            "{} bloom filters; at most one is expected",
            message.have.len()
        ));
    }
    for have in &message.have {
        let bytes = have.bloom.to_bytes();
        let mut rest = bytes.as_slice();
        let mut fields = [0u64; 3];
        for field in &mut fields {
            let len = rest
                .iter()
                .position(|b| b & 0x80 == 0)
                .map_or(rest.len(), |i| i + 1);
            let (head, tail) = rest.split_at(len.min(5));
            *field = head
                .iter()
                .rev()
                .fold(0, |acc, b| (acc << 7) | u64::from(b & 0x7f));
            rest = tail;
        }
        let [entries, _bits_per_entry, probes] = fields;
        if entries > 0 && (rest.is_empty() || !(1..=32).contains(&probes)) {
            return Err(format!(
                "bloom filter with {} bytes and {probes} probes",
                rest.len()
            ));
        }
    }
    Ok(())
}
