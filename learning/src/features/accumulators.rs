//! One window's accumulator per entity kind, and the moving averages of
//! SNMP rates that outlive windows.

use std::net::IpAddr;

use amoskys_sensors::event::{FlowEnd, FlowRecord, Transport};

use super::{EWMA_ALPHA, log_scale, ratio};
use crate::window::CappedSet;

#[derive(Debug, Default)]
pub(super) struct SourceAcc {
    pub(super) flows: u64,
    pub(super) ports: CappedSet<u16>,
    pub(super) hosts: CappedSet<IpAddr>,
    pub(super) syn: u64,
    pub(super) syn_no_ack: u64,
    pub(super) tcp: u64,
    pub(super) failed: u64,
    pub(super) completed: u64,
    pub(super) bytes_out: u64,
    pub(super) bytes_in: u64,
    pub(super) packets_out: u64,
    pub(super) packets_in: u64,
    pub(super) udp: u64,
    pub(super) icmp: u64,
}

impl SourceAcc {
    pub(super) fn add(&mut self, f: &FlowRecord) {
        self.flows += 1;
        self.ports.insert(f.dst_port);
        self.hosts.insert(f.dst);
        self.bytes_out += f.forward.bytes;
        self.bytes_in += f.reverse.bytes;
        self.packets_out += f.forward.packets;
        self.packets_in += f.reverse.packets;
        match f.transport {
            Transport::Tcp => {
                self.tcp += 1;
                self.syn += u64::from(f.tcp_flags.syn);
                self.syn_no_ack += u64::from(f.tcp_flags.syn_no_ack);
                if f.tcp_flags.syn_ack == 0 || f.reverse.packets == 0 {
                    self.failed += 1;
                } else if f.end == FlowEnd::End {
                    self.completed += 1;
                }
            }
            Transport::Udp => self.udp += 1,
            Transport::Icmp | Transport::Icmpv6 => self.icmp += 1,
            Transport::Other(_) => {}
        }
    }

    pub(super) fn values(&self) -> Vec<f32> {
        vec![
            log_scale(self.flows as f64, 1e5),
            log_scale(self.ports.len() as f64, 65_536.0),
            log_scale(self.hosts.len() as f64, 65_536.0),
            ratio(self.syn_no_ack, self.syn),
            ratio(self.failed, self.tcp),
            ratio(self.completed, self.tcp),
            log_scale(self.bytes_out as f64, 1e10),
            log_scale(self.bytes_in as f64, 1e10),
            log_scale(self.packets_out as f64, 1e8),
            log_scale(self.packets_in as f64, 1e8),
            log_scale(self.bytes_out as f64 / self.flows.max(1) as f64, 1e8),
            ratio(self.udp, self.flows),
            ratio(self.icmp, self.flows),
        ]
    }
}

#[derive(Debug, Default)]
pub(super) struct HostAcc {
    pub(super) launches: u64,
    pub(super) programs: CappedSet<String>,
    pub(super) rare_pairs: u64,
    pub(super) shells: u64,
    pub(super) root_launches: u64,
    pub(super) exits: u64,
    pub(super) listens: u64,
    pub(super) connects: u64,
    pub(super) accepts: u64,
    pub(super) remotes: CappedSet<IpAddr>,
    pub(super) opens: u64,
    pub(super) files: CappedSet<String>,
}

impl HostAcc {
    pub(super) fn values(&self) -> Vec<f32> {
        vec![
            log_scale(self.launches as f64, 1e5),
            log_scale(self.programs.len() as f64, 1e4),
            log_scale(self.rare_pairs as f64, 1e3),
            log_scale(self.shells as f64, 1e4),
            ratio(self.root_launches, self.launches),
            log_scale(self.exits as f64, 1e5),
            log_scale(self.listens as f64, 1e3),
            log_scale(self.connects as f64, 1e5),
            log_scale(self.accepts as f64, 1e5),
            log_scale(self.remotes.len() as f64, 1e5),
            log_scale(self.opens as f64, 1e6),
            log_scale(self.files.len() as f64, 1e5),
        ]
    }
}

#[derive(Debug, Default)]
pub(super) struct ProcessAcc {
    pub(super) launches: u64,
    pub(super) children: u64,
    pub(super) child_programs: CappedSet<String>,
    pub(super) shell_children: u64,
    pub(super) connects: u64,
    pub(super) accepts: u64,
    pub(super) listens: u64,
    pub(super) remotes: CappedSet<IpAddr>,
    pub(super) remote_ports: CappedSet<u16>,
    pub(super) opens: u64,
    pub(super) files: CappedSet<String>,
}

impl ProcessAcc {
    pub(super) fn values(&self) -> Vec<f32> {
        vec![
            log_scale(self.launches as f64, 1e4),
            log_scale(self.children as f64, 1e4),
            log_scale(self.child_programs.len() as f64, 1e3),
            log_scale(self.shell_children as f64, 1e3),
            log_scale(self.connects as f64, 1e5),
            log_scale(self.accepts as f64, 1e5),
            log_scale(self.listens as f64, 1e3),
            log_scale(self.remotes.len() as f64, 1e5),
            log_scale(self.remote_ports.len() as f64, 65_536.0),
            log_scale(self.opens as f64, 1e6),
            log_scale(self.files.len() as f64, 1e5),
        ]
    }
}

#[derive(Debug, Default)]
pub(super) struct DeviceAcc {
    pub(super) polls: u64,
    pub(super) cpu: f64,
    pub(super) load: f64,
    pub(super) memory_used: f64,
    pub(super) in_bytes: f64,
    pub(super) out_bytes: f64,
    pub(super) in_packets: f64,
    pub(super) out_packets: f64,
    pub(super) errors: f64,
    pub(super) max_z: f64,
    pub(super) rebooted: bool,
    pub(super) payload_bytes: f64,
    pub(super) max_metric_z: f64,
}

impl DeviceAcc {
    pub(super) fn values(&self) -> Vec<f32> {
        let n = self.polls.max(1) as f64;
        vec![
            (self.cpu / n / 100.0).clamp(0.0, 1.0) as f32,
            log_scale(self.load / n, 1e3),
            (self.memory_used / n).clamp(0.0, 1.0) as f32,
            log_scale(self.in_bytes / n, 1e11),
            log_scale(self.out_bytes / n, 1e11),
            log_scale(self.in_packets / n, 1e9),
            log_scale(self.out_packets / n, 1e9),
            log_scale(self.errors / n, 1e6),
            (self.max_z / 10.0).min(1.0) as f32,
            f32::from(u8::from(self.rebooted)),
            log_scale(self.polls as f64, 1e5),
            log_scale(self.payload_bytes / n, 1e6),
            (self.max_metric_z / 10.0).min(1.0) as f32,
        ]
    }
}

/// Moving mean and variance of one interface's log byte rate.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ewma {
    pub(super) mean: f64,
    pub(super) var: f64,
    pub(super) seen: u32,
}

impl Ewma {
    /// The z-score of `x` against what came before, then `x` joins.
    pub(super) fn observe(&mut self, x: f64) -> f64 {
        let z = if self.seen >= 3 {
            (x - self.mean).abs() / (self.var + 0.01).sqrt()
        } else {
            0.0
        };
        if self.seen == 0 {
            self.mean = x;
        } else {
            let d = x - self.mean;
            self.mean += EWMA_ALPHA * d;
            self.var = (1.0 - EWMA_ALPHA) * (self.var + EWMA_ALPHA * d * d);
        }
        self.seen = self.seen.saturating_add(1);
        z
    }
}
