//! The limit on failed authentications per source: a token bucket per
//! source address, [`BURST`] failures at once and [`REFILL_PER_SEC`] a
//! second after that. A source with an empty bucket is refused before its
//! request is verified, so a brute force costs the node almost nothing.
//!
//! An IPv6 source is its /64 (one host usually holds the whole prefix); an
//! IPv4-mapped IPv6 address is its IPv4 address. At most
//! [`MAX_SOURCES`] sources are tracked: when full, sources whose bucket has
//! refilled are forgotten (they are as if never seen), then the one whose
//! last failure is oldest.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};

/// Failures a source may make at once.
pub const BURST: u64 = 20;
/// Failures a source may make each second after its burst.
pub const REFILL_PER_SEC: u64 = 5;
/// Sources tracked at most.
pub const MAX_SOURCES: usize = 10_000;

/// Tokens are counted in thousandths, so refill is exact in integers:
/// `REFILL_PER_SEC` tokens a second is `REFILL_PER_SEC` milli-tokens a
/// millisecond.
const MILLI: u64 = 1000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    milli_tokens: u64,
    last_ms: u64,
}

/// Failed-authentication buckets by source.
#[derive(Debug)]
pub struct FailureLimiter {
    buckets: HashMap<IpAddr, Bucket>,
    burst: u64,
    refill_per_sec: u64,
    max_sources: usize,
}

impl Default for FailureLimiter {
    fn default() -> Self {
        Self::new(BURST, REFILL_PER_SEC, MAX_SOURCES)
    }
}

impl FailureLimiter {
    /// `burst` failures at once, `refill_per_sec` a second, `max_sources`
    /// tracked (each at least one).
    pub fn new(burst: u64, refill_per_sec: u64, max_sources: usize) -> Self {
        Self {
            buckets: HashMap::new(),
            burst: burst.max(1),
            refill_per_sec: refill_per_sec.max(1),
            max_sources: max_sources.max(1),
        }
    }

    /// Whether a request from `ip` may be tried at `now_ms`: it has at
    /// least one failure left.
    pub fn allow(&mut self, ip: IpAddr, now_ms: u64) -> bool {
        let key = source(ip);
        match self.buckets.get(&key) {
            Some(b) => self.refilled(b, now_ms) >= MILLI,
            None => true,
        }
    }

    /// Counts one failed authentication from `ip` at `now_ms`.
    pub fn record_failure(&mut self, ip: IpAddr, now_ms: u64) {
        let key = source(ip);
        if !self.buckets.contains_key(&key) && self.buckets.len() >= self.max_sources {
            self.make_room(now_ms);
        }
        let full = self.burst * MILLI;
        let tokens = self
            .buckets
            .get(&key)
            .map_or(full, |b| self.refilled(b, now_ms));
        self.buckets.insert(
            key,
            Bucket {
                milli_tokens: tokens.saturating_sub(MILLI),
                last_ms: now_ms,
            },
        );
    }

    /// Sources tracked now.
    pub fn sources(&self) -> usize {
        self.buckets.len()
    }

    fn refilled(&self, b: &Bucket, now_ms: u64) -> u64 {
        let gained = now_ms
            .saturating_sub(b.last_ms)
            .saturating_mul(self.refill_per_sec);
        b.milli_tokens
            .saturating_add(gained)
            .min(self.burst * MILLI)
    }

    fn make_room(&mut self, now_ms: u64) {
        let full = self.burst * MILLI;
        let (burst, rate) = (self.burst, self.refill_per_sec);
        self.buckets.retain(|_, b| {
            let gained = now_ms.saturating_sub(b.last_ms).saturating_mul(rate);
            b.milli_tokens.saturating_add(gained).min(burst * MILLI) < full
        });
        if self.buckets.len() >= self.max_sources
            && let Some(oldest) = self
                .buckets
                .iter()
                .min_by_key(|(_, b)| b.last_ms)
                .map(|(ip, _)| *ip)
        {
            self.buckets.remove(&oldest);
        }
    }
}

/// The address a source is counted under.
fn source(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    #[test]
    fn a_burst_then_the_refill_rate() {
        let mut l = FailureLimiter::default();
        let a = ip("192.0.2.1");
        for _ in 0..BURST {
            assert!(l.allow(a, 0));
            l.record_failure(a, 0);
        }
        assert!(!l.allow(a, 0), "burst used up");
        assert!(!l.allow(a, 199), "one failure refills in 200 ms");
        assert!(l.allow(a, 200));
        l.record_failure(a, 200);
        assert!(!l.allow(a, 200));
        // Another source is not affected.
        assert!(l.allow(ip("192.0.2.2"), 200));
        // 1,000 failures in 10 s: at most the burst plus 5 a second pass.
        let mut l = FailureLimiter::default();
        let mut passed = 0;
        for i in 0..1000u64 {
            let now = i * 10;
            if l.allow(a, now) {
                passed += 1;
                l.record_failure(a, now);
            }
        }
        assert!((BURST + 49..=BURST + 51).contains(&passed), "{passed}");
        assert!(l.allow(a, 10_000 + 4 * 1000), "refilled after a pause");
    }

    #[test]
    fn ipv6_sources_are_their_slash_64() {
        let mut l = FailureLimiter::new(1, 1, 10);
        l.record_failure(ip("2001:db8:1:2::1"), 0);
        assert!(!l.allow(ip("2001:db8:1:2:ffff::9"), 0));
        assert!(l.allow(ip("2001:db8:1:3::1"), 0));
        l.record_failure(ip("::ffff:192.0.2.7"), 0);
        assert!(!l.allow(ip("192.0.2.7"), 0));
    }

    #[test]
    fn tracked_sources_are_bounded() {
        let mut l = FailureLimiter::new(2, 1, 100);
        for i in 0..1000u32 {
            let a = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            l.record_failure(a, u64::from(i));
            l.record_failure(a, u64::from(i));
            assert!(l.sources() <= 100);
        }
        // The most recent offenders are still held back.
        assert!(!l.allow(IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + 999)), 999));
        // Idle sources (refilled) are forgotten first.
        let mut l = FailureLimiter::new(2, 1, 2);
        l.record_failure(ip("192.0.2.1"), 0);
        l.record_failure(ip("192.0.2.2"), 5_000);
        l.record_failure(ip("192.0.2.2"), 5_000);
        l.record_failure(ip("192.0.2.3"), 5_000);
        assert!(
            !l.allow(ip("192.0.2.2"), 5_000),
            "the active source is kept"
        );
        assert_eq!(l.sources(), 2);
    }
}
