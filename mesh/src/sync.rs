//! Reconciliation: what gossip missed (a partition, a restart, a node that
//! joined late) is fetched when peers connect, and again every minute.
//!
//! A node's [`Holdings`] summarise the alerts it holds as ranges of
//! sequence numbers per origin key; alerts are numbered per origin, so a
//! node that saw everything sends one range per origin. A peer answers a
//! summary with the alerts the asker lacks, at most [`SYNC_BATCH`] at a
//! time; the asker asks again while answers come back full. Fetched alerts
//! are checked like gossiped ones (admitted origin, signature, duplicates;
//! not the time window, since they are old by nature) and stored the same
//! way.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::alert::Alert;

/// Alerts in one sync answer.
pub const SYNC_BATCH: usize = 256;
/// Origins and ranges in one summary (a bound on the request's size).
pub const MAX_RANGES: usize = 100_000;

/// Sequence ranges (inclusive) held per origin key (hex).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holdings {
    pub origins: BTreeMap<String, Vec<(u64, u64)>>,
}

impl Holdings {
    /// Builds the summary from `(origin key, seq)` pairs in any order.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, u64)>) -> Holdings {
        let mut seqs: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for (origin, seq) in pairs {
            seqs.entry(origin).or_default().push(seq);
        }
        let origins = seqs
            .into_iter()
            .map(|(origin, mut s)| {
                s.sort_unstable();
                s.dedup();
                let mut ranges: Vec<(u64, u64)> = Vec::new();
                for v in s {
                    match ranges.last_mut() {
                        Some((_, hi)) if hi.checked_add(1) == Some(v) => *hi = v,
                        _ => ranges.push((v, v)),
                    }
                }
                (origin, ranges)
            })
            .collect();
        Holdings { origins }
    }

    pub fn contains(&self, origin: &str, seq: u64) -> bool {
        self.origins.get(origin).is_some_and(|r| {
            let i = r.partition_point(|(lo, _)| *lo <= seq);
            i > 0 && r[i - 1].1 >= seq
        })
    }

    /// Ranges in the summary (its size).
    pub fn ranges(&self) -> usize {
        self.origins.values().map(Vec::len).sum()
    }
}

/// What the node holds, asked by the mesh task (off the async runtime).
pub trait AlertLedger: std::fmt::Debug + Send + Sync + 'static {
    fn holdings(&self) -> Result<Holdings, String>;
    /// Alerts held here that `theirs` lacks, at most `limit`.
    fn missing(&self, theirs: &Holdings, limit: usize) -> Result<Vec<Alert>, String>;
}

/// A sync request: the asker's holdings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SyncRequest {
    pub holdings: Holdings,
}

/// A sync answer: encoded alerts the asker lacks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SyncResponse {
    pub alerts: Vec<Vec<u8>>,
    /// More are waiting; ask again.
    pub more: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_fold_into_ranges_and_lookups_agree() {
        let pairs = [1u64, 2, 3, 7, 5, 6, 10]
            .into_iter()
            .map(|s| ("aa".to_owned(), s))
            .chain([("bb".to_owned(), 4)]);
        let h = Holdings::from_pairs(pairs);
        assert_eq!(h.origins["aa"], vec![(1, 3), (5, 7), (10, 10)]);
        assert_eq!(h.ranges(), 4);
        for s in 0..12 {
            let held = [1, 2, 3, 5, 6, 7, 10].contains(&s);
            assert_eq!(h.contains("aa", s), held, "seq {s}");
        }
        assert!(h.contains("bb", 4) && !h.contains("bb", 3) && !h.contains("cc", 1));
    }
}
