//! Peer-to-peer transport of the AMOSKYS mesh.
//!
//! This crate will hold the libp2p swarm, run as an actor behind a typed
//! handle: one identity (the node's ed25519 key), one listening port, signed
//! alert gossip with strict validation, and the request-response protocols
//! that consensus and learning reuse. It knows nothing of the node crate.
//!
//! Status: not built yet; the node validates `mesh.*` configuration but opens
//! no mesh socket.
