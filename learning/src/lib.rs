//! Detection and learning for AMOSKYS: per-entity feature windows, policy
//! rule detectors, the local anomaly model, and the pure logic of federated
//! rounds and their aggregation rules.
//!
//! Everything here is I/O-free (events in, findings or updates out); the node
//! crate feeds it and acts on what it returns. It may use the event types of
//! `amoskys-sensors`.
//!
//! Status: not built yet; events are collected and stored but not analysed.
