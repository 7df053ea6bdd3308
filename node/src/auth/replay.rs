//! The replay cache: each (key, nonce) of an accepted request, kept long
//! enough that the same request cannot be accepted again.
//!
//! A request is accepted while its timestamp is within 60 s of the node's
//! clock, so once accepted at `now` it could be replayed until at most
//! `now + 120 s`; entries are kept [`REPLAY_WINDOW_MS`] after they were
//! inserted. The cache is bounded: entries past the window are evicted
//! first, and when it is still full a new request is refused
//! ([`AuthError::Busy`]) rather than a live nonce forgotten.

use std::collections::{HashSet, VecDeque};

use super::AuthError;
use super::sign::MAX_SKEW_MS;

/// How long an accepted nonce is remembered.
pub const REPLAY_WINDOW_MS: u64 = 2 * MAX_SKEW_MS;
/// Most nonces remembered.
pub const REPLAY_CAPACITY: usize = 100_000;

type Entry = [u8; 48];

/// Remembered (key, nonce) pairs.
#[derive(Debug)]
pub struct ReplayCache {
    seen: HashSet<Entry>,
    /// Insertion order, with the time of insertion.
    order: VecDeque<(u64, Entry)>,
    capacity: usize,
}

impl Default for ReplayCache {
    fn default() -> Self {
        Self::new(REPLAY_CAPACITY)
    }
}

impl ReplayCache {
    /// A cache of at most `capacity` entries (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            seen: HashSet::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Records `(key, nonce)` accepted at `now_ms`; refuses one already
    /// there ([`AuthError::Replayed`]) or, when the cache is full of live
    /// entries, any new one ([`AuthError::Busy`]).
    pub fn insert(
        &mut self,
        key: &[u8; 32],
        nonce: &[u8; 16],
        now_ms: u64,
    ) -> Result<(), AuthError> {
        self.evict(now_ms);
        let mut entry = [0u8; 48];
        entry[..32].copy_from_slice(key);
        entry[32..].copy_from_slice(nonce);
        if self.seen.contains(&entry) {
            return Err(AuthError::Replayed);
        }
        if self.seen.len() >= self.capacity {
            return Err(AuthError::Busy);
        }
        self.seen.insert(entry);
        self.order.push_back((now_ms, entry));
        Ok(())
    }

    /// Entries remembered now.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Drops entries older than the window. If the clock stepped back, the
    /// entries after the step are kept longer, never shorter.
    fn evict(&mut self, now_ms: u64) {
        while let Some((at, entry)) = self.order.front() {
            if now_ms.saturating_sub(*at) <= REPLAY_WINDOW_MS {
                break;
            }
            self.seen.remove(entry);
            self.order.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_is_refused_again_within_the_window_and_forgotten_after() {
        let mut c = ReplayCache::new(10);
        let (k, n) = ([1u8; 32], [2u8; 16]);
        c.insert(&k, &n, 1_000).expect("first time");
        assert_eq!(c.insert(&k, &n, 1_000), Err(AuthError::Replayed));
        assert_eq!(
            c.insert(&k, &n, 1_000 + REPLAY_WINDOW_MS),
            Err(AuthError::Replayed)
        );
        // The same nonce under another key is another request.
        c.insert(&[3u8; 32], &n, 1_000).expect("other key");
        c.insert(&k, &n, 1_001 + REPLAY_WINDOW_MS)
            .expect("past the window");
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn a_full_cache_refuses_rather_than_forgets() {
        let mut c = ReplayCache::new(3);
        for i in 0..3u8 {
            c.insert(&[0; 32], &[i; 16], 100).expect("room");
        }
        assert_eq!(c.insert(&[0; 32], &[9; 16], 200), Err(AuthError::Busy));
        // Every live nonce is still refused.
        for i in 0..3u8 {
            assert_eq!(c.insert(&[0; 32], &[i; 16], 200), Err(AuthError::Replayed));
        }
        // Once the old ones are past the window there is room again.
        c.insert(&[0; 32], &[9; 16], 101 + REPLAY_WINDOW_MS)
            .expect("evicted");
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn the_default_bound_holds() {
        let mut c = ReplayCache::default();
        for i in 0..REPLAY_CAPACITY as u64 {
            let mut n = [0u8; 16];
            n[..8].copy_from_slice(&i.to_le_bytes());
            c.insert(&[7; 32], &n, i / 1000).expect("room");
        }
        assert_eq!(c.len(), REPLAY_CAPACITY);
        assert_eq!(c.insert(&[8; 32], &[0; 16], 100), Err(AuthError::Busy));
        assert!(
            c.insert(&[8; 32], &[0; 16], 100 + REPLAY_WINDOW_MS + 1)
                .is_ok()
        );
    }

    #[test]
    fn a_clock_step_back_keeps_entries() {
        let mut c = ReplayCache::new(10);
        c.insert(&[1; 32], &[1; 16], 500_000).expect("first");
        c.insert(&[1; 32], &[2; 16], 1_000)
            .expect("clock stepped back");
        assert_eq!(
            c.insert(&[1; 32], &[1; 16], 2_000),
            Err(AuthError::Replayed)
        );
    }
}
