//! Entry points for fuzzing: each takes bytes as a peer sends them and runs
//! them through the decoders and checks the mesh itself uses, asserting
//! what must hold for any input. The targets of `mesh/fuzz/` call one
//! function each, and `tests/fuzz_corpus.rs` replays the seed corpora and
//! the regressions through the same functions in plain `cargo test`.
//!
//! Nothing here runs in a node; a panic in any of these functions is a bug
//! in the code they call.

use std::sync::OnceLock;

use ed25519_dalek::SigningKey;
use futures::executor::block_on;
use futures::io::Cursor;
use libp2p::StreamProtocol;
use libp2p::request_response::{Codec, cbor};

use crate::alert::Alert;
use crate::gossip::{Reject, Validator, ValidatorConfig};
use crate::net::PeerView;
use crate::rpc::{RPC_PROTOCOL, RpcCodec};
use crate::sync::{SYNC_BATCH, SyncRequest, SyncResponse};

/// The key that signs the seed alerts (an admitted member).
pub const MEMBER_SEED: [u8; 32] = [7; 32];
/// A retired member's key; its alerts up to [`RETIRED_LAST`] still count.
pub const RETIRED_SEED: [u8; 32] = [8; 32];
pub const RETIRED_LAST: u64 = 5;
/// The receiver's clock: the seed alerts' time.
pub const NOW_NS: u64 = 1_795_000_000_000_000_000;

/// The sync protocol's codec, as the swarm builds it (libp2p's defaults).
type SyncCodec = cbor::codec::Codec<SyncRequest, SyncResponse>;

/// A fresh validator per input (no state carried between inputs); the
/// public keys are derived once.
fn validator() -> Validator {
    static KEYS: OnceLock<([u8; 32], [u8; 32])> = OnceLock::new();
    let (member, retired) = KEYS.get_or_init(|| {
        let key = |seed: &[u8; 32]| SigningKey::from_bytes(seed).verifying_key().to_bytes();
        (key(&MEMBER_SEED), key(&RETIRED_SEED))
    });
    let mut v = Validator::new(ValidatorConfig {
        admitted: vec![*member],
        ..ValidatorConfig::default()
    });
    v.set_retired([(*retired, RETIRED_LAST)]);
    v
}

/// Alert decode and verify; a verified alert encodes to bytes that verify.
pub fn alert(bytes: &[u8]) {
    if let Ok(a) = Alert::decode(bytes) {
        let again = Alert::decode(&a.encode());
        assert_eq!(again.as_ref(), Ok(&a), "a verified alert re-encodes");
    }
}

/// A gossip message from a peer, through the validator; an accepted alert
/// is a duplicate the second time (gossip or sync).
pub fn gossip(bytes: &[u8]) {
    let mut v = validator();
    if v.check(bytes, "peer", NOW_NS).is_ok() {
        assert_eq!(v.check_synced(bytes).err(), Some(Reject::Duplicate));
    }
}

/// A sync request as the sync protocol reads it; the summary is queried as
/// the ledger queries it.
pub fn sync_request(bytes: &[u8]) {
    let read =
        block_on(SyncCodec::default().read_request(&sync_protocol(), &mut Cursor::new(bytes)));
    if let Ok(req) = read {
        let h = &req.holdings;
        let _ = h.ranges();
        for (origin, ranges) in h.origins.iter().take(16) {
            for (lo, hi) in ranges.iter().take(16) {
                let _ = h.contains(origin, *lo) || h.contains(origin, *hi);
                let _ = h.contains(origin, hi.wrapping_add(1));
            }
        }
    }
}

/// A sync answer as the sync protocol reads it; its alerts go through the
/// validator as fetched alerts do.
pub fn sync_response(bytes: &[u8]) {
    let read =
        block_on(SyncCodec::default().read_response(&sync_protocol(), &mut Cursor::new(bytes)));
    if let Ok(res) = read {
        let mut v = validator();
        for a in res.alerts.iter().take(SYNC_BATCH) {
            if let Ok(alert) = v.check_synced(a) {
                let _ = v.is_fresh(alert.body.time_ns, NOW_NS);
            }
        }
    }
}

/// A request of the RPC protocol (any service), read by its codec.
pub fn rpc_request(bytes: &[u8]) {
    let proto = StreamProtocol::new(RPC_PROTOCOL);
    if let Ok(req) = block_on(RpcCodec.read_request(&proto, &mut Cursor::new(bytes))) {
        assert!(req.body.len() <= req.service.max_request());
    }
}

/// A response of the RPC protocol (any service), read by its codec.
pub fn rpc_response(bytes: &[u8]) {
    let proto = StreamProtocol::new(RPC_PROTOCOL);
    if let Ok(res) = block_on(RpcCodec.read_response(&proto, &mut Cursor::new(bytes)))
        && let Ok(body) = &res.result
    {
        assert!(body.len() <= res.service.max_response());
    }
}

/// A peer's view ([`crate::rpc::Service::View`] answer).
pub fn view(bytes: &[u8]) {
    if let Ok(v) = PeerView::decode(bytes) {
        assert!(v.peers.len() <= crate::net::MAX_VIEW_PEERS);
        assert!(v.name.chars().count() <= crate::net::MAX_NAME_CHARS);
        assert_eq!(PeerView::decode(&v.encode()).as_ref(), Ok(&v));
    }
}

fn sync_protocol() -> StreamProtocol {
    StreamProtocol::new(crate::net::SYNC_PROTOCOL)
}
