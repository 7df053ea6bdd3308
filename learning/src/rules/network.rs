//! Port scans (TCP vertical and horizontal, UDP, and slow ones over long
//! windows), brute force and IOC traffic, from flow records; SYN floods are
//! in [`super::flood`].

use std::net::IpAddr;

use amoskys_sensors::Transport;
use amoskys_sensors::event::FlowRecord;

use super::RulePolicy;
use super::flood::FloodRule;
use crate::sketch::Distinct;
use crate::window::{CappedSet, Windows};
use crate::{Category, Finding, Severity, Subject};

/// Most keys each window table tracks.
const MAX_KEYS: usize = 100_000;
/// Most sources the slow-scan table tracks (128 bytes of sketch each).
const MAX_SLOW_KEYS: usize = 10_000;

#[derive(Debug)]
struct Set<T: Eq + std::hash::Hash> {
    values: CappedSet<T>,
    fired: bool,
}

impl<T: Eq + std::hash::Hash> Default for Set<T> {
    fn default() -> Self {
        Self {
            values: CappedSet::default(),
            fired: false,
        }
    }
}

#[derive(Debug, Default)]
struct Attempts {
    count: u64,
    fired: bool,
}

/// One source's failed attempts over the long window.
#[derive(Debug, Default)]
struct Slow {
    targets: Distinct,
    /// A fast scan by this source fired in the window: not reported twice.
    fast: bool,
    fired: bool,
}

#[derive(Debug)]
pub(super) struct NetworkRules {
    vertical: Windows<(IpAddr, IpAddr), Set<u16>>,
    udp: Windows<(IpAddr, IpAddr), Set<u16>>,
    slow: Windows<IpAddr, Slow>,
    horizontal: Windows<(IpAddr, u16), Set<IpAddr>>,
    flood: FloodRule,
    brute: Windows<(IpAddr, IpAddr, u16), Attempts>,
    seen: Windows<(&'static str, IpAddr), bool>,
}

/// A TCP connection attempt that got no handshake back (closed port, no host).
fn failed_attempt(f: &FlowRecord) -> bool {
    f.tcp_flags.syn_no_ack > 0 && f.tcp_flags.syn_ack == 0
}

/// A UDP flow the destination never answered (a closed port answers with
/// ICMP, which is not part of the flow; a filtered one not at all).
fn unanswered_udp(f: &FlowRecord) -> bool {
    f.transport == Transport::Udp && f.forward.packets > 0 && f.reverse.packets == 0
}

/// The initiator finished the handshake and the connection was not reset.
fn completed(f: &FlowRecord) -> bool {
    f.tcp_flags.syn_ack > 0 && f.tcp_flags.rst == 0 && f.forward.packets >= 2
}

impl NetworkRules {
    pub(super) fn new(window_ns: u64, slow_window_ns: u64) -> Self {
        Self {
            vertical: Windows::new(window_ns, MAX_KEYS),
            udp: Windows::new(window_ns, MAX_KEYS),
            slow: Windows::new(slow_window_ns, MAX_SLOW_KEYS),
            horizontal: Windows::new(window_ns, MAX_KEYS),
            flood: FloodRule::new(),
            brute: Windows::new(window_ns, MAX_KEYS),
            seen: Windows::new(window_ns, MAX_KEYS),
        }
    }

    /// True the first time `ip` is seen under `tag` in its window.
    pub(super) fn first_in_window(&mut self, t: u64, tag: &'static str, ip: IpAddr) -> bool {
        match self.seen.get(&(tag, ip), t) {
            Some(seen) if !*seen => {
                *seen = true;
                true
            }
            _ => false,
        }
    }

    pub(super) fn observe(
        &mut self,
        p: &RulePolicy,
        t: u64,
        f: &FlowRecord,
        out: &mut Vec<Finding>,
    ) {
        if unanswered_udp(f) {
            self.udp_scan(p, t, f, out);
            self.slow_scan(p, t, f, out);
        }
        if f.transport != Transport::Tcp {
            return;
        }
        if failed_attempt(f) {
            self.scans(p, t, f, out);
            self.slow_scan(p, t, f, out);
        }
        if f.tcp_flags.syn_no_ack > 0 {
            self.flood.observe(p, t, f, !completed(f), out);
        }
        if p.brute_force_ports.contains(&f.dst_port) && completed(f) {
            self.brute_force(p, t, f, out);
        }
    }

    fn scans(&mut self, p: &RulePolicy, t: u64, f: &FlowRecord, out: &mut Vec<Finding>) {
        let before = out.len();
        if let Some(s) = self.vertical.get(&(f.src, f.dst), t) {
            s.values.insert(f.dst_port);
            if !s.fired && s.values.len() >= p.scan_min_ports {
                s.fired = true;
                let mut ports: Vec<u16> = s.values.iter().copied().collect();
                ports.sort_unstable();
                out.push(Finding {
                    time_ns: t,
                    rule: "port_scan_vertical".into(),
                    category: Category::Reconnaissance,
                    technique: "T1046".into(),
                    severity: Severity::Medium,
                    score: score(s.values.len() as f64, p.scan_min_ports as f64),
                    subject: Subject::SourceIp(f.src),
                    evidence: vec![
                        ("target".into(), f.dst.to_string()),
                        ("ports".into(), s.values.len().to_string()),
                        ("sample_ports".into(), sample(&ports)),
                        ("window_secs".into(), p.window_secs.to_string()),
                    ],
                });
            }
        }
        if let Some(s) = self.horizontal.get(&(f.src, f.dst_port), t) {
            s.values.insert(f.dst);
            if !s.fired && s.values.len() >= p.scan_min_hosts {
                s.fired = true;
                out.push(Finding {
                    time_ns: t,
                    rule: "port_scan_horizontal".into(),
                    category: Category::Reconnaissance,
                    technique: "T1046".into(),
                    severity: Severity::Medium,
                    score: score(s.values.len() as f64, p.scan_min_hosts as f64),
                    subject: Subject::SourceIp(f.src),
                    evidence: vec![
                        ("port".into(), f.dst_port.to_string()),
                        ("hosts".into(), s.values.len().to_string()),
                        ("window_secs".into(), p.window_secs.to_string()),
                    ],
                });
            }
        }
        if out.len() > before {
            self.fast_fired(t, f.src);
        }
    }

    /// A source's fast scan fired: its slow window will not report it too.
    fn fast_fired(&mut self, t: u64, src: IpAddr) {
        if let Some(s) = self.slow.get(&src, t) {
            s.fast = true;
        }
    }

    fn udp_scan(&mut self, p: &RulePolicy, t: u64, f: &FlowRecord, out: &mut Vec<Finding>) {
        let Some(s) = self.udp.get(&(f.src, f.dst), t) else {
            return;
        };
        s.values.insert(f.dst_port);
        if s.fired || s.values.len() < p.udp_scan_min_ports {
            return;
        }
        s.fired = true;
        let mut ports: Vec<u16> = s.values.iter().copied().collect();
        ports.sort_unstable();
        out.push(Finding {
            time_ns: t,
            rule: "port_scan_udp".into(),
            category: Category::Reconnaissance,
            technique: "T1046".into(),
            severity: Severity::Medium,
            score: score(s.values.len() as f64, p.udp_scan_min_ports as f64),
            subject: Subject::SourceIp(f.src),
            evidence: vec![
                ("target".into(), f.dst.to_string()),
                ("udp_ports".into(), s.values.len().to_string()),
                ("sample_ports".into(), sample(&ports)),
                ("window_secs".into(), p.window_secs.to_string()),
            ],
        });
        self.fast_fired(t, f.src);
    }

    /// Low and slow: distinct (host, port, protocol) a source failed to
    /// reach over the long window, counted in fixed memory.
    fn slow_scan(&mut self, p: &RulePolicy, t: u64, f: &FlowRecord, out: &mut Vec<Finding>) {
        let Some(s) = self.slow.get(&f.src, t) else {
            return;
        };
        s.targets
            .insert(&(f.dst, f.dst_port, f.transport == Transport::Udp));
        let targets = s.targets.estimate();
        if s.fired || s.fast || targets < p.slow_scan_min_targets as f64 {
            return;
        }
        s.fired = true;
        out.push(Finding {
            time_ns: t,
            rule: "port_scan_slow".into(),
            category: Category::Reconnaissance,
            technique: "T1046".into(),
            severity: Severity::Medium,
            score: score(targets, p.slow_scan_min_targets as f64),
            subject: Subject::SourceIp(f.src),
            evidence: vec![
                ("targets_estimated".into(), format!("{targets:.0}")),
                ("last_target".into(), format!("{}:{}", f.dst, f.dst_port)),
                ("window_secs".into(), p.slow_scan_window_secs.to_string()),
            ],
        });
    }

    fn brute_force(&mut self, p: &RulePolicy, t: u64, f: &FlowRecord, out: &mut Vec<Finding>) {
        let secs = f.last_ns.saturating_sub(f.first_ns) / 1_000_000_000;
        if secs > p.brute_force_max_secs {
            return;
        }
        let Some(s) = self.brute.get(&(f.src, f.dst, f.dst_port), t) else {
            return;
        };
        s.count += 1;
        if !s.fired && s.count >= p.brute_force_min_attempts {
            s.fired = true;
            out.push(Finding {
                time_ns: t,
                rule: "brute_force".into(),
                category: Category::CredentialAccess,
                technique: "T1110".into(),
                severity: Severity::High,
                score: score(s.count as f64, p.brute_force_min_attempts as f64),
                subject: Subject::SourceIp(f.src),
                evidence: vec![
                    ("target".into(), format!("{}:{}", f.dst, f.dst_port)),
                    ("attempts".into(), s.count.to_string()),
                    ("window_secs".into(), p.window_secs.to_string()),
                ],
            });
        }
    }
}

/// Confidence that grows with how far past the threshold a count is:
/// 0.6 at the threshold, towards 1 at four times it.
pub(super) fn score(value: f64, threshold: f64) -> f64 {
    let over = (value / threshold.max(1.0)).clamp(1.0, 4.0);
    0.6 + 0.4 * (over - 1.0) / 3.0
}

fn sample(ports: &[u16]) -> String {
    let shown: Vec<String> = ports.iter().take(10).map(u16::to_string).collect();
    if ports.len() > shown.len() {
        format!("{},…", shown.join(","))
    } else {
        shown.join(",")
    }
}
