//! Raft-replicated state of the AMOSKYS mesh: detection policy, membership
//! (admitted node keys, voters and learners) and the model registry.
//!
//! This crate will hold the openraft type configuration, the RocksDB log
//! store and state machine (in the node's `raft_log` and `raft_state` column
//! families) and the network adapter over the mesh's request-response
//! protocol. It knows nothing of the node crate.
//!
//! Status: not built yet; a node today is a standalone sensor.
