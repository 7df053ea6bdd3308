//! The shared workspace: threat intel and case notes that every node can
//! edit, also while the mesh is partitioned, and that converge when it heals.
//!
//! Each kind is an Automerge document ([`doc`]) of signed changes. Nodes
//! exchange [`sync`] envelopes over a request-response transport (not here):
//! every change is verified against the admitted keys before any is applied.
//! History is bounded by compaction into epochs ([`epoch`]); a node that
//! meets a newer epoch rebases its own state onto it, so concurrent
//! compactions and long partitions lose no edits (one known limit, on
//! removals older than the tombstone retention, is described in [`epoch`]).
//!
//! On top: [`intel`] (IOC lists, with [`matcher::IocMatcher`] for live
//! detection), [`cases`] (status, assignee and notes per alert) and
//! [`decisions`] (the response decisions every node enforces);
//! [`live`] runs them on a node (storage, API edits, sync over the mesh,
//! compaction). An edit made through the API carries its [`operator`]: the
//! operator's signed request, checked by anyone who reads the entry.

pub mod cases;
mod claims;
pub mod decisions;
pub mod doc;
mod envelope;
pub mod epoch;
mod file;
pub mod fuzzing;
mod indicator;
pub mod intel;
pub mod live;
pub mod matcher;
pub mod operator;
pub mod sync;
mod wire;

pub use cases::{Case, CaseError, CaseNotes, Note, Status, Verdict};
pub use doc::{DocKind, Document, Entry, WsError};
pub use epoch::{CompactReport, EpochId};
pub use intel::{Ioc, IocError, IocKind, ThreatIntel, parse_indicator};
pub use live::{EditError, Settings, Workspace, WorkspaceStatus};
pub use matcher::IocMatcher;
pub use operator::{Operator, OperatorView, ProofError};
pub use sync::{MAX_SYNC_BYTES, PeerEpoch, PeerSync, Rejected, SyncOutcome};

/// The document a sync envelope is for, from its header alone; `None` when
/// the bytes are not a workspace envelope.
pub fn envelope_kind(bytes: &[u8]) -> Option<DocKind> {
    envelope::peek_kind(bytes)
}

#[cfg(test)]
mod tests;
