//! The AMOSKYS node: one process per host that collects telemetry, detects
//! attacks, and shares signed alerts with its peers.
//!
//! This crate wires the layers together and performs their I/O:
//! - [`config`]: layered, validated configuration (embedded defaults, file,
//!   `AMOSKYS_*` environment, flags);
//! - [`identity`]: the node's ed25519 key, which is also its libp2p PeerId;
//! - [`storage`]: one RocksDB database with a column family per concern;
//! - [`ingest`]: the single writer from the sensors' channel to the store;
//! - [`detect`] and [`privacy`]: rules over stored events, signed alerts;
//! - [`api`] and [`metrics`]: the HTTP API and Prometheus metrics;
//! - [`outputs`]: alerts to syslog collectors, webhooks and files;
//! - [`response`]: decisions the mesh agrees on, enforced with nftables;
//! - [`audit`]: signed audit records, committed through Raft with the
//!   actions they record;
//! - [`auth`]: signed API requests, operator roles per route, key files;
//! - [`tls`]: the API's TLS (certificate files, or self-signed from the node key);
//! - [`trust`]: the signed membership export and the trust set that
//!   offline alert checks use;
//! - [`Node`]: start, the sensor → store event path, graceful shutdown;
//! - [`fuzzing`]: one entry per decoder of outside input, for the fuzz
//!   targets of `node/fuzz/` and the corpus replay in `tests/`.
//!
//! The `amoskys` binary is a thin command line over this library, so
//! simulations and tests can run many nodes in one process.

pub mod api;
pub mod audit;
pub mod auth;
pub mod baseline;
pub mod cluster;
pub mod config;
pub mod console;
pub mod detect;
pub mod drift;
pub mod eval;
pub mod eval_federated;
pub mod federation;
pub mod fuzzing;
pub mod identity;
pub mod ingest;
pub mod ioc;
pub mod members;
pub mod metrics;
pub mod models;
mod node;
pub mod outputs;
pub mod peering;
pub mod policy;
pub mod privacy;
pub mod response;
pub mod rotation;
pub mod storage;
pub mod suppress;
pub mod telemetry;
pub mod tls;
pub mod trust;
pub mod verdicts;
pub mod workspace;

pub use config::Config;
pub use identity::Identity;
pub use node::{Hooks, Node, NodeError, VERSION};
