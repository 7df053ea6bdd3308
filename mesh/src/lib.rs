//! Peer-to-peer layer of the AMOSKYS mesh.
//!
//! Today: [`alert`], the signed alert format that every node produces and
//! every peer verifies (canonical bytes, ed25519 signature, size and field
//! limits). To come: the libp2p swarm run as an actor behind a typed handle
//! (one identity, one listening port, gossip with strict validation, and the
//! request-response protocols that consensus and learning reuse).
//!
//! This crate knows nothing of the node crate.

pub mod alert;

pub use alert::{Alert, AlertBody, AlertError};
