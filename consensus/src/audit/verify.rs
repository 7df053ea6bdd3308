//! The offline check of an exported trail (`amoskys audit verify`): every
//! line in order through [`ChainCheck`], each recording node and the
//! exporting node through the caller's trust check, and the signed head
//! last. Stops at the first bad line and names its entry.

use std::io::BufRead;

use super::{ChainCheck, ExportHead, ExportLine};
use crate::NodeId;

/// Longest line read (an entry is a few KiB at most).
const MAX_LINE: usize = 64 * 1024;

/// What a trail that verifies holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub count: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    /// The node that exported and signed the head.
    pub exporter: NodeId,
}

/// The first bad line: its number (from 1) and why, naming the entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct Failed {
    pub line: usize,
    pub reason: String,
}

/// Checks an export read from `input`; `trusted` says whether a node's
/// signature counts (recording nodes and the exporter).
pub fn verify_export(
    input: impl BufRead,
    trusted: impl Fn(&NodeId) -> Result<(), String>,
) -> Result<Verified, Failed> {
    let mut check = ChainCheck::default();
    let mut head: Option<(usize, ExportHead)> = None;
    let mut first_seq = None;
    let mut last_line = 0;
    for (i, line) in input.lines().enumerate() {
        let n = i + 1;
        last_line = n;
        let fail = |reason: String| Failed { line: n, reason };
        let line = line.map_err(|e| fail(format!("cannot read: {e}")))?;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some((at, _)) = &head {
            return Err(fail(format!(
                "entry {}: found after the signed head (line {at}): the head must be last",
                check.expected()
            )));
        }
        if line.len() > MAX_LINE {
            return Err(fail(format!(
                "entry {}: unreadable: line of {} bytes is over the limit of {MAX_LINE}",
                check.expected(),
                line.len()
            )));
        }
        match serde_json::from_str::<ExportLine>(line) {
            Ok(ExportLine::Entry(e)) => {
                check.push(&e).map_err(|e| fail(e.to_string()))?;
                trusted(&e.record.node).map_err(|why| {
                    fail(format!(
                        "entry {}: recorded by an untrusted node: {why}",
                        e.seq
                    ))
                })?;
                first_seq.get_or_insert(e.seq);
            }
            Ok(ExportLine::Head { head: h }) => head = Some((n, h)),
            Err(e) => {
                return Err(fail(format!(
                    "entry {}: unreadable (edited?): {e}",
                    check.expected()
                )));
            }
        }
    }
    let Some((at, head)) = head else {
        return Err(Failed {
            line: last_line + 1,
            reason: format!(
                "entry {}: no signed head after it: the end of the export was cut off",
                check.expected()
            ),
        });
    };
    let fail = |reason: String| Failed { line: at, reason };
    trusted(&head.node).map_err(|why| fail(format!("head: signed by an untrusted node: {why}")))?;
    check.finish(&head).map_err(|e| fail(e.to_string()))?;
    Ok(Verified {
        count: check.count(),
        first_seq: first_seq.unwrap_or(0),
        last_seq: head.last_seq,
        exporter: head.node,
    })
}
