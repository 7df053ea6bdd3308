//! Bounded per-entity state over tumbling time windows.
//!
//! Time is an input (event time), never read from a clock, so a replay gives
//! the same windows. A window resets when an event falls past its end.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

/// Most distinct values a set in a window remembers; counts stay exact up to
/// this and saturate beyond it.
pub const MAX_DISTINCT: usize = 4096;

/// A set that stops growing at [`MAX_DISTINCT`].
#[derive(Debug, Clone)]
pub struct CappedSet<T: Eq + Hash> {
    items: HashSet<T>,
    overflow: bool,
}

impl<T: Eq + Hash> Default for CappedSet<T> {
    fn default() -> Self {
        Self {
            items: HashSet::new(),
            overflow: false,
        }
    }
}

impl<T: Eq + Hash> CappedSet<T> {
    /// Adds a value; returns true when it was new.
    pub fn insert(&mut self, v: T) -> bool {
        if self.items.len() >= MAX_DISTINCT && !self.items.contains(&v) {
            self.overflow = true;
            return false;
        }
        self.items.insert(v)
    }

    /// Distinct values seen (a lower bound once [`Self::saturated`]).
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn saturated(&self) -> bool {
        self.overflow
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.items.iter()
    }
}

/// Per-key state that lives for one window of `width_ns`.
#[derive(Debug)]
pub struct Windows<K, S> {
    width_ns: u64,
    max_keys: usize,
    entries: HashMap<K, (u64, S)>,
}

impl<K: Eq + Hash + Clone, S: Default> Windows<K, S> {
    /// `max_keys` bounds memory: when full, windows that ended are dropped,
    /// and if none has, the new key is not tracked.
    pub fn new(width_ns: u64, max_keys: usize) -> Self {
        Self {
            width_ns: width_ns.max(1),
            max_keys: max_keys.max(1),
            entries: HashMap::new(),
        }
    }

    /// The state of `key` for the window holding `time_ns`, reset when the
    /// previous window ended. None when the table is full.
    pub fn get(&mut self, key: &K, time_ns: u64) -> Option<&mut S> {
        let width = self.width_ns;
        if !self.entries.contains_key(key) && self.entries.len() >= self.max_keys {
            self.entries
                .retain(|_, (start, _)| time_ns < start.saturating_add(width));
            if self.entries.len() >= self.max_keys {
                return None;
            }
        }
        let (start, state) = self
            .entries
            .entry(key.clone())
            .or_insert_with(|| (time_ns, S::default()));
        if time_ns >= start.saturating_add(width) {
            *start = time_ns;
            *state = S::default();
        }
        Some(state)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_reset_after_their_width_and_stay_bounded() {
        let mut w: Windows<u32, u32> = Windows::new(10, 2);
        *w.get(&1, 0).expect("tracked") += 1;
        *w.get(&1, 9).expect("tracked") += 1;
        assert_eq!(*w.get(&1, 9).expect("tracked"), 2);
        assert_eq!(*w.get(&1, 10).expect("tracked"), 0, "new window");
        assert!(w.get(&2, 10).is_some());
        assert!(w.get(&3, 11).is_none(), "full, nothing expired");
        assert!(w.get(&3, 100).is_some(), "expired windows make room");
    }

    #[test]
    fn capped_set_saturates() {
        let mut s = CappedSet::default();
        for i in 0..(MAX_DISTINCT + 10) {
            s.insert(i);
        }
        assert_eq!(s.len(), MAX_DISTINCT);
        assert!(s.saturated());
    }
}
