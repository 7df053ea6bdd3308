//! SYN floods, per destination (host:port) over a short sliding window.
//!
//! A flood from spoofed sources has one SYN per source, so only the
//! destination sees it. Each destination keeps counts of connection
//! attempts without a handshake and of completed handshakes in
//! [`BUCKETS`] slices of `flood_window_ms`, and a 128-byte distinct-count
//! sketch of its sources: memory per destination is fixed whatever the
//! number of sources, and destinations are capped at [`MAX_TARGETS`]. The
//! flow sensor reports half-open attempts about half a second after their
//! SYN, so a flood is seen within a second of its start.

use std::collections::HashMap;
use std::net::IpAddr;

use amoskys_sensors::event::FlowRecord;

use super::RulePolicy;
use crate::sketch::Distinct;
use crate::{Category, Finding, Severity, Subject};

/// Slices of the sliding window.
const BUCKETS: usize = 8;
/// Most destinations tracked at once.
pub(super) const MAX_TARGETS: usize = 10_000;

/// One destination's recent connection attempts.
#[derive(Debug, Default)]
struct Target {
    /// Slice index (time / slice width) of the newest slice.
    slice: u64,
    /// Attempts without a handshake, per slice (ring by slice index).
    half_open: [u64; BUCKETS],
    /// Completed handshakes, per slice.
    completed: [u64; BUCKETS],
    /// Sources since the destination was last quiet for a whole window.
    sources: Distinct,
    first_source: Option<IpAddr>,
    many_sources: bool,
    /// When this destination last fired.
    fired_ns: Option<u64>,
}

impl Target {
    /// Moves the ring to `slice`, clearing the slices that fell out.
    fn advance(&mut self, slice: u64) {
        if slice <= self.slice {
            return;
        }
        let gap = slice - self.slice;
        if gap >= BUCKETS as u64 {
            self.half_open = [0; BUCKETS];
            self.completed = [0; BUCKETS];
        } else {
            for s in self.slice + 1..=slice {
                let i = (s % BUCKETS as u64) as usize;
                self.half_open[i] = 0;
                self.completed[i] = 0;
            }
        }
        self.slice = slice;
        if self.half_open.iter().all(|c| *c == 0) && self.completed.iter().all(|c| *c == 0) {
            // A quiet window: the next burst counts its sources afresh.
            self.sources = Distinct::default();
            self.first_source = None;
            self.many_sources = false;
        }
    }

    fn idle_since(&self, slice: u64) -> bool {
        slice >= self.slice.saturating_add(BUCKETS as u64)
    }
}

/// Per-destination SYN counters over a sliding window.
#[derive(Debug)]
pub(super) struct FloodRule {
    targets: HashMap<(IpAddr, u16), Target>,
    /// Slice of the last sweep for idle destinations (one per slice at most,
    /// so a full table costs no scan per event).
    swept: Option<u64>,
}

impl FloodRule {
    pub(super) fn new() -> Self {
        Self {
            targets: HashMap::new(),
            swept: None,
        }
    }

    /// Destinations tracked now.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.targets.len()
    }

    /// Counts a TCP flow record's connection attempt toward its
    /// destination: `half_open` when no handshake completed.
    pub(super) fn observe(
        &mut self,
        p: &RulePolicy,
        t: u64,
        f: &FlowRecord,
        half_open: bool,
        out: &mut Vec<Finding>,
    ) {
        let slice_ns = (p.flood_window_ms.saturating_mul(1_000_000) / BUCKETS as u64).max(1);
        let slice = t / slice_ns;
        let key = (f.dst, f.dst_port);
        if !self.targets.contains_key(&key) && self.targets.len() >= MAX_TARGETS {
            if self.swept != Some(slice) {
                self.swept = Some(slice);
                self.targets.retain(|_, s| !s.idle_since(slice));
            }
            if self.targets.len() >= MAX_TARGETS {
                return;
            }
        }
        let s = self.targets.entry(key).or_insert_with(|| Target {
            slice,
            ..Target::default()
        });
        s.advance(slice);
        // A late event counts in the newest slice.
        let i = (s.slice % BUCKETS as u64) as usize;
        if half_open {
            s.half_open[i] += u64::from(f.tcp_flags.syn_no_ack.max(1));
        } else {
            s.completed[i] += 1;
        }
        s.sources.insert(&f.src);
        match s.first_source {
            None => s.first_source = Some(f.src),
            Some(first) if first != f.src => s.many_sources = true,
            Some(_) => {}
        }
        let syn: u64 = s.half_open.iter().sum();
        let completed: u64 = s.completed.iter().sum();
        let ratio = completed as f64 / (syn + completed).max(1) as f64;
        // Once per destination and `window_secs` while the flood lasts.
        let rearmed = s
            .fired_ns
            .is_none_or(|at| t >= at.saturating_add(p.window_secs.saturating_mul(1_000_000_000)));
        if !rearmed || syn < p.flood_min_syn || ratio > p.flood_max_completed_ratio {
            return;
        }
        s.fired_ns = Some(t);
        let subject = match s.first_source {
            Some(only) if !s.many_sources => Subject::SourceIp(only),
            _ => Subject::DestinationIp(f.dst),
        };
        let sources = if s.many_sources {
            format!("{:.0}", s.sources.estimate().max(2.0))
        } else {
            "1".to_owned()
        };
        out.push(Finding {
            time_ns: t,
            rule: "syn_flood".into(),
            category: Category::Impact,
            technique: "T1498.001".into(),
            severity: Severity::High,
            score: super::network::score(syn as f64, p.flood_min_syn as f64),
            subject,
            evidence: vec![
                ("target".into(), format!("{}:{}", f.dst, f.dst_port)),
                ("syn".into(), syn.to_string()),
                ("completed_ratio".into(), format!("{ratio:.3}")),
                ("sources_estimated".into(), sources),
                ("window_ms".into(), p.flood_window_ms.to_string()),
            ],
        });
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use amoskys_sensors::Transport;
    use amoskys_sensors::event::{FlowCounters, FlowEnd, TcpFlagCounts};

    use super::*;

    const MS: u64 = 1_000_000;
    const T0: u64 = 1_700_000_000_000_000_000;
    const TARGET: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

    /// A connection attempt from source number `n`: half-open (a lone SYN,
    /// reported early by the sensor) or a completed short session.
    fn attempt(n: u32, dst: Ipv4Addr, half_open: bool) -> FlowRecord {
        let (flags, fwd, end) = if half_open {
            let f = TcpFlagCounts {
                syn: 1,
                syn_no_ack: 1,
                ..Default::default()
            };
            (f, 1, FlowEnd::HalfOpen)
        } else {
            let f = TcpFlagCounts {
                syn: 2,
                syn_no_ack: 1,
                syn_ack: 1,
                fin: 2,
                rst: 0,
            };
            (f, 5, FlowEnd::End)
        };
        FlowRecord {
            interface: "eth0".into(),
            transport: Transport::Tcp,
            src: Ipv4Addr::from(0x0b00_0000 + n).into(),
            src_port: 1024 + (n % 60_000) as u16,
            dst: dst.into(),
            dst_port: 80,
            first_ns: T0,
            last_ns: T0,
            forward: FlowCounters {
                packets: fwd,
                bytes: fwd * 60,
            },
            reverse: FlowCounters {
                packets: 1,
                bytes: 60,
            },
            tcp_flags: flags,
            end,
        }
    }

    /// Feeds `count` attempts evenly over `span_ms` from `start`; returns
    /// the findings and the time of each.
    fn feed(
        rule: &mut FloodRule,
        p: &RulePolicy,
        start: u64,
        span_ms: u64,
        count: u32,
        half_open: impl Fn(u32) -> bool,
    ) -> Vec<Finding> {
        let mut out = Vec::new();
        for n in 0..count {
            let t = start + span_ms * MS * u64::from(n) / u64::from(count.max(1));
            let f = attempt(n, TARGET, half_open(n));
            rule.observe(p, t, &f, half_open(n), &mut out);
        }
        out
    }

    #[test]
    fn spoofed_flood_fires_per_destination_at_the_threshold() {
        let p = RulePolicy::default();
        let mut rule = FloodRule::new();
        // 1,000 spoofed sources in 500 ms: one SYN each.
        let found = feed(&mut rule, &p, T0, 500, 1_000, |_| true);
        assert_eq!(found.len(), 1, "{found:?}");
        let f = &found[0];
        assert_eq!(f.subject, Subject::DestinationIp(TARGET.into()));
        // The 200th attempt (of 1,000 over 500 ms) tips it: 100 ms in.
        assert_eq!(f.time_ns, T0 + 500 * MS * 199 / 1_000);
        let ev = |k: &str| f.evidence.iter().find(|(n, _)| n == k).map(|(_, v)| v);
        assert_eq!(ev("syn").map(String::as_str), Some("200"));
        let sources: f64 = ev("sources_estimated")
            .expect("sources")
            .parse()
            .expect("n");
        assert!((180.0..=220.0).contains(&sources), "{sources}");
    }

    #[test]
    fn memory_stays_bounded_whatever_the_sources_and_destinations() {
        let p = RulePolicy::default();
        let mut rule = FloodRule::new();
        let found = feed(&mut rule, &p, T0, 10_000, 200_000, |_| true);
        assert_eq!(rule.len(), 1, "one destination, whatever the sources");
        assert_eq!(found.len(), 1, "once per window_secs");
        let mut out = Vec::new();
        for n in 0..(MAX_TARGETS as u32 + 500) {
            let f = attempt(n, Ipv4Addr::from(0x0c00_0000 + n), true);
            rule.observe(&p, T0 + 20_000 * MS, &f, true, &mut out);
        }
        assert_eq!(rule.len(), MAX_TARGETS);
        // Destinations idle for a whole window make room.
        let late = T0 + 30_000 * MS;
        rule.observe(
            &p,
            late,
            &attempt(1, Ipv4Addr::new(10, 9, 9, 9), true),
            true,
            &mut out,
        );
        assert_eq!(rule.len(), 1);
    }

    #[test]
    fn ordinary_bursts_and_slow_trickles_do_not_fire() {
        let p = RulePolicy::default();
        // 5,000 connections in one second, 2% of them left half-open.
        let mut rule = FloodRule::new();
        assert!(feed(&mut rule, &p, T0, 1_000, 5_000, |n| n % 50 == 0).is_empty());
        // Mostly completed handshakes with many attempts lost: 300
        // half-open among 1,500 (20% ... 80% completed): a busy service.
        let mut rule = FloodRule::new();
        assert!(feed(&mut rule, &p, T0, 1_000, 1_500, |n| n % 5 == 0).is_empty());
        // 150 half-open attempts a second, for a minute: under the rate.
        let mut rule = FloodRule::new();
        assert!(feed(&mut rule, &p, T0, 60_000, 9_000, |_| true).is_empty());
    }

    #[test]
    fn the_window_slides_across_slice_edges_and_refires_per_window() {
        let p = RulePolicy::default();
        let mut rule = FloodRule::new();
        // 150 attempts at 0.6-0.99 s, 150 at 1.0-1.4 s: 300 within a second.
        let mut found = feed(&mut rule, &p, T0 + 600 * MS, 390, 150, |_| true);
        found.extend(feed(&mut rule, &p, T0 + 1_000 * MS, 400, 150, |_| true));
        assert_eq!(found.len(), 1);
        // A flood lasting two minutes: one finding per window_secs (60).
        let mut rule = FloodRule::new();
        let found = feed(&mut rule, &p, T0, 120_000, 120_000, |_| true);
        assert_eq!(found.len(), 2, "{found:?}");
        // One source: it is the subject.
        let mut rule = FloodRule::new();
        let mut out = Vec::new();
        for i in 0..300 {
            rule.observe(&p, T0 + i * MS, &attempt(7, TARGET, true), true, &mut out);
        }
        assert_eq!(out.len(), 1);
        let only = attempt(7, TARGET, true).src;
        assert_eq!(out[0].subject, Subject::SourceIp(only));
    }
}
