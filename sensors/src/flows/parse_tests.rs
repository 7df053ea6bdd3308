//! Parser tests on frames built by `pnet_packet` (see `synth`) and by hand.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::*;
use crate::flows::synth::{self, TcpFlags};

const A4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const A6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
const B6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);

fn sa(ip: impl Into<IpAddr>, port: u16) -> SocketAddr {
    SocketAddr::new(ip.into(), port)
}

fn tcp4(flags: u8, payload: usize) -> Vec<u8> {
    synth::tcp(sa(A4, 40_000), sa(B4, 443), flags, payload)
}

#[test]
fn tcp_handshake_and_teardown_flags() {
    for flags in [
        TcpFlags::SYN,
        TcpFlags::SYN | TcpFlags::ACK,
        TcpFlags::ACK,
        TcpFlags::FIN | TcpFlags::ACK,
        TcpFlags::RST,
        TcpFlags::RST | TcpFlags::ACK,
    ] {
        let m = parse(&tcp4(flags, 0)).expect("valid tcp");
        assert_eq!(m.src, IpAddr::V4(A4));
        assert_eq!(m.dst, IpAddr::V4(B4));
        assert_eq!((m.src_port, m.dst_port), (40_000, 443));
        assert_eq!(m.protocol, 6);
        assert_eq!(m.transport(), Transport::Tcp);
        assert_eq!(m.tcp_flags, flags);
        assert_eq!(m.ip_len, 40);
        assert_eq!(m.vlan, None);
    }
    assert!(is_syn_only(TcpFlags::SYN));
    assert!(is_syn_only(TcpFlags::SYN | TcpFlags::ECE | TcpFlags::CWR));
    assert!(!is_syn_only(TcpFlags::SYN | TcpFlags::ACK));
    assert!(!is_syn_only(TcpFlags::ACK));
}

#[test]
fn tcp_data_bytes_are_ip_bytes() {
    let m = parse(&tcp4(TcpFlags::ACK | TcpFlags::PSH, 1000)).expect("valid");
    assert_eq!(m.ip_len, 1040);
}

#[test]
fn capture_cut_after_the_headers_keeps_the_ip_length() {
    let frame = tcp4(TcpFlags::ACK, 3000);
    let m = parse(&frame[..100]).expect("headers are complete");
    assert_eq!(m.ip_len, 3040);
    assert_eq!(m.dst_port, 443);
}

#[test]
fn udp_and_ethernet_padding() {
    let m = parse(&synth::udp(sa(A4, 5353), sa(B4, 53), 0)).expect("valid udp");
    assert_eq!((m.protocol, m.src_port, m.dst_port), (17, 5353, 53));
    assert_eq!(
        m.ip_len, 28,
        "the 18 padding bytes of a 60-byte frame do not count"
    );
    let m = parse(&synth::udp(sa(A4, 5353), sa(B4, 53), 512)).expect("valid udp");
    assert_eq!(m.ip_len, 540);
}

#[test]
fn icmp_echo_uses_the_identifier_both_ways() {
    let req = parse(&synth::echo(A4.into(), B4.into(), false, 0x1234)).expect("request");
    let rep = parse(&synth::echo(B4.into(), A4.into(), true, 0x1234)).expect("reply");
    assert_eq!(req.transport(), Transport::Icmp);
    assert_eq!((req.src_port, req.dst_port), (0x1234, 0x1234));
    assert_eq!((rep.src_port, rep.dst_port), (0x1234, 0x1234));
    let unreachable = parse(&synth::icmp(B4, A4, 3, 3)).expect("unreachable");
    assert_eq!((unreachable.src_port, unreachable.dst_port), (0, 0x0303));
}

#[test]
fn ipv6_tcp_and_icmpv6() {
    let m = parse(&synth::tcp(sa(A6, 50_000), sa(B6, 22), TcpFlags::SYN, 10)).expect("v6");
    assert_eq!((m.src, m.dst), (IpAddr::V6(A6), IpAddr::V6(B6)));
    assert_eq!((m.protocol, m.src_port, m.dst_port), (6, 50_000, 22));
    assert_eq!(m.tcp_flags, TcpFlags::SYN);
    assert_eq!(m.ip_len, 40 + 20 + 10);
    let e = parse(&synth::echo(A6.into(), B6.into(), false, 7)).expect("echo6");
    assert_eq!(e.transport(), Transport::Icmpv6);
    assert_eq!((e.src_port, e.dst_port), (7, 7));
}

#[test]
fn ipv6_extension_headers_are_walked() {
    let plain = synth::udp(sa(A6, 1000), sa(B6, 2000), 4);
    // Insert an 8-byte hop-by-hop header (next: UDP) after the IPv6 header.
    let mut f = plain[..54].to_vec();
    f.extend_from_slice(&[17, 0, 5, 2, 0, 0, 0, 0]);
    f.extend_from_slice(&plain[54..]);
    f[14 + 6] = 0;
    let len = u16::from_be_bytes([f[18], f[19]]) + 8;
    f[18..20].copy_from_slice(&len.to_be_bytes());
    let m = parse(&f).expect("hop-by-hop then udp");
    assert_eq!((m.protocol, m.src_port, m.dst_port), (17, 1000, 2000));
    assert_eq!(m.ip_len, 40 + 8 + 8 + 4);
    // The same as a non-first fragment: no ports.
    f[14 + 6] = 44;
    f[54 + 2..54 + 4].copy_from_slice(&(185u16 << 3).to_be_bytes());
    let m = parse(&f).expect("fragment");
    assert_eq!((m.protocol, m.src_port, m.dst_port), (17, 0, 0));
}

#[test]
fn ipv4_non_first_fragment_has_no_ports() {
    let mut f = synth::udp(sa(A4, 1), sa(B4, 2), 100);
    f[14 + 6..14 + 8].copy_from_slice(&100u16.to_be_bytes());
    let m = parse(&f).expect("fragment");
    assert_eq!(
        (m.protocol, m.src_port, m.dst_port, m.ip_len),
        (17, 0, 0, 128)
    );
}

#[test]
fn vlan_and_qinq_tags() {
    let tagged = synth::with_vlan(&tcp4(TcpFlags::SYN, 0), 42);
    let m = parse(&tagged).expect("802.1Q");
    assert_eq!(m.vlan, Some(42));
    assert_eq!(
        (m.src_port, m.dst_port, m.tcp_flags),
        (40_000, 443, TcpFlags::SYN)
    );
    let mut qinq = synth::with_vlan(&tagged, 7);
    qinq[12..14].copy_from_slice(&0x88a8u16.to_be_bytes());
    let m = parse(&qinq).expect("QinQ");
    assert_eq!((m.vlan, m.dst_port), (Some(7), 443));
    let triple = synth::with_vlan(&qinq, 9);
    assert_eq!(parse(&triple), Err(ParseError::Malformed));
}

#[test]
fn non_ip_is_not_an_error() {
    let mut arp = vec![0u8; 60];
    arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    assert_eq!(parse(&arp), Err(ParseError::NotIp));
    assert!(!ParseError::NotIp.is_error());
}

#[test]
fn every_truncation_of_the_headers_is_an_error() {
    // Each frame with the length of its headers (Ethernet to transport).
    for (frame, headers) in [
        (tcp4(TcpFlags::SYN, 0), 14 + 20 + 20),
        (synth::udp(sa(A6, 1), sa(B6, 2), 0), 14 + 40 + 8),
        (synth::echo(A4.into(), B4.into(), false, 1), 14 + 20 + 8),
        (synth::with_vlan(&tcp4(TcpFlags::ACK, 0), 3), 18 + 20 + 20),
    ] {
        for cut in 0..headers {
            let r = parse(&frame[..cut]);
            assert!(r.is_err_and(ParseError::is_error), "cut at {cut}: {r:?}");
        }
        assert!(parse(&frame[..headers]).is_ok());
    }
}

#[test]
fn impossible_headers_are_malformed() {
    let good = tcp4(TcpFlags::SYN, 0);
    let mut f = good.clone();
    f[14] = 0x44; // IHL 4
    assert_eq!(parse(&f), Err(ParseError::Malformed));
    let mut f = good.clone();
    f[14] = 0x65; // version 6 under an IPv4 ethertype
    assert_eq!(parse(&f), Err(ParseError::Malformed));
    let mut f = good.clone();
    f[16..18].copy_from_slice(&10u16.to_be_bytes()); // total length < header
    assert_eq!(parse(&f), Err(ParseError::Malformed));
    let mut f = good;
    f[14 + 20 + 12] = 0x40; // TCP data offset 4
    assert_eq!(parse(&f), Err(ParseError::Malformed));
}

#[test]
fn garbage_never_panics() {
    // Deterministic pseudo-random frames, some with an IP ethertype.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut ok = 0;
    for _ in 0..20_000 {
        let len = (next() % 120) as usize;
        let mut f: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if len > 15 {
            let et: u16 = [0x0800, 0x86dd, 0x8100][(next() % 3) as usize];
            f[12..14].copy_from_slice(&et.to_be_bytes());
            f[14] = if et == 0x86dd { 0x60 } else { 0x45 };
        }
        ok += usize::from(parse(&f).is_ok());
    }
    assert!(ok > 0, "some random IP frames should parse");
}
