//! Seeded in-process simulations of many AMOSKYS nodes.
//!
//! - [`scenario`]: the scenario file (nodes, attacks, faults, Byzantine
//!   peers, seed) and its seeded schedule;
//! - [`run`]: runs real nodes in this process (each with its RocksDB, its
//!   libp2p mesh on loopback, Raft and detection), injects synthetic port
//!   scans as flows, applies faults, lets Byzantine peers publish forged
//!   alerts, and checks the invariants;
//! - `faults`: kill, restart, partition, heal and slow links, and the
//!   sampling of Raft leaders per term;
//! - [`federated`]: federated rounds over the simulated sites, with
//!   poisoned sites and stragglers, and the model's quality per round;
//! - [`report`]: the JSON result, a Markdown report and SVG plots.

mod faults;
pub mod federated;
pub mod report;
pub mod run;
pub mod scenario;
