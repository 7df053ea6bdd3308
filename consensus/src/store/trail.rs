//! The audit entries, in `raft_state` under `audit/` and the sequence
//! number (8 bytes, big-endian): written in the same synced batch as the
//! applied state that counts them, never touched by log purges, carried
//! whole by snapshots and replaced whole when one is installed.
//!
//! Retention: at most [`MAX_ENTRIES`]; entries older than
//! [`RETENTION_NS`] before the newest are dropped too, but never the newest
//! [`MIN_KEPT`]. Both depend only on the entries, so every member drops the
//! same ones. The first kept entry names the hash of the one before it: the
//! trail stays verifiable from there.

use std::sync::Arc;

use openraft::AnyError;
use rocksdb::{ColumnFamily, Direction, IteratorMode, WriteBatch};

use super::{Database, decode, encode, state_cf};
use crate::audit::{AuditEntry, MAX_ENTRIES, MIN_KEPT, RETENTION_NS};

const PREFIX: &[u8] = b"audit/";
/// Entries dropped for age in one batch, at most.
const AGE_PRUNE_BATCH: usize = 1_000;

fn key(seq: u64) -> Vec<u8> {
    let mut k = PREFIX.to_vec();
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn seq_of(k: &[u8]) -> Option<u64> {
    let rest = k.strip_prefix(PREFIX)?;
    Some(u64::from_be_bytes(rest.try_into().ok()?))
}

/// Adds `entries` to `batch`.
pub(super) fn put(
    batch: &mut WriteBatch,
    cf: &ColumnFamily,
    entries: &[AuditEntry],
) -> Result<(), AnyError> {
    for e in entries {
        batch.put_cf(cf, key(e.seq), encode(e)?);
    }
    Ok(())
}

/// Adds to `batch` the deletion of every entry.
pub(super) fn clear(batch: &mut WriteBatch, cf: &ColumnFamily) {
    batch.delete_range_cf(cf, key(0), key(u64::MAX));
    batch.delete_cf(cf, key(u64::MAX));
}

/// Adds to `batch` the deletion of the entries past retention, once the
/// entries `new` (the last ones) are added.
pub(super) fn prune(
    db: &Arc<dyn Database>,
    batch: &mut WriteBatch,
    new: &[AuditEntry],
) -> Result<(), AnyError> {
    let (Some(first), Some(newest)) = (new.first(), new.last()) else {
        return Ok(());
    };
    let cf = state_cf(db)?;
    let count = newest.seq;
    // Each entry added pushes out the one MAX_ENTRIES before it.
    for seq in first.seq.saturating_sub(MAX_ENTRIES)..=count.saturating_sub(MAX_ENTRIES) {
        if seq > 0 {
            batch.delete_cf(cf, key(seq));
        }
    }
    let first_kept = count.saturating_sub(MAX_ENTRIES) + 1;
    let newest_ns = newest.record.time_ns;
    let Some(cutoff) = newest_ns.checked_sub(RETENTION_NS) else {
        return Ok(());
    };
    let protected = count.saturating_sub(MIN_KEPT) + 1;
    let it = db
        .db()
        .iterator_cf(cf, IteratorMode::From(&key(first_kept), Direction::Forward));
    for item in it.take(AGE_PRUNE_BATCH) {
        let (k, v) = item.map_err(|e| AnyError::new(&e))?;
        let Some(seq) = seq_of(&k) else { break };
        if seq >= protected {
            break;
        }
        let e: AuditEntry = decode(&v)?;
        if e.record.time_ns >= cutoff {
            break;
        }
        batch.delete_cf(cf, k);
    }
    Ok(())
}

/// Every stored entry with a sequence number up to `last`, oldest first
/// (for a snapshot).
pub(super) fn up_to(db: &Arc<dyn Database>, last: u64) -> Result<Vec<AuditEntry>, AnyError> {
    let mut out = Vec::new();
    scan(db, 0, |e| {
        if e.seq > last {
            return false;
        }
        out.push(e);
        true
    })?;
    Ok(out)
}

/// Calls `f` on each stored entry after `after`, oldest first, until it
/// answers false.
fn scan(
    db: &Arc<dyn Database>,
    after: u64,
    mut f: impl FnMut(AuditEntry) -> bool,
) -> Result<(), AnyError> {
    let cf = state_cf(db)?;
    let start = key(after.saturating_add(1));
    let it = db
        .db()
        .iterator_cf(cf, IteratorMode::From(&start, Direction::Forward));
    for item in it {
        let (k, v) = item.map_err(|e| AnyError::new(&e))?;
        if seq_of(&k).is_none() {
            break;
        }
        if !f(decode(&v)?) {
            break;
        }
    }
    Ok(())
}

/// Reads the trail for the API: cheap to clone, reads RocksDB directly
/// (call it off the async threads for large reads).
#[derive(Clone)]
pub struct AuditReader {
    pub(super) db: Arc<dyn Database>,
}

impl std::fmt::Debug for AuditReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditReader")
    }
}

impl AuditReader {
    /// Up to `limit` entries after sequence number `after`, oldest first.
    pub fn after(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>, String> {
        let mut out = Vec::new();
        scan(&self.db, after, |e| {
            out.push(e);
            out.len() < limit
        })
        .map_err(|e| format!("audit trail: {e}"))?;
        Ok(out)
    }

    /// The newest `limit` entries recorded at or after `since_ns`, oldest
    /// first.
    pub fn newest(&self, since_ns: u64, limit: usize) -> Result<Vec<AuditEntry>, String> {
        let cf = state_cf(&self.db).map_err(|e| e.to_string())?;
        let it = self
            .db
            .db()
            .iterator_cf(cf, IteratorMode::From(&key(u64::MAX), Direction::Reverse));
        let mut out = Vec::new();
        for item in it {
            let (k, v) = item.map_err(|e| format!("audit trail: {e}"))?;
            if seq_of(&k).is_none() || out.len() >= limit {
                break;
            }
            let e: AuditEntry = decode(&v).map_err(|e| format!("audit trail: {e}"))?;
            if e.record.time_ns >= since_ns {
                out.push(e);
            }
        }
        out.reverse();
        Ok(out)
    }

    /// Every entry from the first recorded at or after `since_ns` to the
    /// newest, oldest first, without a gap (an export: the chain holds from
    /// its first entry on).
    pub fn from_time(&self, since_ns: u64) -> Result<Vec<AuditEntry>, String> {
        let mut out = Vec::new();
        scan(&self.db, 0, |e| {
            if !out.is_empty() || e.record.time_ns >= since_ns {
                out.push(e);
            }
            true
        })
        .map_err(|e| format!("audit trail: {e}"))?;
        Ok(out)
    }
}
