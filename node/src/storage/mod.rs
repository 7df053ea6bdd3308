//! The node's one RocksDB database and a small typed layer over it.
//!
//! Column families: `events` (raw telemetry, never leaves the node),
//! `alerts`, `raft_log`, `raft_state`, `models`, `documents` and `meta`.
//! Writes go through RocksDB's write-ahead log, so a write that returned is
//! kept when the process is killed; `fsync` per write is not done (a power
//! loss can lose the last moments, never corrupt the database).
//!
//! Event keys are `time_ns (u64 BE) ++ seq (u64 BE)`: ordered by time, unique,
//! so time queries and age retention are range operations. Alerts and what
//! reconciliation reads of them: `alerts.rs`; the detector's repeat
//! memory: `suppress.rs`; the windows behind anomaly alerts and the
//! verdicts on them: `windows.rs`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use amoskys_sensors::{Event, EventClass};
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DB, Direction, IteratorMode, Options,
    WriteBatch,
};
use serde::Serialize;

mod alerts;
mod suppress;
pub mod upkeep;
pub mod windows;

/// Meta key holding the next event sequence number, written with each batch.
const NEXT_SEQ_KEY: &str = "events.next_seq";

/// Column families of the node database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cf {
    Events,
    Alerts,
    RaftLog,
    RaftState,
    Models,
    Documents,
    Meta,
}

impl Cf {
    pub const ALL: [Cf; 7] = [
        Cf::Events,
        Cf::Alerts,
        Cf::RaftLog,
        Cf::RaftState,
        Cf::Models,
        Cf::Documents,
        Cf::Meta,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Cf::Events => "events",
            Cf::Alerts => "alerts",
            Cf::RaftLog => "raft_log",
            Cf::RaftState => "raft_state",
            Cf::Models => "models",
            Cf::Documents => "documents",
            Cf::Meta => "meta",
        }
    }
}

/// Storage errors, each naming the database path.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(
        "data directory {path} is locked by another running node; stop it or give this node its own --data-dir"
    )]
    Locked { path: PathBuf },
    #[error("data directory {path} is not writable: {source}")]
    Unwritable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("database {path}: {message}")]
    Db { path: PathBuf, message: String },
    #[error("database {path}: stored {what} at key {key} cannot be decoded: {message}")]
    Decode {
        path: PathBuf,
        what: &'static str,
        key: String,
        message: String,
    },
}

/// A filter over stored events.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub class: Option<EventClass>,
    /// Only events at or after this time. Without it, the newest events.
    pub since_ns: Option<u64>,
    pub limit: usize,
}

/// A model as stored: its name (the entity kind), its description and its
/// bytes.
#[derive(Debug, Clone)]
pub struct StoredModel {
    pub name: String,
    pub info: Vec<u8>,
    pub model: Vec<u8>,
}

/// An event as read back, with its storage sequence number.
#[derive(Debug, Clone, Serialize)]
pub struct StoredEvent {
    pub seq: u64,
    #[serde(flatten)]
    pub event: Event,
}

/// The node database.
#[derive(Debug)]
pub struct Store {
    db: DB,
    path: PathBuf,
    next_seq: AtomicU64,
}

/// Raft keeps its log and state machine in the `raft_log` and
/// `raft_state` column families.
impl amoskys_consensus::Database for Store {
    fn db(&self) -> &DB {
        &self.db
    }
}

impl Store {
    /// Opens (or creates) the database in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StorageError> {
        let path = dir.to_owned();
        std::fs::create_dir_all(&path).map_err(|source| StorageError::Unwritable {
            path: path.clone(),
            source,
        })?;
        probe_writable(&path)?;

        let cache = Cache::new_lru_cache(8 << 20);
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&cache);
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_keep_log_file_num(3);
        opts.set_max_log_file_size(4 << 20);
        opts.set_max_open_files(256);
        opts.set_max_background_jobs(2);
        // Nothing is written to the default column family; at RocksDB's
        // default 64 MiB buffer it would set the size the write-ahead log
        // preallocates on disk (1.1 x the largest buffer: 70 MB a node
        // instead of 18 MB).
        opts.set_write_buffer_size(1 << 20);
        // A column family with few writes (alerts, meta) keeps every WAL
        // file since its oldest unflushed write; past 32 MiB of WAL RocksDB
        // flushes it instead. Its default bound here would be 232 MiB.
        opts.set_max_total_wal_size(32 << 20);
        let descriptors = || {
            Cf::ALL.iter().map(|cf| {
                let mut o = Options::default();
                o.set_block_based_table_factory(&table);
                o.set_write_buffer_size(if *cf == Cf::Events { 16 << 20 } else { 2 << 20 });
                o.set_max_write_buffer_number(2);
                ColumnFamilyDescriptor::new(cf.name(), o)
            })
        };
        let open = || {
            DB::open_cf_descriptors(&opts, &path, descriptors()).map_err(|e| {
                let message = e.to_string();
                if message.contains("LOCK")
                    && (message.contains("unavailable") || message.contains("lock hold"))
                {
                    StorageError::Locked { path: path.clone() }
                } else {
                    StorageError::Db {
                        path: path.clone(),
                        message,
                    }
                }
            })
        };
        let existing = DB::list_cf(&opts, &path).unwrap_or_default();
        let created = Cf::ALL
            .iter()
            .any(|cf| !existing.iter().any(|name| name == cf.name()));
        let mut db = open()?;
        if created {
            // RocksDB holds a directory handle for each column family it
            // creates, but one for all of them when it opens existing ones:
            // reopening saves 7 open files a node (labs run hundreds).
            drop(db);
            db = open()?;
        }
        let store = Store {
            db,
            path,
            next_seq: AtomicU64::new(0),
        };
        let next = match store.get_meta(NEXT_SEQ_KEY)? {
            Some(bytes) => <[u8; 8]>::try_from(bytes.as_slice())
                .map(u64::from_be_bytes)
                .map_err(|_| StorageError::Decode {
                    path: store.path.clone(),
                    what: "event sequence",
                    key: NEXT_SEQ_KEY.to_owned(),
                    message: format!("{} bytes instead of 8", bytes.len()),
                })?,
            None => 0,
        };
        store.next_seq.store(next, Ordering::Relaxed);
        Ok(store)
    }

    /// Where the database lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The raw database, for layers that keep their own records in a column
    /// family (raft log and state, models, documents).
    pub fn db(&self) -> &DB {
        &self.db
    }

    /// Appends events in one atomic batch; returns the first sequence number.
    pub fn put_events(&self, events: &[Event]) -> Result<u64, StorageError> {
        let cf = self.cf(Cf::Events)?;
        let first = self
            .next_seq
            .fetch_add(events.len() as u64, Ordering::Relaxed);
        let mut batch = WriteBatch::default();
        let mut value = Vec::with_capacity(512);
        for (i, event) in events.iter().enumerate() {
            value.clear();
            serde_json::to_writer(&mut value, event).map_err(|e| self.db_err(e.to_string()))?;
            batch.put_cf(cf, event_key(event.time_ns, first + i as u64), &value);
        }
        let next = first + events.len() as u64;
        batch.put_cf(self.cf(Cf::Meta)?, NEXT_SEQ_KEY, next.to_be_bytes());
        self.db
            .write(batch)
            .map_err(|e| self.db_err(e.to_string()))?;
        Ok(first)
    }

    /// Events matching `query`, oldest first.
    pub fn events(&self, query: &EventQuery) -> Result<Vec<StoredEvent>, StorageError> {
        let cf = self.cf(Cf::Events)?;
        let limit = query.limit.max(1);
        let start;
        let mode = match query.since_ns {
            Some(since) => {
                start = event_key(since, 0);
                IteratorMode::From(&start, Direction::Forward)
            }
            None => IteratorMode::End,
        };
        let mut out = Vec::new();
        for item in self.db.iterator_cf(cf, mode) {
            let (key, value) = item.map_err(|e| self.db_err(e.to_string()))?;
            let event: Event = self.decode("event", &key, &value)?;
            if query.class.is_some_and(|c| c != event.class()) {
                continue;
            }
            out.push(StoredEvent {
                seq: split_key(&key).map_or(0, |(_, seq)| seq),
                event,
            });
            if out.len() >= limit {
                break;
            }
        }
        if query.since_ns.is_none() {
            out.reverse();
        }
        Ok(out)
    }

    /// Calls `visit` with every event in `[since_ns, until_ns)`, oldest
    /// first, without holding them all in memory, until it returns false.
    /// An event that cannot be decoded is skipped and counted; the count is
    /// returned.
    pub fn scan_events(
        &self,
        since_ns: u64,
        until_ns: u64,
        mut visit: impl FnMut(&Event) -> bool,
    ) -> Result<u64, StorageError> {
        let cf = self.cf(Cf::Events)?;
        let start = event_key(since_ns, 0);
        let mut undecodable = 0;
        for item in self
            .db
            .iterator_cf(cf, IteratorMode::From(&start, Direction::Forward))
        {
            let (key, value) = item.map_err(|e| self.db_err(e.to_string()))?;
            if split_key(&key).is_none_or(|(t, _)| t >= until_ns) {
                break;
            }
            match serde_json::from_slice::<Event>(&value) {
                Ok(event) => {
                    if !visit(&event) {
                        break;
                    }
                }
                Err(_) => undecodable += 1,
            }
        }
        Ok(undecodable)
    }

    /// Stores a model and its description under `name`, both in one write.
    pub fn put_model(&self, name: &str, info: &[u8], model: &[u8]) -> Result<(), StorageError> {
        let cf = self.cf(Cf::Models)?;
        let mut batch = WriteBatch::default();
        batch.put_cf(cf, format!("{name}.info"), info);
        batch.put_cf(cf, format!("{name}.model"), model);
        self.db.write(batch).map_err(|e| self.db_err(e.to_string()))
    }

    /// Keeps content by its SHA-256 (model versions of the registry).
    pub fn put_blob(&self, sha256: &str, bytes: &[u8]) -> Result<(), StorageError> {
        let cf = self.cf(Cf::Models)?;
        self.db
            .put_cf(cf, format!("blob/{sha256}"), bytes)
            .map_err(|e| self.db_err(e.to_string()))
    }

    /// Content kept under `sha256`, if any.
    pub fn get_blob(&self, sha256: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let cf = self.cf(Cf::Models)?;
        self.db
            .get_cf(cf, format!("blob/{sha256}"))
            .map_err(|e| self.db_err(e.to_string()))
    }

    /// Keeps a shared workspace document (`intel`, `cases`) whole.
    pub fn put_document(&self, name: &str, bytes: &[u8]) -> Result<(), StorageError> {
        let cf = self.cf(Cf::Documents)?;
        self.db
            .put_cf(cf, name, bytes)
            .map_err(|e| self.db_err(e.to_string()))
    }

    /// A workspace document kept under `name`, if any.
    pub fn get_document(&self, name: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let cf = self.cf(Cf::Documents)?;
        self.db
            .get_cf(cf, name)
            .map_err(|e| self.db_err(e.to_string()))
    }

    /// Every stored model.
    pub fn models(&self) -> Result<Vec<StoredModel>, StorageError> {
        let cf = self.cf(Cf::Models)?;
        let mut out = Vec::new();
        for item in self.db.iterator_cf(cf, IteratorMode::Start) {
            let (key, info) = item.map_err(|e| self.db_err(e.to_string()))?;
            let key = String::from_utf8_lossy(&key).into_owned();
            let Some(name) = key.strip_suffix(".info") else {
                continue;
            };
            let model = self
                .db
                .get_cf(cf, format!("{name}.model"))
                .map_err(|e| self.db_err(e.to_string()))?
                .unwrap_or_default();
            out.push(StoredModel {
                name: name.to_owned(),
                info: info.to_vec(),
                model,
            });
        }
        Ok(out)
    }

    /// Deletes every event older than `before_ns`.
    pub fn delete_events_before(&self, before_ns: u64) -> Result<(), StorageError> {
        let cf = self.cf(Cf::Events)?;
        let (from, to) = (event_key(0, 0), event_key(before_ns, 0));
        self.db
            .delete_range_cf(cf, &from, &to)
            .map_err(|e| self.db_err(e.to_string()))?;
        // Reclaim the files that now hold only deleted keys.
        self.db
            .delete_file_in_range_cf(cf, &from, &to)
            .map_err(|e| self.db_err(e.to_string()))
    }

    /// Bytes the events take on disk (live SST files) plus in memtables.
    pub fn events_bytes(&self) -> Result<u64, StorageError> {
        let cf = self.cf(Cf::Events)?;
        let mut total = 0;
        for property in [
            "rocksdb.live-sst-files-size",
            "rocksdb.cur-size-all-mem-tables",
        ] {
            total += self
                .db
                .property_int_value_cf(cf, property)
                .map_err(|e| self.db_err(e.to_string()))?
                .unwrap_or(0);
        }
        Ok(total)
    }

    /// Keeps the events under `max_bytes`: when over, deletes the oldest part
    /// of the time range so that about 80% of the limit remains, and compacts
    /// it away. Returns the cutoff time used, if any.
    pub fn enforce_events_size(&self, max_bytes: u64) -> Result<Option<u64>, StorageError> {
        let size = self.events_bytes()?;
        if size <= max_bytes {
            return Ok(None);
        }
        let cf = self.cf(Cf::Events)?;
        let edge = |mode| -> Result<Option<u64>, StorageError> {
            match self.db.iterator_cf(cf, mode).next() {
                Some(Ok((key, _))) => Ok(split_key(&key).map(|(t, _)| t)),
                Some(Err(e)) => Err(self.db_err(e.to_string())),
                None => Ok(None),
            }
        };
        let (Some(first), Some(last)) = (edge(IteratorMode::Start)?, edge(IteratorMode::End)?)
        else {
            return Ok(None);
        };
        let keep = (max_bytes as f64 * 0.8) / size as f64;
        let span = last.saturating_sub(first) as f64;
        let cutoff = first + (span * (1.0 - keep)).max(1.0) as u64;
        self.delete_events_before(cutoff)?;
        self.db
            .compact_range_cf(cf, Some(event_key(0, 0)), Some(event_key(cutoff, 0)));
        Ok(Some(cutoff))
    }

    /// Flushes the events memtable to disk (tests and benchmarks).
    pub fn flush_events(&self) -> Result<(), StorageError> {
        let cf = self.cf(Cf::Events)?;
        self.db.flush_cf(cf).map_err(|e| self.db_err(e.to_string()))
    }

    /// Number of events written since the database was created.
    pub fn events_written(&self) -> u64 {
        self.next_seq.load(Ordering::Relaxed)
    }

    /// Reads a value from the `meta` column family.
    pub fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let cf = self.cf(Cf::Meta)?;
        self.db
            .get_cf(cf, key)
            .map_err(|e| self.db_err(e.to_string()))
    }

    /// Writes a value to the `meta` column family.
    pub fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        let cf = self.cf(Cf::Meta)?;
        self.db
            .put_cf(cf, key, value)
            .map_err(|e| self.db_err(e.to_string()))
    }

    /// A column family handle.
    pub fn cf(&self, cf: Cf) -> Result<&rocksdb::ColumnFamily, StorageError> {
        self.db
            .cf_handle(cf.name())
            .ok_or_else(|| self.db_err(format!("column family {} is missing", cf.name())))
    }

    /// A stored JSON record, or an error naming what and where it was.
    fn decode<T: serde::de::DeserializeOwned>(
        &self,
        what: &'static str,
        key: &[u8],
        value: &[u8],
    ) -> Result<T, StorageError> {
        serde_json::from_slice(value).map_err(|e| StorageError::Decode {
            path: self.path.clone(),
            what,
            key: hex::encode(key),
            message: e.to_string(),
        })
    }

    fn db_err(&self, message: String) -> StorageError {
        StorageError::Db {
            path: self.path.clone(),
            message,
        }
    }
}

fn event_key(time_ns: u64, seq: u64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&time_ns.to_be_bytes());
    key[8..].copy_from_slice(&seq.to_be_bytes());
    key
}

fn split_key(key: &[u8]) -> Option<(u64, u64)> {
    let time = u64::from_be_bytes(key.get(..8)?.try_into().ok()?);
    let seq = u64::from_be_bytes(key.get(8..16)?.try_into().ok()?);
    Some((time, seq))
}

/// RocksDB's own message for an unwritable directory is obscure; check first.
fn probe_writable(dir: &Path) -> Result<(), StorageError> {
    let probe = dir.join(format!(".write-probe.{}", std::process::id()));
    std::fs::write(&probe, b"")
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|source| StorageError::Unwritable {
            path: dir.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_order_by_time_then_seq() {
        assert!(event_key(1, 9) < event_key(2, 0));
        assert!(event_key(2, 0) < event_key(2, 1));
        assert_eq!(split_key(&event_key(7, 8)), Some((7, 8)));
        assert_eq!(split_key(&[1, 2]), None);
    }
}
