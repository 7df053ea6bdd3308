//! The feature windows behind this node's anomaly alerts, and the
//! analysts' verdicts on them, in the `meta` column family. They never
//! leave the node: no mesh service, Raft command or workspace entry reads
//! them; only the supervised head's parameters travel ([`crate::verdicts`]).
//!
//! - `window/<alert id>` → [`Window`] (JSON): kept from the alert until a
//!   verdict takes it, or until retention: at most [`MAX_WINDOWS`], none
//!   older than the event retention. `windowt/<time_ns BE><alert id>`
//!   orders them by time for that.
//! - `verdict/<alert id>` → [`Labelled`] (JSON): the window and the
//!   verdict; at most [`MAX_VERDICTS`], the oldest verdicts dropped first.

use rocksdb::{Direction, IteratorMode, WriteBatch};
use serde::{Deserialize, Serialize};

use super::{Cf, StorageError, Store};

/// Most unjudged windows kept.
pub const MAX_WINDOWS: usize = 10_000;
/// Most verdicts kept.
pub const MAX_VERDICTS: usize = 10_000;

const WINDOW: &[u8] = b"window/";
const BY_TIME: &[u8] = b"windowt/";
const VERDICT: &[u8] = b"verdict/";

/// The window behind one anomaly alert, as the model scored it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// Entity kind (`source`, `host`, `process`, `device`).
    pub kind: String,
    /// The alert's time (the window's end), ns.
    pub time_ns: u64,
    /// The unsupervised score as the head takes it
    /// (`amoskys_learning::head::score_input`).
    pub score: f32,
    /// The window's features, scaled to [0, 1].
    pub features: Vec<f32>,
}

/// A window and the analyst's verdict on its alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Labelled {
    pub window: Window,
    /// True positive (`resolved`); false for `false_positive`.
    pub attack: bool,
    /// When the verdict was given (ms).
    pub at_ms: u64,
}

fn key(prefix: &[u8], id: &str) -> Vec<u8> {
    [prefix, id.as_bytes()].concat()
}

fn time_key(time_ns: u64, id: &str) -> Vec<u8> {
    [BY_TIME, &time_ns.to_be_bytes(), id.as_bytes()].concat()
}

impl Store {
    /// Keeps the windows of alerts just raised.
    pub fn put_windows(&self, windows: &[(String, Window)]) -> Result<(), StorageError> {
        if windows.is_empty() {
            return Ok(());
        }
        let cf = self.cf(Cf::Meta)?;
        let mut batch = WriteBatch::default();
        for (id, w) in windows {
            let value = serde_json::to_vec(w).map_err(|e| self.db_err(e.to_string()))?;
            batch.put_cf(cf, key(WINDOW, id), value);
            batch.put_cf(cf, time_key(w.time_ns, id), b"");
        }
        self.db.write(batch).map_err(|e| self.db_err(e.to_string()))
    }

    /// The window of an alert, judged or not.
    pub fn window(&self, id: &str) -> Result<Option<Window>, StorageError> {
        let cf = self.cf(Cf::Meta)?;
        let get = |k: Vec<u8>| {
            self.db
                .get_cf(cf, &k)
                .map_err(|e| self.db_err(e.to_string()))
                .map(|v| v.map(|v| (k, v)))
        };
        if let Some((k, v)) = get(key(WINDOW, id))? {
            return self.decode("window", &k, &v).map(Some);
        }
        match get(key(VERDICT, id))? {
            Some((k, v)) => self
                .decode::<Labelled>("verdict", &k, &v)
                .map(|l| Some(l.window)),
            None => Ok(None),
        }
    }

    /// Unjudged windows, newest first, at most `limit`.
    pub fn windows(&self, limit: usize) -> Result<Vec<(String, Window)>, StorageError> {
        let cf = self.cf(Cf::Meta)?;
        let mut out = Vec::new();
        let end = [BY_TIME, &[0xff; 8]].concat();
        for item in self
            .db
            .iterator_cf(cf, IteratorMode::From(&end, Direction::Reverse))
        {
            let (k, _) = item.map_err(|e| self.db_err(e.to_string()))?;
            let Some(rest) = k.strip_prefix(BY_TIME) else {
                break;
            };
            if out.len() >= limit {
                break;
            }
            let id = String::from_utf8_lossy(rest.get(8..).unwrap_or_default()).into_owned();
            if let Some(v) = self
                .db
                .get_cf(cf, key(WINDOW, &id))
                .map_err(|e| self.db_err(e.to_string()))?
            {
                match self.decode::<Window>("window", &k, &v) {
                    Ok(w) => out.push((id, w)),
                    Err(e) => tracing::warn!(error = %e, "a window does not decode; skipped"),
                }
            }
        }
        Ok(out)
    }

    /// Every verdict kept, by alert id.
    pub fn verdicts(&self) -> Result<Vec<(String, Labelled)>, StorageError> {
        let cf = self.cf(Cf::Meta)?;
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(cf, IteratorMode::From(VERDICT, Direction::Forward))
        {
            let (k, v) = item.map_err(|e| self.db_err(e.to_string()))?;
            let Some(id) = k.strip_prefix(VERDICT) else {
                break;
            };
            match self.decode::<Labelled>("verdict", &k, &v) {
                Ok(l) => out.push((String::from_utf8_lossy(id).into_owned(), l)),
                Err(e) => tracing::warn!(error = %e, "a verdict does not decode; skipped"),
            }
        }
        Ok(out)
    }

    /// Records a verdict on an alert whose window is kept (judged or not);
    /// false when no window is kept for it here.
    pub fn put_verdict(&self, id: &str, attack: bool, at_ms: u64) -> Result<bool, StorageError> {
        let Some(window) = self.window(id)? else {
            return Ok(false);
        };
        let cf = self.cf(Cf::Meta)?;
        let mut batch = WriteBatch::default();
        batch.delete_cf(cf, key(WINDOW, id));
        batch.delete_cf(cf, time_key(window.time_ns, id));
        let labelled = Labelled {
            window,
            attack,
            at_ms,
        };
        let value = serde_json::to_vec(&labelled).map_err(|e| self.db_err(e.to_string()))?;
        batch.put_cf(cf, key(VERDICT, id), value);
        self.db
            .write(batch)
            .map_err(|e| self.db_err(e.to_string()))?;
        Ok(true)
    }

    /// Takes a verdict back (its case was reopened): the window is unjudged
    /// again.
    pub fn remove_verdict(&self, id: &str) -> Result<(), StorageError> {
        let cf = self.cf(Cf::Meta)?;
        let k = key(VERDICT, id);
        let Some(v) = self
            .db
            .get_cf(cf, &k)
            .map_err(|e| self.db_err(e.to_string()))?
        else {
            return Ok(());
        };
        let mut batch = WriteBatch::default();
        batch.delete_cf(cf, &k);
        if let Ok(l) = self.decode::<Labelled>("verdict", &k, &v) {
            let value = serde_json::to_vec(&l.window).map_err(|e| self.db_err(e.to_string()))?;
            batch.put_cf(cf, key(WINDOW, id), value);
            batch.put_cf(cf, time_key(l.window.time_ns, id), b"");
        }
        self.db.write(batch).map_err(|e| self.db_err(e.to_string()))
    }

    /// Retention: deletes unjudged windows older than `before_ns` and the
    /// oldest beyond `max_windows`, and the oldest verdicts beyond
    /// `max_verdicts`. Returns how many records it deleted.
    pub fn trim_windows(
        &self,
        before_ns: u64,
        max_windows: usize,
        max_verdicts: usize,
    ) -> Result<usize, StorageError> {
        let cf = self.cf(Cf::Meta)?;
        let mut times = Vec::new();
        for item in self
            .db
            .iterator_cf(cf, IteratorMode::From(BY_TIME, Direction::Forward))
        {
            let (k, _) = item.map_err(|e| self.db_err(e.to_string()))?;
            if !k.starts_with(BY_TIME) {
                break;
            }
            times.push(k);
        }
        let mut batch = WriteBatch::default();
        let over = times.len().saturating_sub(max_windows);
        let mut deleted = 0;
        for (i, k) in times.iter().enumerate() {
            let rest = &k[BY_TIME.len()..];
            let time = rest
                .get(..8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map_or(0, u64::from_be_bytes);
            if i >= over && time >= before_ns {
                break;
            }
            batch.delete_cf(cf, k);
            batch.delete_cf(cf, [WINDOW, rest.get(8..).unwrap_or_default()].concat());
            deleted += 1;
        }
        let mut verdicts = self.verdicts()?;
        if verdicts.len() > max_verdicts {
            verdicts.sort_by_key(|(id, l)| (l.at_ms, id.clone()));
            let drop = verdicts.len() - max_verdicts;
            for (id, _) in verdicts.into_iter().take(drop) {
                batch.delete_cf(cf, key(VERDICT, &id));
                deleted += 1;
            }
        }
        self.db
            .write(batch)
            .map_err(|e| self.db_err(e.to_string()))?;
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(time_ns: u64) -> Window {
        Window {
            kind: "source".into(),
            time_ns,
            score: 1.5,
            features: vec![0.25, 0.5],
        }
    }

    #[test]
    fn a_verdict_takes_the_window_and_retention_bounds_both() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(dir.path()).expect("open");
        let ws: Vec<(String, Window)> = (0..5).map(|i| (format!("a{i}"), w(100 + i))).collect();
        store.put_windows(&ws).expect("put");
        assert_eq!(store.window("a3").expect("get"), Some(w(103)));
        assert_eq!(store.window("nope").expect("get"), None);
        let newest: Vec<String> = store
            .windows(2)
            .expect("list")
            .into_iter()
            .map(|x| x.0)
            .collect();
        assert_eq!(newest, ["a4", "a3"]);

        assert!(store.put_verdict("a1", true, 7).expect("verdict"));
        assert!(!store.put_verdict("nope", true, 7).expect("no window"));
        assert_eq!(
            store.windows(10).expect("list").len(),
            4,
            "judged is not unjudged"
        );
        assert_eq!(
            store.window("a1").expect("get"),
            Some(w(101)),
            "still found by id"
        );
        let v = store.verdicts().expect("verdicts");
        assert_eq!(v.len(), 1);
        assert!(v[0].1.attack);

        // Reopened: unjudged again.
        store.remove_verdict("a1").expect("remove");
        assert!(store.verdicts().expect("verdicts").is_empty());
        assert_eq!(store.windows(10).expect("list").len(), 5);

        // Older than 102 go, then the cap keeps the newest.
        store.put_verdict("a0", false, 1).expect("verdict");
        store.put_verdict("a4", false, 2).expect("verdict");
        let deleted = store.trim_windows(102, 1, 1).expect("trim");
        let left: Vec<String> = store
            .windows(10)
            .expect("list")
            .into_iter()
            .map(|x| x.0)
            .collect();
        assert_eq!(left, ["a3"]);
        let v: Vec<String> = store
            .verdicts()
            .expect("v")
            .into_iter()
            .map(|x| x.0)
            .collect();
        assert_eq!(v, ["a4"], "the newest verdict stays");
        assert_eq!(deleted, 3);
    }
}
