//! Detection and learning for AMOSKYS: per-entity feature windows
//! ([`features`]), policy rule detectors ([`rules`]), the local anomaly
//! model ([`anomaly`]), the drift of its live scores ([`drift`]), and the
//! pure logic of federated rounds and their aggregation rules
//! ([`federated`]), and what analysts' verdicts teach: the supervised
//! [`head`] that re-ranks alerts and the [`active`] learner that picks the
//! alerts worth judging.
//!
//! [`eval`] holds the ranking metrics and the KDD Cup 99 loader used to
//! measure detectors on real labelled data. [`fuzzing`] is the entry of
//! the Sigma loader's fuzz target (`learning/fuzz/`).
//!
//! Everything here is I/O-free: events in, [`Finding`]s out. Time is the
//! events' own time, so replaying the same events gives the same findings.
//! The node crate feeds the detectors and turns findings into signed alerts.
//! This crate may use the event types of `amoskys-sensors`.

pub mod active;
pub mod anomaly;
pub mod drift;
pub mod eval;
pub mod features;
pub mod federated;
mod finding;
pub mod fuzzing;
pub mod head;
pub mod rules;
pub mod sketch;
pub mod window;

pub use finding::{Category, Finding, Severity, Subject};
pub use rules::{OwnSockets, RuleEngine, RulePolicy};
