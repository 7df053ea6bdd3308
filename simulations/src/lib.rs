//! Seeded in-process simulations of many AMOSKYS nodes.
//!
//! - [`scenario`]: the scenario file (nodes, attacks, faults, Byzantine
//!   peers, seed) and its seeded schedule;
//! - [`run`]: runs real nodes in this process (each with its RocksDB, its
//!   libp2p mesh on loopback, Raft and detection), injects synthetic port
//!   scans as flows, applies faults, lets Byzantine peers publish forged
//!   alerts, and checks the invariants;
//! - `faults`: kill, restart, partitions (both ways and one way), heal,
//!   slow and lossy links, the sampling of Raft leaders per term, and the
//!   check that a healed partition leaves the leader in place;
//! - `clients`: policy writes, linearizable reads and workspace edits made
//!   during a run, and the checks of what they saw;
//! - [`explore`]: the fault explorer: random schedules drawn from seeds,
//!   run and checked, any failure replayable from its seed;
//! - [`federated`]: federated rounds over the simulated sites, with
//!   poisoned sites and stragglers, and the model's quality per round;
//! - [`report`]: the JSON result, a Markdown report and SVG plots.

mod clients;
pub mod explore;
mod faults;
pub mod federated;
pub mod report;
pub mod run;
pub mod scenario;
