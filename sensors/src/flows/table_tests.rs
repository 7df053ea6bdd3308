//! Flow table tests: direction, initiator, expiry, eviction; time is given.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::*;
use crate::Transport;
use crate::flows::dedup::DuplicateFilter;
use crate::flows::parse::parse;
use crate::flows::synth;

const S: u64 = 1_000_000_000;
const MS: u64 = 1_000_000;
const SYN: u8 = TcpFlags::SYN;
const ACK: u8 = TcpFlags::ACK;
const FIN: u8 = TcpFlags::FIN;
const RST: u8 = TcpFlags::RST;

/// The client sorts after the server, so "lo" is the responder.
const CLIENT: (Ipv4Addr, u16) = (Ipv4Addr::new(10, 0, 0, 9), 40_000);
const SERVER: (Ipv4Addr, u16) = (Ipv4Addr::new(10, 0, 0, 1), 443);

fn cfg(max_flows: usize) -> TableConfig {
    TableConfig {
        idle_timeout: Duration::from_secs(10),
        active_timeout: Duration::from_secs(60),
        end_grace: Duration::from_secs(1),
        half_open: Duration::from_millis(500),
        max_flows,
    }
}

fn meta(
    from: (Ipv4Addr, u16),
    to: (Ipv4Addr, u16),
    protocol: u8,
    flags: u8,
    len: u32,
) -> PacketMeta {
    PacketMeta {
        src: from.0.into(),
        dst: to.0.into(),
        protocol,
        src_port: from.1,
        dst_port: to.1,
        ip_len: len,
        tcp_flags: flags,
        vlan: None,
    }
}

fn c2s(flags: u8, len: u32) -> PacketMeta {
    meta(CLIENT, SERVER, 6, flags, len)
}

fn s2c(flags: u8, len: u32) -> PacketMeta {
    meta(SERVER, CLIENT, 6, flags, len)
}

fn udp(port: u16) -> PacketMeta {
    meta(CLIENT, (SERVER.0, port), 17, 0, 100)
}

/// Feeds packets one millisecond apart from `t0`; returns the last time.
fn feed(t: &mut FlowTable, t0: u64, packets: &[PacketMeta], out: &mut Vec<FlowRecord>) -> u64 {
    let mut ts = t0;
    for p in packets {
        t.update(p, ts, out);
        ts += MS;
    }
    ts - MS
}

fn assert_client_to_server(r: &FlowRecord) {
    assert_eq!((r.src, r.src_port), (IpAddr::V4(CLIENT.0), CLIENT.1));
    assert_eq!((r.dst, r.dst_port), (IpAddr::V4(SERVER.0), SERVER.1));
}

#[test]
fn tcp_connection_has_direction_flags_and_ends_after_grace() {
    let mut t = FlowTable::new("eth0", &cfg(100));
    let mut out = Vec::new();
    let packets = [
        c2s(SYN, 60),
        s2c(SYN | ACK, 60),
        c2s(ACK, 52),
        c2s(ACK, 152),
        s2c(ACK, 552),
        c2s(FIN | ACK, 52),
        s2c(FIN | ACK, 52),
        c2s(ACK, 52),
    ];
    let last = feed(&mut t, S, &packets, &mut out);
    assert!(out.is_empty());
    t.expire(last + S / 2, &mut out);
    assert!(out.is_empty(), "still within the grace");
    t.expire(last + S, &mut out);
    let [r] = out.as_slice() else {
        panic!("one record, got {out:?}")
    };
    assert_eq!(r.interface, "eth0");
    assert_eq!(r.transport, Transport::Tcp);
    assert_client_to_server(r);
    assert_eq!((r.forward.packets, r.forward.bytes), (5, 368));
    assert_eq!((r.reverse.packets, r.reverse.bytes), (3, 664));
    let f = r.tcp_flags;
    assert_eq!(
        (f.syn, f.syn_no_ack, f.syn_ack, f.fin, f.rst),
        (2, 1, 1, 2, 0)
    );
    assert_eq!((r.first_ns, r.last_ns), (S, last));
    assert_eq!(r.end, FlowEnd::End);
    assert!(t.is_empty());
}

#[test]
fn initiator_is_first_sender_whatever_the_address_order() {
    let mut t = FlowTable::new("eth0", &cfg(100));
    let mut out = Vec::new();
    let a = (Ipv4Addr::new(10, 0, 0, 1), 5000);
    let b = (Ipv4Addr::new(10, 0, 0, 2), 53);
    feed(
        &mut t,
        0,
        &[meta(a, b, 17, 0, 50), meta(b, a, 17, 0, 90)],
        &mut out,
    );
    feed(&mut t, S, &[meta(b, (a.0, 6000), 17, 0, 70)], &mut out);
    t.flush(&mut out);
    assert_eq!(out.len(), 2);
    for r in &out {
        assert_eq!(r.end, FlowEnd::Forced);
        if r.dst_port == 53 {
            assert_eq!(
                (r.src, r.forward.bytes, r.reverse.bytes),
                (a.0.into(), 50, 90)
            );
        } else {
            assert_eq!((r.src, r.src_port, r.dst_port), (b.0.into(), 53, 6000));
            assert_eq!((r.forward.packets, r.reverse.packets), (1, 0));
        }
    }
}

#[test]
fn syn_ack_first_names_its_receiver_and_a_late_syn_takes_over() {
    let mut t = FlowTable::new("eth0", &cfg(100));
    let mut out = Vec::new();
    feed(&mut t, 0, &[s2c(SYN | ACK, 60), c2s(ACK, 52)], &mut out);
    t.flush(&mut out);
    assert_client_to_server(&out[0]);
    assert_eq!((out[0].forward.packets, out[0].reverse.packets), (1, 1));

    // Mid-stream start: the server's ACK is seen first, then the client's SYN.
    out.clear();
    feed(
        &mut t,
        S,
        &[s2c(ACK, 52), c2s(SYN, 60), s2c(ACK, 52)],
        &mut out,
    );
    t.flush(&mut out);
    assert_client_to_server(&out[0]);
    assert_eq!((out[0].forward.packets, out[0].reverse.packets), (1, 2));
    assert_eq!(out[0].tcp_flags.syn_no_ack, 1);
}

#[test]
fn rst_ends_a_connection_attempt() {
    let mut t = FlowTable::new("eth0", &cfg(100));
    let mut out = Vec::new();
    let last = feed(&mut t, 0, &[c2s(SYN, 60), s2c(RST | ACK, 40)], &mut out);
    t.expire(last + S, &mut out);
    let [r] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert_client_to_server(r);
    assert_eq!((r.tcp_flags.syn_no_ack, r.tcp_flags.rst), (1, 1));
    assert_eq!(r.end, FlowEnd::End);
}

#[test]
fn new_syn_on_ended_ports_starts_a_new_flow_at_once() {
    let mut t = FlowTable::new("eth0", &cfg(100));
    let mut out = Vec::new();
    let closed = [
        c2s(SYN, 60),
        s2c(SYN | ACK, 60),
        c2s(FIN | ACK, 52),
        s2c(FIN | ACK, 52),
    ];
    let last = feed(&mut t, 0, &closed, &mut out);
    t.update(&c2s(SYN, 60), last + 10 * MS, &mut out);
    assert_eq!(out.len(), 1, "old connection reported");
    assert_eq!((out[0].end, out[0].forward.packets), (FlowEnd::End, 2));
    assert_eq!(t.len(), 1);
    t.flush(&mut out);
    assert_eq!(
        (out[1].forward.packets, out[1].tcp_flags.syn_no_ack),
        (1, 1)
    );
}

#[test]
fn idle_flows_expire_after_the_idle_timeout() {
    let mut t = FlowTable::new("eth0", &cfg(100));
    let mut out = Vec::new();
    t.update(&udp(53), 5 * S, &mut out);
    t.update(&udp(54), 8 * S, &mut out);
    t.expire(15 * S - 1, &mut out);
    assert!(out.is_empty());
    t.expire(15 * S, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].dst_port, out[0].end), (53, FlowEnd::Idle));
    assert_eq!(t.len(), 1);
}

#[test]
fn long_flows_are_reported_every_active_timeout_and_continue() {
    let mut t = FlowTable::new("eth0", &cfg(100));
    let mut out = Vec::new();
    for sec in 0..=150u64 {
        t.update(&udp(53), sec * S, &mut out);
        t.expire(sec * S, &mut out);
    }
    t.expire(160 * S, &mut out);
    let ends: Vec<_> = out.iter().map(|r| (r.end, r.forward.packets)).collect();
    assert_eq!(
        ends,
        [
            (FlowEnd::Active, 61),
            (FlowEnd::Active, 60),
            (FlowEnd::Idle, 30)
        ]
    );
    assert!(out.windows(2).all(|w| w[0].last_ns < w[1].first_ns));
    assert!(out.iter().all(|r| r.src == IpAddr::V4(CLIENT.0)));
}

#[test]
fn a_flow_silent_since_its_active_record_emits_nothing_more() {
    let mut t = FlowTable::new("eth0", &cfg(100));
    let mut out = Vec::new();
    for sec in (0..60).step_by(9) {
        t.update(&udp(53), sec * S, &mut out);
        t.expire(sec * S, &mut out);
    }
    t.expire(60 * S, &mut out);
    assert_eq!(out.len(), 1, "active record");
    t.expire(70 * S, &mut out);
    assert_eq!(out.len(), 1, "no empty idle record");
    assert!(t.is_empty());
}

#[test]
fn a_full_table_evicts_the_least_recently_seen_flow() {
    let mut t = FlowTable::new("eth0", &cfg(3));
    let mut out = Vec::new();
    for (port, ts) in [(1, 1), (2, 2), (3, 3), (1, 4)] {
        t.update(&udp(port), ts * S, &mut out);
    }
    assert!(out.is_empty());
    t.update(&udp(4), 5 * S, &mut out);
    assert_eq!(t.len(), 3);
    assert_eq!(t.evictions(), 1);
    assert_eq!((out[0].dst_port, out[0].end), (2, FlowEnd::Forced));
    t.flush(&mut out);
    let mut rest: Vec<_> = out[1..].iter().map(|r| r.dst_port).collect();
    rest.sort_unstable();
    assert_eq!(rest, [1, 3, 4]);
    assert!(out.iter().all(|r| r.end == FlowEnd::Forced));
}

#[test]
fn icmp_echo_and_ipv6_pair_up() {
    let mut t = FlowTable::new("eth0", &cfg(100));
    let mut out = Vec::new();
    let (a6, b6) = (
        Ipv6Addr::LOCALHOST,
        Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2),
    );
    let frames = [
        synth::echo(CLIENT.0.into(), SERVER.0.into(), false, 9),
        synth::echo(SERVER.0.into(), CLIENT.0.into(), true, 9),
        synth::tcp(
            SocketAddr::new(b6.into(), 2222),
            SocketAddr::new(a6.into(), 22),
            SYN,
            0,
        ),
        synth::tcp(
            SocketAddr::new(a6.into(), 22),
            SocketAddr::new(b6.into(), 2222),
            SYN | ACK,
            0,
        ),
    ];
    for (i, f) in frames.iter().enumerate() {
        t.update(&parse(f).expect("valid"), i as u64, &mut out);
    }
    t.flush(&mut out);
    assert_eq!(out.len(), 2);
    for r in &out {
        assert_eq!((r.forward.packets, r.reverse.packets), (1, 1), "{r:?}");
        match r.transport {
            Transport::Icmp => assert_eq!(r.src, IpAddr::V4(CLIENT.0)),
            Transport::Tcp => assert_eq!((r.src, r.dst_port), (b6.into(), 22)),
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn loopback_copies_count_once() {
    let mut t = FlowTable::new("lo", &cfg(100));
    let mut dedup = DuplicateFilter::new(MS);
    let mut out = Vec::new();
    let (c, s) = (
        SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 50_000),
        SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 8080),
    );
    let frames = [
        synth::tcp(c, s, SYN, 0),
        synth::tcp(s, c, SYN | ACK, 0),
        synth::tcp(c, s, ACK, 0),
        synth::tcp(c, s, ACK, 100),
    ];
    let mut ts = S;
    for f in &frames {
        // Sent copy, then received copy a few microseconds later.
        for _ in 0..2 {
            if !dedup.is_duplicate(f, ts)
                && let Ok(m) = parse(f)
            {
                t.update(&m, ts, &mut out);
            }
            ts += 5_000;
        }
    }
    t.flush(&mut out);
    let [r] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert_eq!((r.forward.packets, r.reverse.packets), (3, 1));
    assert_eq!((r.tcp_flags.syn_no_ack, r.tcp_flags.syn_ack), (1, 1));
    assert_eq!(r.forward.bytes, 40 * 3 + 100);
    assert_eq!(dedup.dropped(), 4);
}

#[test]
fn unacknowledged_syns_are_reported_half_open_once_and_early() {
    let mut t = FlowTable::new("eth0", &cfg(100));
    let mut out = Vec::new();
    // A spoofed SYN: the server answers, the "client" never does.
    feed(&mut t, S, &[c2s(SYN, 60), s2c(SYN | ACK, 60)], &mut out);
    t.expire(S + 499 * MS, &mut out);
    assert!(out.is_empty(), "not yet");
    t.expire(S + 500 * MS, &mut out);
    let [r] = out.as_slice() else {
        panic!("one half-open record, got {out:?}")
    };
    assert_client_to_server(r);
    assert_eq!(r.end, FlowEnd::HalfOpen);
    assert_eq!((r.forward.packets, r.reverse.packets), (1, 1));
    assert_eq!((r.tcp_flags.syn_no_ack, r.tcp_flags.syn_ack), (1, 1));
    // The server's retransmission goes in the flow's next record, once.
    out.clear();
    t.update(&s2c(SYN | ACK, 60), 2 * S, &mut out);
    t.expire(5 * S, &mut out);
    assert!(out.is_empty(), "reported once");
    t.expire(12 * S, &mut out);
    let [r] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert_eq!(
        (r.end, r.forward.packets, r.reverse.packets),
        (FlowEnd::Idle, 0, 1)
    );
    assert_eq!(r.tcp_flags.syn_no_ack, 0, "the SYN is counted once");
}

#[test]
fn handshakes_and_refusals_are_not_half_open() {
    let mut t = FlowTable::new("eth0", &cfg(100));
    let mut out = Vec::new();
    feed(
        &mut t,
        0,
        &[c2s(SYN, 60), s2c(SYN | ACK, 60), c2s(ACK, 52)],
        &mut out,
    );
    t.expire(5 * S, &mut out);
    assert!(out.is_empty(), "an established connection waits: {out:?}");
    // A refused SYN is reported as ended at the half-open time, not after
    // the end grace.
    let mut t = FlowTable::new("eth0", &cfg(100));
    feed(&mut t, 0, &[c2s(SYN, 60), s2c(RST | ACK, 40)], &mut out);
    t.expire(500 * MS, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].end, FlowEnd::End);
    assert!(t.is_empty());
}

#[test]
fn a_spoofed_flood_is_reported_within_the_half_open_time() {
    let mut t = FlowTable::new("eth0", &cfg(65_536));
    let mut out = Vec::new();
    for n in 0..5_000u32 {
        let src = (Ipv4Addr::from(0x0b00_0000 + n), 1024 + (n % 60_000) as u16);
        t.update(
            &meta(src, SERVER, 6, SYN, 40),
            S + u64::from(n) * 10_000,
            &mut out,
        );
    }
    t.expire(S + 600 * MS, &mut out);
    assert_eq!(out.len(), 5_000);
    assert!(out.iter().all(|r| r.end == FlowEnd::HalfOpen));
    assert_eq!(t.len(), 5_000, "the flows stay until idle");
}
