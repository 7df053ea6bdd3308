//! Seeded simulations of many AMOSKYS nodes in one process: synthetic site
//! telemetry with injected attacks, crashes, partitions, slow links and
//! Byzantine nodes, replayable exactly from a seed.
//!
//! Status: not built yet. `amoskys_node::Node` already runs many times in one
//! process, each node with its own data directory and API port.
