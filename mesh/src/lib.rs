//! Peer-to-peer layer of the AMOSKYS mesh.
//!
//! - [`alert`]: the signed alert format that every node produces and every
//!   peer verifies (canonical bytes, ed25519 signature, size and field
//!   limits);
//! - [`gossip`]: the ordered validation of gossiped alerts (rate, size,
//!   decode, admitted origin, signature, time window, duplicates);
//! - [`net`]: the libp2p swarm as an actor task behind [`MeshHandle`]: one
//!   identity, TCP+noise+yamux and QUIC (or TCP behind a pre-shared key),
//!   static bootstrap, mDNS and Kademlia, alert gossip that forwards only what the
//!   receiver has stored.
//!
//! - [`correlate`]: cross-site campaigns (k nodes, one technique, one
//!   subject, one window), announced by one node;
//! - [`sync`]: reconciliation over request-response: peers exchange what
//!   they hold (sequence ranges per origin) and fetch what they lack;
//! - [`fuzzing`]: one entry per decoder a peer reaches, for the fuzz
//!   targets of `mesh/fuzz/` and the corpus replay in `tests/`.
//!
//! To come: the request-response
//! protocols that consensus and learning reuse. This crate knows nothing of the node crate.

pub mod alert;
pub mod correlate;
pub mod fuzzing;
pub mod gossip;
pub mod net;
pub mod rpc;
pub mod sync;

pub use alert::{Alert, AlertBody, AlertError};
pub use gossip::{Reject, Validator, ValidatorConfig};
pub use net::{
    InboundRequest, MeshConfig, MeshError, MeshHandle, MeshStats, PeerInfo, Received, Tapped,
    ed25519_key,
};
pub use rpc::Service;
pub use sync::{AlertLedger, Holdings};
