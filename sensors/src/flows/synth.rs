//! Synthetic Ethernet frames, for the parser's tests and the benchmark.
//!
//! Frames are built with `pnet_packet`'s writers (an implementation other than
//! [`parse`](mod@super::parse)), with valid lengths and checksums, as a NIC would hand
//! them to an AF_PACKET socket. Mixing an IPv4 and an IPv6 endpoint builds an
//! IPv6 packet with the IPv4 side written as an IPv4-mapped address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use pnet_packet::MutablePacket;
use pnet_packet::ethernet::{EtherType, EtherTypes, MutableEthernetPacket};
use pnet_packet::icmp::{IcmpCode, IcmpType, MutableIcmpPacket};
use pnet_packet::icmpv6::{Icmpv6Code, Icmpv6Type, MutableIcmpv6Packet};
use pnet_packet::ip::{IpNextHeaderProtocol, IpNextHeaderProtocols as Proto};
use pnet_packet::ipv4::MutableIpv4Packet;
use pnet_packet::ipv6::MutableIpv6Packet;
use pnet_packet::tcp::MutableTcpPacket;
use pnet_packet::udp::MutableUdpPacket;
use pnet_packet::vlan::MutableVlanPacket;

pub use pnet_packet::tcp::TcpFlags;

const ETH: usize = 14;
/// Smallest Ethernet frame without FCS; shorter frames are padded with zeros.
const MIN_FRAME: usize = 60;

/// A TCP segment with `flags` (see [`TcpFlags`]) and `payload_len` zero bytes.
pub fn tcp(src: SocketAddr, dst: SocketAddr, flags: u8, payload_len: usize) -> Vec<u8> {
    let mut l4 = vec![0u8; 20 + payload_len];
    if let Some(mut tcp) = MutableTcpPacket::new(&mut l4) {
        tcp.set_source(src.port());
        tcp.set_destination(dst.port());
        tcp.set_sequence(0x1000);
        tcp.set_acknowledgement(if flags & TcpFlags::ACK != 0 {
            0x2000
        } else {
            0
        });
        tcp.set_data_offset(5);
        tcp.set_flags(flags);
        tcp.set_window(64_240);
    }
    ip_frame(src.ip(), dst.ip(), Proto::Tcp, l4)
}

/// A UDP datagram with `payload_len` zero bytes.
pub fn udp(src: SocketAddr, dst: SocketAddr, payload_len: usize) -> Vec<u8> {
    let mut l4 = vec![0u8; 8 + payload_len];
    if let Some(mut udp) = MutableUdpPacket::new(&mut l4) {
        udp.set_source(src.port());
        udp.set_destination(dst.port());
        udp.set_length(u16::try_from(8 + payload_len).unwrap_or(u16::MAX));
    }
    ip_frame(src.ip(), dst.ip(), Proto::Udp, l4)
}

/// An echo request (or reply) with identifier `id`: ICMP for IPv4
/// endpoints, ICMPv6 otherwise.
pub fn echo(src: IpAddr, dst: IpAddr, reply: bool, id: u16) -> Vec<u8> {
    let mut l4 = vec![0u8; 8 + 32];
    let v4 = src.is_ipv4() && dst.is_ipv4();
    if v4 {
        if let Some(mut icmp) = MutableIcmpPacket::new(&mut l4) {
            icmp.set_icmp_type(IcmpType(if reply { 0 } else { 8 }));
            icmp.set_icmp_code(IcmpCode(0));
        }
    } else if let Some(mut icmp) = MutableIcmpv6Packet::new(&mut l4) {
        icmp.set_icmpv6_type(Icmpv6Type(if reply { 129 } else { 128 }));
        icmp.set_icmpv6_code(Icmpv6Code(0));
    }
    if let Some(rest) = l4.get_mut(4..6) {
        rest.copy_from_slice(&id.to_be_bytes());
    }
    let proto = if v4 { Proto::Icmp } else { Proto::Icmpv6 };
    ip_frame(src, dst, proto, l4)
}

/// ICMP (v4) message of `kind` and `code` with no echo identifier.
pub fn icmp(src: Ipv4Addr, dst: Ipv4Addr, kind: u8, code: u8) -> Vec<u8> {
    let mut l4 = vec![0u8; 8 + 28];
    if let Some(mut icmp) = MutableIcmpPacket::new(&mut l4) {
        icmp.set_icmp_type(IcmpType(kind));
        icmp.set_icmp_code(IcmpCode(code));
    }
    ip_frame(IpAddr::V4(src), IpAddr::V4(dst), Proto::Icmp, l4)
}

/// The same frame with an 802.1Q tag of VLAN `vid` after the MAC addresses.
pub fn with_vlan(frame: &[u8], vid: u16) -> Vec<u8> {
    let (macs, rest) = frame.split_at(frame.len().min(12));
    let (ethertype, payload) = rest.split_at(rest.len().min(2));
    let mut out = Vec::with_capacity(frame.len() + 4);
    out.extend_from_slice(macs);
    out.extend_from_slice(&EtherTypes::Vlan.0.to_be_bytes());
    let mut tag = [0u8; 4];
    if let Some(mut vlan) = MutableVlanPacket::new(&mut tag) {
        vlan.set_vlan_identifier(vid & 0x0fff);
        let inner = match ethertype {
            &[a, b] => u16::from_be_bytes([a, b]),
            _ => 0,
        };
        vlan.set_ethertype(EtherType(inner));
    }
    out.extend_from_slice(&tag);
    out.extend_from_slice(payload);
    out
}

/// Wraps a transport header and payload in IP and Ethernet, with checksums.
fn ip_frame(src: IpAddr, dst: IpAddr, proto: IpNextHeaderProtocol, mut l4: Vec<u8>) -> Vec<u8> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            l4_checksum_v4(proto, &mut l4, &s, &d);
            let mut frame = vec![0u8; (ETH + 20 + l4.len()).max(MIN_FRAME)];
            ethernet(&mut frame, EtherTypes::Ipv4);
            if let Some(mut ip) = frame.get_mut(ETH..).and_then(MutableIpv4Packet::new) {
                ip.set_version(4);
                ip.set_header_length(5);
                ip.set_total_length(u16::try_from(20 + l4.len()).unwrap_or(u16::MAX));
                ip.set_ttl(64);
                ip.set_next_level_protocol(proto);
                ip.set_source(s);
                ip.set_destination(d);
                let sum = pnet_packet::ipv4::checksum(&ip.to_immutable());
                ip.set_checksum(sum);
                write_payload(ip.payload_mut(), &l4);
            }
            frame
        }
        _ => {
            let (s, d) = (v6(src), v6(dst));
            l4_checksum_v6(proto, &mut l4, &s, &d);
            let mut frame = vec![0u8; (ETH + 40 + l4.len()).max(MIN_FRAME)];
            ethernet(&mut frame, EtherTypes::Ipv6);
            if let Some(mut ip) = frame.get_mut(ETH..).and_then(MutableIpv6Packet::new) {
                ip.set_version(6);
                ip.set_payload_length(u16::try_from(l4.len()).unwrap_or(u16::MAX));
                ip.set_next_header(proto);
                ip.set_hop_limit(64);
                ip.set_source(s);
                ip.set_destination(d);
                write_payload(ip.payload_mut(), &l4);
            }
            frame
        }
    }
}

fn ethernet(frame: &mut [u8], ethertype: EtherType) {
    if let Some(mut eth) = MutableEthernetPacket::new(frame) {
        eth.set_destination([0x02, 0, 0, 0, 0, 0x02].into());
        eth.set_source([0x02, 0, 0, 0, 0, 0x01].into());
        eth.set_ethertype(ethertype);
    }
}

fn write_payload(dst: &mut [u8], src: &[u8]) {
    let n = dst.len().min(src.len());
    if let (Some(d), Some(s)) = (dst.get_mut(..n), src.get(..n)) {
        d.copy_from_slice(s);
    }
}

fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

fn l4_checksum_v4(proto: IpNextHeaderProtocol, l4: &mut [u8], s: &Ipv4Addr, d: &Ipv4Addr) {
    if proto == Proto::Tcp {
        if let Some(mut p) = MutableTcpPacket::new(l4) {
            let sum = pnet_packet::tcp::ipv4_checksum(&p.to_immutable(), s, d);
            p.set_checksum(sum);
        }
    } else if proto == Proto::Udp {
        if let Some(mut p) = MutableUdpPacket::new(l4) {
            let sum = pnet_packet::udp::ipv4_checksum(&p.to_immutable(), s, d);
            p.set_checksum(sum);
        }
    } else if proto == Proto::Icmp
        && let Some(mut p) = MutableIcmpPacket::new(l4)
    {
        let sum = pnet_packet::icmp::checksum(&p.to_immutable());
        p.set_checksum(sum);
    }
}

fn l4_checksum_v6(proto: IpNextHeaderProtocol, l4: &mut [u8], s: &Ipv6Addr, d: &Ipv6Addr) {
    if proto == Proto::Tcp {
        if let Some(mut p) = MutableTcpPacket::new(l4) {
            let sum = pnet_packet::tcp::ipv6_checksum(&p.to_immutable(), s, d);
            p.set_checksum(sum);
        }
    } else if proto == Proto::Udp {
        if let Some(mut p) = MutableUdpPacket::new(l4) {
            let sum = pnet_packet::udp::ipv6_checksum(&p.to_immutable(), s, d);
            p.set_checksum(sum);
        }
    } else if proto == Proto::Icmpv6
        && let Some(mut p) = MutableIcmpv6Packet::new(l4)
    {
        let sum = pnet_packet::icmpv6::checksum(&p.to_immutable(), s, d);
        p.set_checksum(sum);
    }
}
