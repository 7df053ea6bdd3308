//! Counters to rates, with 32-bit wrap and agent reboot handling. Pure.
//!
//! Elapsed time comes from the agent's own sysUpTime, so network delay does
//! not distort a rate. A 32-bit counter that went backwards wrapped once; a
//! 64-bit counter that went backwards was reset (no rate). sysUpTime going
//! backwards means the agent restarted: the baseline is replaced and no rate
//! is reported for that poll.

use std::collections::HashMap;

/// One counter reading, with the width the agent reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    C32(u32),
    C64(u64),
}

/// How much a counter grew between two readings; None when unknowable.
pub fn delta(prev: Counter, cur: Counter) -> Option<u64> {
    match (prev, cur) {
        (Counter::C32(p), Counter::C32(c)) => Some(u64::from(c.wrapping_sub(p))),
        (Counter::C64(p), Counter::C64(c)) => c.checked_sub(p),
        _ => None,
    }
}

/// The counters of one interface in one poll.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IfCounters {
    pub name: String,
    pub in_octets: Option<Counter>,
    pub out_octets: Option<Counter>,
    pub in_packets: Option<Counter>,
    pub out_packets: Option<Counter>,
    pub in_errors: Option<Counter>,
    pub out_errors: Option<Counter>,
}

/// One poll's counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    /// sysUpTime, hundredths of a second.
    pub uptime_ticks: u32,
    pub interfaces: HashMap<u32, IfCounters>,
}

/// Rates of one interface, per second.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IfRates {
    pub in_octets: Option<f64>,
    pub out_octets: Option<f64>,
    pub in_packets: Option<f64>,
    pub out_packets: Option<f64>,
    pub in_errors: Option<f64>,
    pub out_errors: Option<f64>,
}

/// The previous sample of one device.
#[derive(Debug, Default)]
pub struct RateTracker {
    prev: Option<Sample>,
}

/// What a new sample gives.
#[derive(Debug, Default, PartialEq)]
pub struct Rates {
    /// The agent restarted since the previous poll.
    pub rebooted: bool,
    pub interfaces: HashMap<u32, IfRates>,
}

impl RateTracker {
    /// Takes a new sample; returns the rates since the previous one.
    pub fn update(&mut self, cur: Sample) -> Rates {
        let mut out = Rates::default();
        if let Some(prev) = &self.prev {
            if cur.uptime_ticks < prev.uptime_ticks {
                out.rebooted = true;
            } else {
                let secs = f64::from(cur.uptime_ticks - prev.uptime_ticks) / 100.0;
                if secs > 0.0 {
                    for (index, c) in &cur.interfaces {
                        if let Some(p) = prev.interfaces.get(index) {
                            out.interfaces.insert(*index, rates(p, c, secs));
                        }
                    }
                }
            }
        }
        self.prev = Some(cur);
        out
    }
}

fn rates(p: &IfCounters, c: &IfCounters, secs: f64) -> IfRates {
    let r = |a: Option<Counter>, b: Option<Counter>| -> Option<f64> {
        let d = delta(a?, b?)?;
        Some(d as f64 / secs)
    };
    IfRates {
        in_octets: r(p.in_octets, c.in_octets),
        out_octets: r(p.out_octets, c.out_octets),
        in_packets: r(p.in_packets, c.in_packets),
        out_packets: r(p.out_packets, c.out_packets),
        in_errors: r(p.in_errors, c.in_errors),
        out_errors: r(p.out_errors, c.out_errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(uptime: u32, octets: Counter) -> Sample {
        let mut interfaces = HashMap::new();
        interfaces.insert(
            1,
            IfCounters {
                name: "eth0".into(),
                in_octets: Some(octets),
                ..Default::default()
            },
        );
        Sample {
            uptime_ticks: uptime,
            interfaces,
        }
    }

    #[test]
    fn first_poll_has_no_rate_then_rates_follow() {
        let mut t = RateTracker::default();
        assert!(
            t.update(sample(1_000, Counter::C64(0)))
                .interfaces
                .is_empty()
        );
        let r = t.update(sample(2_000, Counter::C64(10_000)));
        assert_eq!(
            r.interfaces[&1].in_octets,
            Some(1_000.0),
            "10,000 bytes in 10 s"
        );
        assert_eq!(r.interfaces[&1].out_octets, None, "no counter, no rate");
    }

    #[test]
    fn a_32_bit_counter_wraps_once() {
        let mut t = RateTracker::default();
        t.update(sample(0, Counter::C32(u32::MAX - 99)));
        let r = t.update(sample(100, Counter::C32(100)));
        assert_eq!(r.interfaces[&1].in_octets, Some(200.0));
    }

    #[test]
    fn a_64_bit_counter_going_back_or_changing_width_gives_no_rate() {
        let mut t = RateTracker::default();
        t.update(sample(0, Counter::C64(500)));
        assert_eq!(
            t.update(sample(100, Counter::C64(100))).interfaces[&1].in_octets,
            None
        );
        assert_eq!(
            t.update(sample(200, Counter::C32(100))).interfaces[&1].in_octets,
            None
        );
    }

    #[test]
    fn reboot_resets_the_baseline() {
        let mut t = RateTracker::default();
        t.update(sample(50_000, Counter::C64(1 << 40)));
        let r = t.update(sample(300, Counter::C64(1_000)));
        assert!(r.rebooted && r.interfaces.is_empty());
        let r = t.update(sample(1_300, Counter::C64(11_000)));
        assert!(!r.rebooted);
        assert_eq!(r.interfaces[&1].in_octets, Some(1_000.0));
    }
}
