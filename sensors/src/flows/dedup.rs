//! Loopback de-duplication.
//!
//! On `lo` an AF_PACKET socket receives every frame twice: once as it is sent
//! and once as it is received. The copies are byte-identical and arrive
//! microseconds apart, usually back to back; with several senders at once
//! another frame can come in between. The filter remembers the last
//! [`RECENT`] frames (a 64-bit hash of the bytes, the length and the time) and
//! drops a frame that matches one of them within the window; each remembered
//! frame absorbs one copy only, so a third identical frame counts again.
//!
//! The cost: two genuinely identical frames within the window count once.
//! TCP never sends those (a retransmission is at least 200 ms later); a
//! program that sends the same UDP datagram twice within a millisecond on
//! `lo` is under-counted. The filter is only used on loopback interfaces.
//! (pnet does not expose the packet type, `PACKET_OUTGOING`, that would tell
//! the two copies apart.)

/// Frames remembered.
pub const RECENT: usize = 8;

#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    hash: u64,
    len: usize,
    ts_ns: u64,
    /// Still waiting for its second copy.
    open: bool,
}

/// Drops the second copy of each loopback frame.
#[derive(Debug)]
pub struct DuplicateFilter {
    window_ns: u64,
    recent: [Seen; RECENT],
    next: usize,
    dropped: u64,
}

impl DuplicateFilter {
    /// A filter matching copies at most `window_ns` apart.
    pub fn new(window_ns: u64) -> Self {
        Self {
            window_ns,
            recent: [Seen::default(); RECENT],
            next: 0,
            dropped: 0,
        }
    }

    /// Copies dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Whether `frame`, seen at `ts_ns`, is the copy of a recent frame.
    pub fn is_duplicate(&mut self, frame: &[u8], ts_ns: u64) -> bool {
        let hash = hash_bytes(frame);
        let window = self.window_ns;
        let copy_of = self.recent.iter_mut().find(|s| {
            s.open && s.hash == hash && s.len == frame.len() && ts_ns.abs_diff(s.ts_ns) <= window
        });
        if let Some(seen) = copy_of {
            seen.open = false;
            self.dropped += 1;
            return true;
        }
        if let Some(slot) = self.recent.get_mut(self.next) {
            *slot = Seen {
                hash,
                len: frame.len(),
                ts_ns,
                open: true,
            };
        }
        self.next = (self.next + 1) % RECENT;
        false
    }
}

/// A fast 64-bit hash of bytes (multiply-rotate over 8-byte words, with a
/// final avalanche). Not for adversarial input: a collision only makes two
/// frames of equal length within a millisecond count once.
fn hash_bytes(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = K ^ bytes.len() as u64;
    let mut words = bytes.chunks_exact(8);
    for w in words.by_ref() {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        h = (h ^ u64::from_le_bytes(b)).rotate_left(29).wrapping_mul(K);
    }
    let mut tail = [0u8; 8];
    let rest = words.remainder();
    if let Some(t) = tail.get_mut(..rest.len()) {
        t.copy_from_slice(rest);
    }
    h = (h ^ u64::from_le_bytes(tail)).wrapping_mul(K);
    // Final mix (from splitmix64).
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn second_copy_is_dropped_third_counts() {
        let mut f = DuplicateFilter::new(MS);
        let a = [1u8; 60];
        assert!(!f.is_duplicate(&a, 1_000));
        assert!(f.is_duplicate(&a, 1_010));
        assert!(!f.is_duplicate(&a, 1_020), "a third copy is a new frame");
        assert!(f.is_duplicate(&a, 1_030));
        assert_eq!(f.dropped(), 2);
    }

    #[test]
    fn copies_interleaved_with_other_frames_are_dropped() {
        let mut f = DuplicateFilter::new(MS);
        let (a, b) = ([1u8; 60], [2u8; 60]);
        assert!(!f.is_duplicate(&a, 0));
        assert!(!f.is_duplicate(&b, 1));
        assert!(f.is_duplicate(&a, 2));
        assert!(f.is_duplicate(&b, 3));
    }

    #[test]
    fn different_bytes_length_or_late_copies_count() {
        let mut f = DuplicateFilter::new(MS);
        let mut a = vec![7u8; 61];
        assert!(!f.is_duplicate(&a, 0));
        assert!(!f.is_duplicate(&a[..60], 10), "shorter frame");
        a[60] = 8;
        assert!(!f.is_duplicate(&a, 20), "one byte differs");
        let c = [9u8; 100];
        assert!(!f.is_duplicate(&c, 0));
        assert!(!f.is_duplicate(&c, 2 * MS), "outside the window");
    }

    #[test]
    fn hash_depends_on_every_byte() {
        let base = [0u8; 23];
        let h0 = hash_bytes(&base);
        for i in 0..base.len() {
            let mut m = base;
            m[i] = 1;
            assert_ne!(hash_bytes(&m), h0, "byte {i}");
        }
    }
}
