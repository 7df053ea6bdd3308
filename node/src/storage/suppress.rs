//! The detector's repeat memory in the `meta` column family: one key per
//! (rule, subject), `suppress/<rule>\0<subject>` → the time it last raised
//! an alert (ns, u64 BE). Written in the batch of the alerts it belongs to,
//! bounded like the memory it mirrors (`crate::suppress::MAX_SUPPRESSED`).

use rocksdb::{Direction, IteratorMode, WriteBatch};

use super::{Cf, StorageError, Store};
use crate::suppress::{Mark, MarkChanges};

const PREFIX: &[u8] = b"suppress/";

fn mark_key(rule: &str, subject: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(PREFIX.len() + rule.len() + 1 + subject.len());
    key.extend_from_slice(PREFIX);
    key.extend_from_slice(rule.as_bytes());
    key.push(0);
    key.extend_from_slice(subject.as_bytes());
    key
}

impl Store {
    /// Adds the repeat memory's changes to a batch.
    pub(super) fn batch_marks(
        &self,
        batch: &mut WriteBatch,
        changes: &MarkChanges,
    ) -> Result<(), StorageError> {
        let cf = self.cf(Cf::Meta)?;
        for ((rule, subject), time) in changes {
            let key = mark_key(rule, subject);
            match time {
                Some(t) => batch.put_cf(cf, key, t.to_be_bytes()),
                None => batch.delete_cf(cf, key),
            }
        }
        Ok(())
    }

    /// The repeat memory as kept; a record that does not decode is skipped
    /// with a warning (it only suppresses).
    pub fn suppression_marks(&self) -> Result<Vec<Mark>, StorageError> {
        let cf = self.cf(Cf::Meta)?;
        let mut out = Vec::new();
        let mode = IteratorMode::From(PREFIX, Direction::Forward);
        for item in self.db.iterator_cf(cf, mode) {
            let (key, value) = item.map_err(|e| self.db_err(e.to_string()))?;
            let Some(rest) = key.strip_prefix(PREFIX) else {
                break;
            };
            let pair = rest
                .iter()
                .position(|b| *b == 0)
                .map(|i| (&rest[..i], &rest[i + 1..]));
            let time = <[u8; 8]>::try_from(&value[..]).map(u64::from_be_bytes);
            match (pair, time) {
                (Some((rule, subject)), Ok(time_ns)) => out.push(Mark {
                    rule: String::from_utf8_lossy(rule).into_owned(),
                    subject: String::from_utf8_lossy(subject).into_owned(),
                    time_ns,
                }),
                _ => {
                    tracing::warn!(key = %hex::encode(&key), "a suppression record does not decode; skipped")
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_survive_a_reopen_and_deletes_remove_them() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(dir.path()).expect("open");
        let mut changes = MarkChanges::new();
        changes.insert(("port_scan".into(), "source_ip:10.0.0.9".into()), Some(7));
        changes.insert(("brute_force".into(), "a\0b".into()), Some(9));
        store.put_alerts_marked(&[], &changes).expect("write");
        drop(store);
        let store = Store::open(dir.path()).expect("reopen");
        let mut marks = store.suppression_marks().expect("read");
        marks.sort_by_key(|m| m.time_ns);
        assert_eq!(marks.len(), 2);
        assert_eq!(marks[0].rule, "port_scan");
        assert_eq!(marks[0].subject, "source_ip:10.0.0.9");
        assert_eq!(marks[1].subject, "a\0b");
        let mut gone = MarkChanges::new();
        gone.insert(("port_scan".into(), "source_ip:10.0.0.9".into()), None);
        store.put_alerts_marked(&[], &gone).expect("write");
        assert_eq!(store.suppression_marks().expect("read").len(), 1);
    }
}
