//! Testnets of real AMOSKYS processes: network namespaces (one host per
//! namespace behind a bridge of its own) and docker, with fault verbs
//! (partition, heal, kill, restart, packet loss).
//!
//! Status: not built yet.
