//! The flow table: packets in, bidirectional [`FlowRecord`]s out.
//!
//! Pure and deterministic: time is an input (each packet's timestamp and the
//! `now_ns` given to [`FlowTable::expire`]); nothing here reads a clock or does
//! I/O. A flow is keyed by its two endpoints in canonical order plus the IP
//! protocol, so both directions land on one entry. The initiator (`src` of the
//! record) is the sender of the first packet seen, except that a TCP SYN+ACK
//! as first packet names its receiver, and a SYN without ACK seen later from
//! the other side (before any record was emitted) makes that side the
//! initiator.
//!
//! Records are emitted as NetFlow/IPFIX exporters do: [`FlowEnd::Idle`] after
//! `idle_timeout` without a packet; [`FlowEnd::Active`] every `active_timeout`
//! of a long flow, which then continues with fresh counters; [`FlowEnd::End`]
//! `end_grace` after TCP FIN was seen both ways or a RST (so the last ACKs
//! still count), or at once when a new SYN reuses the ports; and
//! [`FlowEnd::Forced`] on [`FlowTable::flush`] or when a new flow finds the
//! table at `max_flows` (the least recently seen flow is evicted and counted).
//! A TCP connection attempt whose initiator has not acknowledged anything
//! `half_open` after its SYN is reported early, once, as
//! [`FlowEnd::HalfOpen`] (or as [`FlowEnd::End`] when it was refused with a
//! RST), and continues with fresh counters: a SYN flood
//! reaches detection in well under a second instead of at the idle timeout
//! (a handshake completes within one round trip). Records without packets
//! (a flow idle since its last active or half-open record) are not emitted.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use pnet_packet::tcp::TcpFlags;

use super::parse::{PacketMeta, is_syn_only, transport_of};
use super::slots::Slots;
use crate::FlowRecord;
use crate::event::{FlowCounters, FlowEnd, TcpFlagCounts};

/// By last packet: idle expiry and eviction.
const BY_LAST_SEEN: usize = 0;
/// By start of the current record: active timeout.
const BY_RECORD_START: usize = 1;
/// Ended TCP connections, by end time: end grace.
const BY_END: usize = 2;
/// TCP connection attempts not yet reported, by first SYN: half-open report.
const BY_SYN: usize = 3;
const PROTO_TCP: u8 = 6;

/// Limits and timeouts of one table.
#[derive(Debug, Clone)]
pub struct TableConfig {
    pub idle_timeout: Duration,
    pub active_timeout: Duration,
    /// Wait after TCP FIN both ways or RST before the record is emitted.
    pub end_grace: Duration,
    /// A connection attempt without an acknowledgement from its initiator
    /// this long after its SYN is reported as [`FlowEnd::HalfOpen`].
    pub half_open: Duration,
    /// Flows tracked at most; at least 1, below 2^32 - 1.
    pub max_flows: usize,
}

type Endpoint = (IpAddr, u16);

/// Both endpoints, the lower first, and the IP protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FlowKey {
    lo: Endpoint,
    hi: Endpoint,
    protocol: u8,
}

impl FlowKey {
    /// The key of a packet and whether its sender is the `lo` endpoint.
    fn of(meta: &PacketMeta) -> (Self, bool) {
        let src = (meta.src, meta.src_port);
        let dst = (meta.dst, meta.dst_port);
        let from_lo = src <= dst;
        let (lo, hi) = if from_lo { (src, dst) } else { (dst, src) };
        let protocol = meta.protocol;
        (Self { lo, hi, protocol }, from_lo)
    }
}

#[derive(Debug)]
struct Flow {
    key: FlowKey,
    /// The initiator is the `lo` endpoint.
    init_is_lo: bool,
    /// A SYN without ACK was seen: the initiator is settled.
    syn_seen: bool,
    /// First SYN without ACK (valid once `syn_seen`).
    syn_ns: u64,
    /// The initiator sent a packet with ACK: no longer half-open.
    init_acked: bool,
    /// A record of this flow was emitted: its orientation is published.
    published: bool,
    /// First and last packet of the current record (0 packets: unset).
    first_ns: u64,
    last_ns: u64,
    /// Last packet of the flow, across records.
    last_seen: u64,
    record_start: u64,
    forward: FlowCounters,
    reverse: FlowCounters,
    flags: TcpFlagCounts,
    fin_lo: bool,
    fin_hi: bool,
    ended_at: Option<u64>,
}

impl Flow {
    fn packets(&self) -> u64 {
        self.forward.packets + self.reverse.packets
    }
}

/// Flows of one interface.
#[derive(Debug)]
pub struct FlowTable {
    interface: String,
    idle_ns: u64,
    active_ns: u64,
    grace_ns: u64,
    half_open_ns: u64,
    max_flows: usize,
    map: HashMap<FlowKey, u32>,
    flows: Slots<Flow>,
    evictions: u64,
}

impl FlowTable {
    pub fn new(interface: impl Into<String>, config: &TableConfig) -> Self {
        let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1);
        Self {
            interface: interface.into(),
            idle_ns: ns(config.idle_timeout),
            active_ns: ns(config.active_timeout),
            grace_ns: ns(config.end_grace),
            half_open_ns: ns(config.half_open),
            // Slot indices are u32.
            max_flows: config.max_flows.clamp(1, u32::MAX as usize - 1),
            map: HashMap::new(),
            flows: Slots::new(),
            evictions: 0,
        }
    }

    /// Flows currently tracked.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.len() == 0
    }

    /// Flows evicted because the table was full, since creation.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Accounts one packet seen at `ts_ns`; records it completes go to `out`.
    pub fn update(&mut self, meta: &PacketMeta, ts_ns: u64, out: &mut Vec<FlowRecord>) {
        let (key, from_lo) = FlowKey::of(meta);
        let tcp = meta.protocol == PROTO_TCP;
        if let Some(&i) = self.map.get(&key) {
            let reused = tcp
                && is_syn_only(meta.tcp_flags)
                && self.flows.get(i).is_some_and(|f| f.ended_at.is_some());
            if !reused {
                self.account(i, meta, from_lo, ts_ns);
                return;
            }
            // A new connection on the ports of one that ended.
            self.finish(i, FlowEnd::End, out);
        }
        if self.flows.len() >= self.max_flows
            && let Some(oldest) = self.flows.front(BY_LAST_SEEN)
        {
            self.finish(oldest, FlowEnd::Forced, out);
            self.evictions += 1;
        }
        let syn_ack = meta.tcp_flags & (TcpFlags::SYN | TcpFlags::ACK);
        let init_is_lo = if tcp && syn_ack == TcpFlags::SYN | TcpFlags::ACK {
            !from_lo
        } else {
            from_lo
        };
        let i = self.flows.insert(Flow {
            key,
            init_is_lo,
            syn_seen: false,
            syn_ns: ts_ns,
            init_acked: false,
            published: false,
            first_ns: ts_ns,
            last_ns: ts_ns,
            last_seen: ts_ns,
            record_start: ts_ns,
            forward: FlowCounters::default(),
            reverse: FlowCounters::default(),
            flags: TcpFlagCounts::default(),
            fin_lo: false,
            fin_hi: false,
            ended_at: None,
        });
        self.map.insert(key, i);
        self.flows.push_back(BY_RECORD_START, i);
        self.account(i, meta, from_lo, ts_ns);
    }

    /// Emits every record due at `now_ns`: half-open, ended, idle, then
    /// active flows.
    pub fn expire(&mut self, now_ns: u64, out: &mut Vec<FlowRecord>) {
        while let Some(i) = self.flows.front(BY_SYN) {
            let Some(flow) = self.flows.get_mut(i) else {
                break;
            };
            if flow.syn_ns.saturating_add(self.half_open_ns) > now_ns {
                break;
            }
            if !flow.init_acked && !flow.published && flow.ended_at.is_some() {
                // Refused (RST): no last ACKs to wait for.
                self.finish(i, FlowEnd::End, out);
                continue;
            }
            if !flow.init_acked && !flow.published && flow.packets() > 0 {
                out.push(record(&self.interface, flow, FlowEnd::HalfOpen));
                flow.published = true;
                flow.forward = FlowCounters::default();
                flow.reverse = FlowCounters::default();
                flow.flags = TcpFlagCounts::default();
                flow.record_start = now_ns;
                self.flows.push_back(BY_RECORD_START, i);
            }
            self.flows.unlink(BY_SYN, i);
        }
        while let Some(i) = self.flows.front(BY_END) {
            match self.flows.get(i).and_then(|f| f.ended_at) {
                Some(at) if at.saturating_add(self.grace_ns) > now_ns => break,
                _ => self.finish(i, FlowEnd::End, out),
            }
        }
        while let Some(i) = self.flows.front(BY_LAST_SEEN) {
            match self.flows.get(i) {
                Some(f) if f.last_seen.saturating_add(self.idle_ns) > now_ns => break,
                _ => self.finish(i, FlowEnd::Idle, out),
            }
        }
        // Each flow moves to the back with a start of `now`: one pass at most.
        for _ in 0..self.flows.len() {
            let Some(i) = self.flows.front(BY_RECORD_START) else {
                break;
            };
            let Some(flow) = self.flows.get_mut(i) else {
                break;
            };
            if flow.record_start.saturating_add(self.active_ns) > now_ns {
                break;
            }
            if flow.packets() > 0 {
                out.push(record(&self.interface, flow, FlowEnd::Active));
                flow.published = true;
                flow.forward = FlowCounters::default();
                flow.reverse = FlowCounters::default();
                flow.flags = TcpFlagCounts::default();
            }
            flow.record_start = now_ns;
            self.flows.push_back(BY_RECORD_START, i);
        }
    }

    /// Emits every flow as [`FlowEnd::Forced`] and empties the table.
    pub fn flush(&mut self, out: &mut Vec<FlowRecord>) {
        while let Some(i) = self.flows.front(BY_LAST_SEEN) {
            self.finish(i, FlowEnd::Forced, out);
        }
    }

    fn account(&mut self, i: u32, meta: &PacketMeta, from_lo: bool, ts_ns: u64) {
        let Some(flow) = self.flows.get_mut(i) else {
            return;
        };
        let flags = meta.tcp_flags;
        let tcp = meta.protocol == PROTO_TCP;
        let syn_only = tcp && is_syn_only(flags);
        if syn_only && from_lo != flow.init_is_lo && !flow.syn_seen && !flow.published {
            // The connection attempt comes from the side taken for the responder.
            flow.init_is_lo = from_lo;
            flow.init_acked = false;
            std::mem::swap(&mut flow.forward, &mut flow.reverse);
        }
        if syn_only && !flow.syn_seen && !flow.published {
            flow.syn_ns = ts_ns;
            self.flows.push_back(BY_SYN, i);
        }
        let Some(flow) = self.flows.get_mut(i) else {
            return;
        };
        flow.syn_seen |= syn_only;
        if tcp && from_lo == flow.init_is_lo && flags & TcpFlags::ACK != 0 {
            flow.init_acked = true;
        }
        if flow.packets() == 0 {
            flow.first_ns = ts_ns;
        }
        flow.last_ns = flow.last_ns.max(ts_ns);
        flow.last_seen = flow.last_seen.max(ts_ns);
        let counters = if from_lo == flow.init_is_lo {
            &mut flow.forward
        } else {
            &mut flow.reverse
        };
        counters.packets += 1;
        counters.bytes += u64::from(meta.ip_len);
        if tcp {
            let f = &mut flow.flags;
            let has = |bit: u8| u32::from(flags & bit != 0);
            f.syn += has(TcpFlags::SYN);
            f.syn_no_ack += u32::from(syn_only);
            f.syn_ack +=
                u32::from(flags & (TcpFlags::SYN | TcpFlags::ACK) == TcpFlags::SYN | TcpFlags::ACK);
            f.fin += has(TcpFlags::FIN);
            f.rst += has(TcpFlags::RST);
            if flags & TcpFlags::FIN != 0 {
                if from_lo {
                    flow.fin_lo = true;
                } else {
                    flow.fin_hi = true;
                }
            }
            let closed = flags & TcpFlags::RST != 0 || (flow.fin_lo && flow.fin_hi);
            if closed && flow.ended_at.is_none() {
                flow.ended_at = Some(ts_ns);
                self.flows.push_back(BY_END, i);
            }
        }
        self.flows.push_back(BY_LAST_SEEN, i);
    }

    /// Removes flow `i`, emitting its record unless it has no packets.
    fn finish(&mut self, i: u32, end: FlowEnd, out: &mut Vec<FlowRecord>) {
        if let Some(flow) = self.flows.remove(i) {
            self.map.remove(&flow.key);
            if flow.packets() > 0 {
                out.push(record(&self.interface, &flow, end));
            }
        }
    }
}

fn record(interface: &str, flow: &Flow, end: FlowEnd) -> FlowRecord {
    let (src, dst) = if flow.init_is_lo {
        (flow.key.lo, flow.key.hi)
    } else {
        (flow.key.hi, flow.key.lo)
    };
    FlowRecord {
        interface: interface.to_owned(),
        transport: transport_of(flow.key.protocol),
        src: src.0,
        src_port: src.1,
        dst: dst.0,
        dst_port: dst.1,
        first_ns: flow.first_ns,
        last_ns: flow.last_ns,
        forward: flow.forward,
        reverse: flow.reverse,
        // Only TCP packets add to these.
        tcp_flags: flow.flags,
        end,
    }
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
