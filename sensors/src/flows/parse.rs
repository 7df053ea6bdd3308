//! Ethernet frame → [`PacketMeta`]: the flow-relevant fields of one packet.
//!
//! Pure and allocation-free: every header is read with bounds-checked slice
//! accesses, so a truncated or malformed frame yields an error, never a panic.
//! Understood: Ethernet II with up to two 802.1Q/802.1ad tags, IPv4, IPv6 with
//! its common extension headers, TCP, UDP, ICMP and ICMPv6. Anything else that
//! is not IP is [`ParseError::NotIp`] (ARP, LLDP, ...), which is not an error.
//!
//! Conventions, as NetFlow exporters use them:
//! - bytes are counted at the IP layer (header + payload, as the IP header
//!   states it), so Ethernet padding and a capture truncated by the read
//!   buffer do not change the count;
//! - a non-first fragment has no transport header: its ports are 0;
//! - ICMP echo request and reply carry the echo identifier as both ports, so a
//!   ping and its answers form one bidirectional flow; other ICMP messages have
//!   source port 0 and destination port `type * 256 + code`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use pnet_packet::ethernet::EtherTypes;
use pnet_packet::ip::IpNextHeaderProtocols as Proto;
use pnet_packet::tcp::TcpFlags;

use crate::Transport;

const ETHERNET_HEADER: usize = 14;
const VLAN_TAG: usize = 4;
/// 802.1ad (QinQ) outer tag.
const ETHERTYPE_QINQ: u16 = 0x88a8;
/// Tags followed before giving up (QinQ has two).
const MAX_VLAN_TAGS: usize = 2;
const IPV6_HEADER: usize = 40;
/// Extension headers walked before the frame counts as malformed.
const MAX_IPV6_EXTENSIONS: usize = 8;
const ICMP_ECHO_REPLY: u8 = 0;
const ICMP_ECHO_REQUEST: u8 = 8;
const ICMPV6_ECHO_REQUEST: u8 = 128;
const ICMPV6_ECHO_REPLY: u8 = 129;

/// The fields of one IP packet that flow accounting needs. Direction-neutral:
/// `src` is who sent this packet, not who started the flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketMeta {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IANA protocol number of the transport (after IPv6 extension headers).
    pub protocol: u8,
    pub src_port: u16,
    pub dst_port: u16,
    /// Bytes at the IP layer: header and payload.
    pub ip_len: u32,
    /// TCP flag byte (CWR..FIN); 0 for other transports.
    pub tcp_flags: u8,
    /// VLAN id of the outermost 802.1Q tag, if any.
    pub vlan: Option<u16>,
}

impl PacketMeta {
    /// The transport as the event schema names it.
    pub fn transport(&self) -> Transport {
        transport_of(self.protocol)
    }
}

/// The event-schema transport of an IANA protocol number.
pub fn transport_of(protocol: u8) -> Transport {
    match protocol {
        6 => Transport::Tcp,
        17 => Transport::Udp,
        1 => Transport::Icmp,
        58 => Transport::Icmpv6,
        other => Transport::Other(other),
    }
}

/// Why a frame produced no [`PacketMeta`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// A well-formed frame that does not carry IP (ARP, LLDP, ...).
    NotIp,
    /// The frame ends inside a header it announces.
    Truncated,
    /// A header field is impossible (wrong IP version, header length too small).
    Malformed,
}

impl ParseError {
    /// Whether the caller should count this frame as an error.
    pub fn is_error(self) -> bool {
        !matches!(self, ParseError::NotIp)
    }
}

/// Parses an Ethernet frame as captured on an AF_PACKET socket.
pub fn parse(frame: &[u8]) -> Result<PacketMeta, ParseError> {
    let mut ethertype = be16(frame, 12)?;
    let mut offset = ETHERNET_HEADER;
    let mut vlan = None;
    let mut tags = 0;
    while ethertype == EtherTypes::Vlan.0 || ethertype == ETHERTYPE_QINQ {
        if tags == MAX_VLAN_TAGS {
            return Err(ParseError::Malformed);
        }
        let tci = be16(frame, offset)?;
        vlan.get_or_insert(tci & 0x0fff);
        ethertype = be16(frame, offset + 2)?;
        offset += VLAN_TAG;
        tags += 1;
    }
    let l3 = frame.get(offset..).ok_or(ParseError::Truncated)?;
    let mut meta = if ethertype == EtherTypes::Ipv4.0 {
        parse_ipv4(l3)?
    } else if ethertype == EtherTypes::Ipv6.0 {
        parse_ipv6(l3)?
    } else {
        return Err(ParseError::NotIp);
    };
    meta.vlan = vlan;
    Ok(meta)
}

fn parse_ipv4(ip: &[u8]) -> Result<PacketMeta, ParseError> {
    let first = byte(ip, 0)?;
    if first >> 4 != 4 {
        return Err(ParseError::Malformed);
    }
    let header_len = usize::from(first & 0x0f) * 4;
    if header_len < 20 {
        return Err(ParseError::Malformed);
    }
    let header = ip.get(..header_len).ok_or(ParseError::Truncated)?;
    let total_len = usize::from(be16(header, 2)?);
    // 0 is what segmentation offload leaves in a super-packet: use the capture.
    let ip_len = match total_len {
        0 => ip.len(),
        n if n < header_len => return Err(ParseError::Malformed),
        n => n,
    };
    let fragment_offset = be16(header, 6)? & 0x1fff;
    let protocol = byte(header, 9)?;
    let src = IpAddr::V4(Ipv4Addr::from(array4(header, 12)?));
    let dst = IpAddr::V4(Ipv4Addr::from(array4(header, 16)?));
    let mut meta = PacketMeta {
        src,
        dst,
        protocol,
        src_port: 0,
        dst_port: 0,
        ip_len: u32::try_from(ip_len).unwrap_or(u32::MAX),
        tcp_flags: 0,
        vlan: None,
    };
    if fragment_offset == 0 {
        // The capture may hold less than the packet; headers are all we need.
        let end = ip_len.min(ip.len());
        let l4 = ip.get(header_len..end).ok_or(ParseError::Truncated)?;
        parse_l4(&mut meta, l4)?;
    }
    Ok(meta)
}

fn parse_ipv6(ip: &[u8]) -> Result<PacketMeta, ParseError> {
    let header = ip.get(..IPV6_HEADER).ok_or(ParseError::Truncated)?;
    if byte(header, 0)? >> 4 != 6 {
        return Err(ParseError::Malformed);
    }
    let payload_len = usize::from(be16(header, 4)?);
    // 0 is a jumbogram or a segmentation-offload super-packet.
    let ip_len = match payload_len {
        0 => ip.len(),
        n => IPV6_HEADER + n,
    };
    let src = IpAddr::V6(Ipv6Addr::from(array16(header, 8)?));
    let dst = IpAddr::V6(Ipv6Addr::from(array16(header, 24)?));
    let end = ip_len.min(ip.len());
    let mut next = byte(header, 6)?;
    let mut offset = IPV6_HEADER;
    let mut first_fragment = true;
    let mut walked = 0;
    loop {
        let ext = ip.get(offset..end).ok_or(ParseError::Truncated)?;
        let len = match next {
            0 | 43 | 60 => (usize::from(byte(ext, 1)?) + 1) * 8,
            // Authentication header counts in 4-byte words, minus 2.
            51 => (usize::from(byte(ext, 1)?) + 2) * 4,
            44 => {
                first_fragment = be16(ext, 2)? >> 3 == 0;
                8
            }
            _ => break,
        };
        walked += 1;
        if walked > MAX_IPV6_EXTENSIONS {
            return Err(ParseError::Malformed);
        }
        if ext.len() < len {
            return Err(ParseError::Truncated);
        }
        next = byte(ext, 0)?;
        offset += len;
    }
    let mut meta = PacketMeta {
        src,
        dst,
        protocol: next,
        src_port: 0,
        dst_port: 0,
        ip_len: u32::try_from(ip_len).unwrap_or(u32::MAX),
        tcp_flags: 0,
        vlan: None,
    };
    if first_fragment {
        let l4 = ip.get(offset..end).ok_or(ParseError::Truncated)?;
        parse_l4(&mut meta, l4)?;
    }
    Ok(meta)
}

/// Fills ports and flags from the transport header; other protocols keep 0.
fn parse_l4(meta: &mut PacketMeta, l4: &[u8]) -> Result<(), ParseError> {
    match meta.protocol {
        p if p == Proto::Tcp.0 => {
            if l4.len() < 20 {
                return Err(ParseError::Truncated);
            }
            if byte(l4, 12)? >> 4 < 5 {
                return Err(ParseError::Malformed);
            }
            meta.src_port = be16(l4, 0)?;
            meta.dst_port = be16(l4, 2)?;
            meta.tcp_flags = byte(l4, 13)?;
        }
        p if p == Proto::Udp.0 => {
            if l4.len() < 8 {
                return Err(ParseError::Truncated);
            }
            meta.src_port = be16(l4, 0)?;
            meta.dst_port = be16(l4, 2)?;
        }
        p if p == Proto::Icmp.0 || p == Proto::Icmpv6.0 => {
            // Type, code, checksum; echo adds identifier and sequence.
            if l4.len() < 4 {
                return Err(ParseError::Truncated);
            }
            let (kind, code) = (byte(l4, 0)?, byte(l4, 1)?);
            let echo = if p == Proto::Icmp.0 {
                kind == ICMP_ECHO_REQUEST || kind == ICMP_ECHO_REPLY
            } else {
                kind == ICMPV6_ECHO_REQUEST || kind == ICMPV6_ECHO_REPLY
            };
            if echo {
                if l4.len() < 8 {
                    return Err(ParseError::Truncated);
                }
                let id = be16(l4, 4)?;
                meta.src_port = id;
                meta.dst_port = id;
            } else {
                meta.dst_port = u16::from(kind) << 8 | u16::from(code);
            }
        }
        _ => {}
    }
    Ok(())
}

/// SYN without ACK: a connection attempt.
pub fn is_syn_only(flags: u8) -> bool {
    flags & (TcpFlags::SYN | TcpFlags::ACK) == TcpFlags::SYN
}

fn byte(buf: &[u8], at: usize) -> Result<u8, ParseError> {
    buf.get(at).copied().ok_or(ParseError::Truncated)
}

fn be16(buf: &[u8], at: usize) -> Result<u16, ParseError> {
    match buf.get(at..at + 2) {
        Some(&[a, b]) => Ok(u16::from_be_bytes([a, b])),
        _ => Err(ParseError::Truncated),
    }
}

fn array4(buf: &[u8], at: usize) -> Result<[u8; 4], ParseError> {
    buf.get(at..at + 4)
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .ok_or(ParseError::Truncated)
}

fn array16(buf: &[u8], at: usize) -> Result<[u8; 16], ParseError> {
    buf.get(at..at + 16)
        .and_then(|s| <[u8; 16]>::try_from(s).ok())
        .ok_or(ParseError::Truncated)
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
