//! Raft log storage and state machine in the node's RocksDB.
//!
//! - `raft_log`: one entry per key, the index as 8 big-endian bytes, the
//!   entry as JSON;
//! - `raft_state`: the vote, the committed and last purged log ids, the
//!   applied state machine, and the current snapshot.
//!
//! - `raft_state` also holds the audit trail, under `audit/` (`trail.rs`):
//!   outside the log, so purges never touch it, and in every snapshot.
//!
//! Every write that Raft relies on (appended entries, the vote, the applied
//! state) is synced to disk before it is acknowledged. The state machine is
//! small, so it lives in memory and is written whole after each applied
//! batch; a snapshot is that state serialised.

use std::fmt::Debug;
use std::io::Cursor;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage, RaftStateMachine};
use openraft::{
    AnyError, Entry, EntryPayload, LogId, LogState, OptionalSend, RaftLogReader,
    RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError, StorageIOError, StoredMembership,
    Vote,
};
use rocksdb::{DB, Direction, IteratorMode, WriteBatch, WriteOptions};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::audit::AuditEntry;
use crate::state::{ClusterState, Outcome};
use crate::{NodeId, TypeConfig};

mod trail;
pub use trail::AuditReader;

/// Column family of the log.
pub const LOG_CF: &str = "raft_log";
/// Column family of the vote, applied state and snapshot.
pub const STATE_CF: &str = "raft_state";

const VOTE: &[u8] = b"vote";
const COMMITTED: &[u8] = b"committed";
const PURGED: &[u8] = b"purged";
const APPLIED: &[u8] = b"applied";
const SNAPSHOT_META: &[u8] = b"snapshot_meta";
const SNAPSHOT_DATA: &[u8] = b"snapshot_data";

type StorageResult<T> = Result<T, StorageError<NodeId>>;
type Membership = StoredMembership<NodeId, openraft::BasicNode>;

/// A RocksDB that has the [`LOG_CF`] and [`STATE_CF`] column families.
pub trait Database: Send + Sync + 'static {
    fn db(&self) -> &DB;
}

impl Database for DB {
    fn db(&self) -> &DB {
        self
    }
}

/// The log store, the state machine and a receiver that sees the applied
/// state after every change.
#[derive(Debug)]
pub struct Opened {
    pub log: LogStore,
    pub sm: StateMachine,
    pub applied: watch::Receiver<Arc<Applied>>,
    pub audit: AuditReader,
}

/// Why the Raft storage could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct OpenError(String);

/// Opens the log store and state machine over `db`.
pub fn open(db: Arc<dyn Database>) -> Result<Opened, OpenError> {
    for cf in [LOG_CF, STATE_CF] {
        if db.db().cf_handle(cf).is_none() {
            return Err(OpenError(format!(
                "the database has no `{cf}` column family"
            )));
        }
    }
    let log = LogStore { db: db.clone() };
    let applied: Applied = match get(&db, APPLIED) {
        Ok(Some(bytes)) => decode(&bytes)
            .map_err(|e| OpenError(format!("the applied state is unreadable: {e}")))?,
        Ok(None) => Applied::default(),
        Err(e) => return Err(OpenError(format!("cannot read the applied state: {e}"))),
    };
    let applied = Arc::new(applied);
    let (tx, rx) = watch::channel(applied.clone());
    let audit = AuditReader { db: db.clone() };
    let sm = StateMachine {
        db,
        applied,
        watch: tx,
    };
    Ok(Opened {
        log,
        sm,
        applied: rx,
        audit,
    })
}

/// The state machine as applied up to a log id.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Applied {
    pub last_applied: Option<LogId<NodeId>>,
    pub membership: Membership,
    pub state: ClusterState,
}

/// The log, in [`LOG_CF`].
#[derive(Clone)]
pub struct LogStore {
    db: Arc<dyn Database>,
}

impl Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogStore")
    }
}

fn key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn index_of(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.try_into().ok()?))
}

fn get(db: &Arc<dyn Database>, k: &[u8]) -> Result<Option<Vec<u8>>, AnyError> {
    let cf = state_cf(db)?;
    db.db().get_cf(cf, k).map_err(|e| AnyError::new(&e))
}

fn state_cf(db: &Arc<dyn Database>) -> Result<&rocksdb::ColumnFamily, AnyError> {
    cf(db, STATE_CF)
}

fn cf<'a>(db: &'a Arc<dyn Database>, name: &str) -> Result<&'a rocksdb::ColumnFamily, AnyError> {
    db.db()
        .cf_handle(name)
        .ok_or_else(|| AnyError::error(format!("no `{name}` column family")))
}

fn synced() -> WriteOptions {
    let mut w = WriteOptions::default();
    w.set_sync(true);
    w
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, AnyError> {
    serde_json::to_vec(v).map_err(|e| AnyError::new(&e))
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, AnyError> {
    serde_json::from_slice(bytes).map_err(|e| AnyError::new(&e))
}

fn put_state(db: &Arc<dyn Database>, k: &[u8], v: &[u8]) -> Result<(), AnyError> {
    let cf = state_cf(db)?;
    db.db()
        .put_cf_opt(cf, k, v, &synced())
        .map_err(|e| AnyError::new(&e))
}

impl LogStore {
    fn entries(&self, start: u64, end: Bound<u64>) -> Result<Vec<Entry<TypeConfig>>, AnyError> {
        let cf = cf(&self.db, LOG_CF)?;
        let mut out = Vec::new();
        let it = self
            .db
            .db()
            .iterator_cf(cf, IteratorMode::From(&key(start), Direction::Forward));
        for item in it {
            let (k, v) = item.map_err(|e| AnyError::new(&e))?;
            let index = index_of(&k).ok_or_else(|| AnyError::error("malformed log key"))?;
            let past = match end {
                Bound::Included(e) => index > e,
                Bound::Excluded(e) => index >= e,
                Bound::Unbounded => false,
            };
            if past {
                break;
            }
            out.push(decode(&v)?);
        }
        Ok(out)
    }

    fn last_entry(&self) -> Result<Option<Entry<TypeConfig>>, AnyError> {
        let cf = cf(&self.db, LOG_CF)?;
        let mut it = self.db.db().iterator_cf(cf, IteratorMode::End);
        match it.next() {
            Some(item) => {
                let (_, v) = item.map_err(|e| AnyError::new(&e))?;
                Ok(Some(decode(&v)?))
            }
            None => Ok(None),
        }
    }

    fn delete_range(&self, from: u64, to: u64) -> Result<(), AnyError> {
        let cf = cf(&self.db, LOG_CF)?;
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(cf, key(from), key(to));
        self.db
            .db()
            .write_opt(batch, &synced())
            .map_err(|e| AnyError::new(&e))
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> StorageResult<Vec<Entry<TypeConfig>>> {
        let start = match range.start_bound() {
            Bound::Included(s) => *s,
            Bound::Excluded(s) => s.saturating_add(1),
            Bound::Unbounded => 0,
        };
        Ok(self
            .entries(start, range.end_bound().cloned())
            .map_err(StorageIOError::read_logs)?)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> StorageResult<LogState<TypeConfig>> {
        let purged: Option<LogId<NodeId>> =
            match get(&self.db, PURGED).map_err(StorageIOError::read_logs)? {
                Some(b) => decode(&b).map_err(StorageIOError::read_logs)?,
                None => None,
            };
        let last = self.last_entry().map_err(StorageIOError::read_logs)?;
        Ok(LogState {
            last_purged_log_id: purged,
            last_log_id: last.map(|e| e.log_id).or(purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> StorageResult<()> {
        let bytes = encode(vote).map_err(StorageIOError::write_vote)?;
        put_state(&self.db, VOTE, &bytes).map_err(StorageIOError::write_vote)?;
        Ok(())
    }

    async fn read_vote(&mut self) -> StorageResult<Option<Vote<NodeId>>> {
        match get(&self.db, VOTE).map_err(StorageIOError::read_vote)? {
            Some(b) => Ok(Some(decode(&b).map_err(StorageIOError::read_vote)?)),
            None => Ok(None),
        }
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> StorageResult<()> {
        let bytes = encode(&committed).map_err(StorageIOError::write)?;
        put_state(&self.db, COMMITTED, &bytes).map_err(StorageIOError::write)?;
        Ok(())
    }

    async fn read_committed(&mut self) -> StorageResult<Option<LogId<NodeId>>> {
        match get(&self.db, COMMITTED).map_err(StorageIOError::read)? {
            Some(b) => Ok(decode(&b).map_err(StorageIOError::read)?),
            None => Ok(None),
        }
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StorageResult<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let written = (|| {
            let cf = cf(&self.db, LOG_CF)?;
            let mut batch = WriteBatch::default();
            for entry in entries {
                batch.put_cf(cf, key(entry.log_id.index), encode(&entry)?);
            }
            self.db
                .db()
                .write_opt(batch, &synced())
                .map_err(|e| AnyError::new(&e))
        })();
        match written {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(StorageIOError::write_logs(e).into())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> StorageResult<()> {
        self.delete_range(log_id.index, u64::MAX)
            .map_err(StorageIOError::write_logs)?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> StorageResult<()> {
        // The purge mark goes first: a crash between the two writes leaves
        // entries that are already known to be purged, never a gap.
        let bytes = encode(&Some(log_id)).map_err(StorageIOError::write_logs)?;
        put_state(&self.db, PURGED, &bytes).map_err(StorageIOError::write_logs)?;
        self.delete_range(0, log_id.index.saturating_add(1))
            .map_err(StorageIOError::write_logs)?;
        Ok(())
    }
}

/// The state machine, in memory and in [`STATE_CF`].
pub struct StateMachine {
    db: Arc<dyn Database>,
    applied: Arc<Applied>,
    watch: watch::Sender<Arc<Applied>>,
}

impl Debug for StateMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateMachine")
            .field("last_applied", &self.applied.last_applied)
            .finish()
    }
}

/// A snapshot's data: the applied state and the audit trail (absent from
/// snapshots made before the trail).
#[derive(Serialize, Deserialize)]
struct SnapshotData {
    #[serde(flatten)]
    applied: Applied,
    #[serde(default)]
    audit: Vec<AuditEntry>,
}

/// Decodes a snapshot's data (as a leader sends it in chunks): the applied
/// state and the audit trail.
pub fn decode_snapshot(bytes: &[u8]) -> Result<(Applied, Vec<AuditEntry>), AnyError> {
    let SnapshotData { applied, audit } = decode(bytes)?;
    Ok((applied, audit))
}

/// A snapshot as stored next to its data.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, openraft::BasicNode>,
}

/// Writes a snapshot's meta and data in one synced batch.
fn save_snapshot(
    db: &Arc<dyn Database>,
    meta: &SnapshotMeta<NodeId, openraft::BasicNode>,
    data: &[u8],
) -> Result<(), AnyError> {
    let cf = state_cf(db)?;
    let mut batch = WriteBatch::default();
    batch.put_cf(
        cf,
        SNAPSHOT_META,
        encode(&StoredSnapshot { meta: meta.clone() })?,
    );
    batch.put_cf(cf, SNAPSHOT_DATA, data);
    db.db()
        .write_opt(batch, &synced())
        .map_err(|e| AnyError::new(&e))
}

impl StateMachine {
    /// Writes the applied state with the new audit entries (after those
    /// already stored, or instead of them all when `replace`), prunes the
    /// trail, and tells the watchers.
    fn commit(
        &mut self,
        applied: Applied,
        audit: &[AuditEntry],
        replace: bool,
    ) -> Result<(), AnyError> {
        let cf = state_cf(&self.db)?;
        let mut batch = WriteBatch::default();
        if replace {
            trail::clear(&mut batch, cf);
        }
        trail::put(&mut batch, cf, audit)?;
        if !replace {
            trail::prune(&self.db, &mut batch, audit)?;
        }
        batch.put_cf(cf, APPLIED, encode(&applied)?);
        self.db
            .db()
            .write_opt(batch, &synced())
            .map_err(|e| AnyError::new(&e))?;
        self.applied = Arc::new(applied);
        self.watch.send_replace(self.applied.clone());
        Ok(())
    }

    fn snapshot_of(&self) -> Result<Snapshot<TypeConfig>, AnyError> {
        let applied = &self.applied;
        let data = encode(&SnapshotData {
            applied: Applied::clone(applied),
            audit: trail::up_to(&self.db, applied.state.audit.count)?,
        })?;
        let id = match applied.last_applied {
            Some(l) => format!("{}-{}-{}", l.leader_id.term, l.index, data.len()),
            None => format!("empty-{}", data.len()),
        };
        let meta = SnapshotMeta {
            last_log_id: applied.last_applied,
            last_membership: applied.membership.clone(),
            snapshot_id: id,
        };
        save_snapshot(&self.db, &meta, &data)?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachineSnapshot;

    async fn applied_state(&mut self) -> StorageResult<(Option<LogId<NodeId>>, Membership)> {
        Ok((self.applied.last_applied, self.applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> StorageResult<Vec<Outcome>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut next = Applied::clone(&self.applied);
        let mut outcomes = Vec::new();
        let mut audit = Vec::new();
        for entry in entries {
            next.last_applied = Some(entry.log_id);
            outcomes.push(match &entry.payload {
                EntryPayload::Blank => Outcome::Nothing,
                EntryPayload::Normal(cmd) => {
                    let (outcome, recorded) = next.state.apply_entry(cmd, entry.log_id.index);
                    audit.extend(recorded);
                    outcome
                }
                EntryPayload::Membership(m) => {
                    next.membership = StoredMembership::new(Some(entry.log_id), m.clone());
                    Outcome::Nothing
                }
            });
        }
        self.commit(next, &audit, false)
            .map_err(StorageIOError::write_state_machine)?;
        Ok(outcomes)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        StateMachineSnapshot {
            db: self.db.clone(),
            applied: self.applied.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> StorageResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, openraft::BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> StorageResult<()> {
        let bytes = snapshot.into_inner();
        let sig = Some(meta.signature());
        let (mut applied, audit) =
            decode_snapshot(&bytes).map_err(|e| StorageIOError::read_snapshot(sig.clone(), e))?;
        applied.last_applied = meta.last_log_id;
        applied.membership = meta.last_membership.clone();
        save_snapshot(&self.db, meta, &bytes)
            .map_err(|e| StorageIOError::write_snapshot(sig.clone(), e))?;
        self.commit(applied, &audit, true)
            .map_err(|e| StorageIOError::write_snapshot(sig, e))?;
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> StorageResult<Option<Snapshot<TypeConfig>>> {
        let read = (|| -> Result<Option<Snapshot<TypeConfig>>, AnyError> {
            let (Some(meta), Some(data)) =
                (get(&self.db, SNAPSHOT_META)?, get(&self.db, SNAPSHOT_DATA)?)
            else {
                return Ok(None);
            };
            let stored: StoredSnapshot = decode(&meta)?;
            Ok(Some(Snapshot {
                meta: stored.meta,
                snapshot: Box::new(Cursor::new(data)),
            }))
        })();
        Ok(read.map_err(|e| StorageIOError::read_snapshot(None, e))?)
    }
}

/// Builds a snapshot of the state as it was when the builder was made,
/// while the state machine goes on applying.
pub struct StateMachineSnapshot {
    db: Arc<dyn Database>,
    applied: Arc<Applied>,
}

impl Debug for StateMachineSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateMachineSnapshot")
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineSnapshot {
    async fn build_snapshot(&mut self) -> StorageResult<Snapshot<TypeConfig>> {
        let (tx, _) = watch::channel(self.applied.clone());
        let sm = StateMachine {
            db: self.db.clone(),
            applied: self.applied.clone(),
            watch: tx,
        };
        Ok(sm
            .snapshot_of()
            .map_err(|e| StorageIOError::write_snapshot(None, e))?)
    }
}
