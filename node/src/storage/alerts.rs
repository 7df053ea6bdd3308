//! Alerts in the `alerts` column family: each stored once, by id, in time
//! order, with an origin index that the mesh's reconciliation reads.

use amoskys_mesh::Alert;
use rocksdb::{Direction, IteratorMode, WriteBatch};

use super::{Cf, StorageError, Store};
use crate::suppress::MarkChanges;

/// Meta key holding the next local alert sequence number.
const ALERT_SEQ_KEY: &str = "alerts.next_seq";
/// Alert records are `b'r' ++ time_ns ++ id`; the id index is `b'i' ++ id`;
/// the origin index is `b'o' ++ origin key ++ seq`. Records sort last.
const ALERT_RECORD_PREFIX: &[u8] = b"r";
const ALERT_ORIGIN_PREFIX: &[u8] = b"o";
const ALERT_INDEX_PREFIX: &[u8] = b"i";

impl Store {
    /// Stores alerts (local or from peers) once each; returns how many were
    /// new. The record key is `time_ns ++ id`; an id index makes the write
    /// idempotent. Local sequence numbers are taken by [`Store::next_alert_seq`].
    pub fn put_alerts(&self, alerts: &[Alert]) -> Result<usize, StorageError> {
        self.put_alerts_marked(alerts, &MarkChanges::new())
    }

    /// Stores alerts as [`Store::put_alerts`] does, and the detector's
    /// repeat memory changes in the same atomic batch.
    pub fn put_alerts_marked(
        &self,
        alerts: &[Alert],
        marks: &MarkChanges,
    ) -> Result<usize, StorageError> {
        let cf = self.cf(Cf::Alerts)?;
        let mut batch = WriteBatch::default();
        let mut new = 0;
        let mut seen = std::collections::HashSet::new();
        for alert in alerts {
            let index = alert_index_key(&alert.id);
            if !seen.insert(alert.id.as_str())
                || self
                    .db
                    .get_pinned_cf(cf, &index)
                    .map_err(|e| self.db_err(e.to_string()))?
                    .is_some()
            {
                continue;
            }
            let key = alert_key(alert.body.time_ns, &alert.id);
            batch.put_cf(cf, &index, &key);
            if let Some(by_origin) = origin_key(&alert.origin_key, alert.body.seq) {
                batch.put_cf(cf, by_origin, &key);
            }
            batch.put_cf(cf, &key, alert.encode());
            new += 1;
        }
        self.batch_marks(&mut batch, marks)?;
        self.db
            .write(batch)
            .map_err(|e| self.db_err(e.to_string()))?;
        Ok(new)
    }

    /// Alerts at or after `since_ns` (oldest first), or the newest `limit`.
    pub fn alerts(&self, since_ns: Option<u64>, limit: usize) -> Result<Vec<Alert>, StorageError> {
        let cf = self.cf(Cf::Alerts)?;
        let start;
        let mode = match since_ns {
            Some(t) => {
                start = alert_key(t, "");
                IteratorMode::From(&start, Direction::Forward)
            }
            // Records sort after the index ('r' > 'i'): the newest are last.
            None => IteratorMode::End,
        };
        let mut out = Vec::new();
        for item in self.db.iterator_cf(cf, mode) {
            let (key, value) = item.map_err(|e| self.db_err(e.to_string()))?;
            if !key.starts_with(ALERT_RECORD_PREFIX) {
                break;
            }
            let alert: Alert = self.decode("alert", &key, &value)?;
            out.push(alert);
            if out.len() >= limit.max(1) {
                break;
            }
        }
        if since_ns.is_none() {
            out.reverse();
        }
        Ok(out)
    }

    /// `(origin key hex, seq, record key)` of every stored alert, by origin.
    fn alert_origins(&self) -> Result<Vec<(String, u64, Vec<u8>)>, StorageError> {
        let cf = self.cf(Cf::Alerts)?;
        let mut out = Vec::new();
        let mode = IteratorMode::From(ALERT_ORIGIN_PREFIX, Direction::Forward);
        for item in self.db.iterator_cf(cf, mode) {
            let (key, record) = item.map_err(|e| self.db_err(e.to_string()))?;
            if !key.starts_with(ALERT_ORIGIN_PREFIX) || key.len() != 41 {
                break;
            }
            let mut seq = [0u8; 8];
            seq.copy_from_slice(&key[33..41]);
            out.push((
                hex::encode(&key[1..33]),
                u64::from_be_bytes(seq),
                record.to_vec(),
            ));
        }
        Ok(out)
    }

    /// The stored alert with this id, if any.
    pub fn alert(&self, id: &str) -> Result<Option<Alert>, StorageError> {
        let cf = self.cf(Cf::Alerts)?;
        let Some(key) = self
            .db
            .get_cf(cf, alert_index_key(id))
            .map_err(|e| self.db_err(e.to_string()))?
        else {
            return Ok(None);
        };
        match self
            .db
            .get_pinned_cf(cf, &key)
            .map_err(|e| self.db_err(e.to_string()))?
        {
            Some(value) => self.decode("alert", &key, &value).map(Some),
            None => Ok(None),
        }
    }

    /// Reserves the next local alert sequence number (persisted).
    /// The highest sequence number this node's alerts took, if any (the
    /// node key's last alert, for its hand-over to a successor).
    pub fn last_alert_seq(&self) -> Result<Option<u64>, StorageError> {
        Ok(match self.get_meta(ALERT_SEQ_KEY)? {
            Some(b) => <[u8; 8]>::try_from(b.as_slice())
                .map(u64::from_be_bytes)
                .ok()
                .and_then(|next| next.checked_sub(1)),
            None => None,
        })
    }

    pub fn next_alert_seq(&self) -> Result<u64, StorageError> {
        let next = match self.get_meta(ALERT_SEQ_KEY)? {
            Some(b) => <[u8; 8]>::try_from(b.as_slice())
                .map(u64::from_be_bytes)
                .unwrap_or(0),
            None => 0,
        };
        self.put_meta(ALERT_SEQ_KEY, &(next + 1).to_be_bytes())?;
        Ok(next)
    }
}

fn alert_key(time_ns: u64, id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + 8 + id.len());
    key.extend_from_slice(ALERT_RECORD_PREFIX);
    key.extend_from_slice(&time_ns.to_be_bytes());
    key.extend_from_slice(id.as_bytes());
    key
}

/// `o` ++ origin public key (32 bytes) ++ seq (u64 BE): what reconciliation
/// summarises and looks up.
fn origin_key(origin_hex: &str, seq: u64) -> Option<Vec<u8>> {
    let origin = hex::decode(origin_hex).ok().filter(|k| k.len() == 32)?;
    let mut key = Vec::with_capacity(1 + 32 + 8);
    key.extend_from_slice(ALERT_ORIGIN_PREFIX);
    key.extend_from_slice(&origin);
    key.extend_from_slice(&seq.to_be_bytes());
    Some(key)
}

fn alert_index_key(id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + id.len());
    key.extend_from_slice(ALERT_INDEX_PREFIX);
    key.extend_from_slice(id.as_bytes());
    key
}

/// What this node holds, for the mesh's reconciliation.
impl amoskys_mesh::AlertLedger for Store {
    fn holdings(&self) -> Result<amoskys_mesh::Holdings, String> {
        let pairs = self.alert_origins().map_err(|e| e.to_string())?;
        Ok(amoskys_mesh::Holdings::from_pairs(
            pairs.into_iter().map(|(origin, seq, _)| (origin, seq)),
        ))
    }

    fn missing(&self, theirs: &amoskys_mesh::Holdings, limit: usize) -> Result<Vec<Alert>, String> {
        let cf = self.cf(Cf::Alerts).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for (origin, seq, record_key) in self.alert_origins().map_err(|e| e.to_string())? {
            if out.len() >= limit {
                break;
            }
            if theirs.contains(&origin, seq) {
                continue;
            }
            let Some(bytes) = self.db.get_cf(cf, &record_key).map_err(|e| e.to_string())? else {
                continue;
            };
            match serde_json::from_slice::<Alert>(&bytes) {
                Ok(a) => out.push(a),
                Err(e) => {
                    tracing::warn!(error = %e, "a stored alert cannot be decoded; not offered to peers")
                }
            }
        }
        Ok(out)
    }
}
