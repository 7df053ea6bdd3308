//! Fast IOC lookup for live detection, built once from a list of live IOCs.
//!
//! IPs and hashes are hash-map lookups. CIDRs are kept in one hash map per
//! prefix length, keyed by network address: a lookup masks the address once
//! per distinct prefix length present (at most 33 for IPv4, 129 for IPv6),
//! longest prefix first, so 100k CIDRs cost no more than a handful. Domains
//! match exactly or by parent: an IOC `evil.example` matches `a.evil.example`,
//! found by looking up each suffix of the queried name.

use std::collections::HashMap;
use std::net::IpAddr;

use super::indicator::{mask_v4, mask_v6};
use super::intel::{Ioc, IocKind};

/// Lookup structure over a fixed set of IOCs.
#[derive(Debug, Clone, Default)]
pub struct IocMatcher {
    iocs: Vec<Ioc>,
    ips: HashMap<IpAddr, usize>,
    /// `(prefix length, network → IOC index)`, longest prefix first.
    v4: Vec<(u8, HashMap<u32, usize>)>,
    v6: Vec<(u8, HashMap<u128, usize>)>,
    domains: HashMap<String, usize>,
    hashes: HashMap<String, usize>,
}

impl IocMatcher {
    /// Indexes `iocs`; values are expected normalized (as `intel` stores
    /// them), anything unparsable is skipped.
    pub fn new(iocs: Vec<Ioc>) -> IocMatcher {
        let mut m = IocMatcher::default();
        let mut v4: HashMap<u8, HashMap<u32, usize>> = HashMap::new();
        let mut v6: HashMap<u8, HashMap<u128, usize>> = HashMap::new();
        for (i, ioc) in iocs.iter().enumerate() {
            match ioc.kind {
                IocKind::Ip => {
                    if let Ok(ip) = ioc.value.parse::<IpAddr>() {
                        m.ips.insert(ip.to_canonical(), i);
                    }
                }
                IocKind::Cidr => match parse_cidr(&ioc.value) {
                    Some((IpAddr::V4(net), bits)) => {
                        v4.entry(bits)
                            .or_default()
                            .insert(u32::from(net) & mask_v4(bits), i);
                    }
                    Some((IpAddr::V6(net), bits)) => {
                        v6.entry(bits)
                            .or_default()
                            .insert(u128::from(net) & mask_v6(bits), i);
                    }
                    None => {}
                },
                IocKind::Domain => {
                    m.domains.insert(ioc.value.clone(), i);
                }
                IocKind::Hash => {
                    m.hashes.insert(ioc.value.clone(), i);
                }
            }
        }
        m.v4 = v4.into_iter().collect();
        m.v4.sort_by_key(|(bits, _)| std::cmp::Reverse(*bits));
        m.v6 = v6.into_iter().collect();
        m.v6.sort_by_key(|(bits, _)| std::cmp::Reverse(*bits));
        m.iocs = iocs;
        m
    }

    /// Number of IOCs indexed.
    pub fn len(&self) -> usize {
        self.iocs.len()
    }

    /// Whether any file hash is listed (hashing executables is skipped
    /// otherwise).
    pub fn has_hashes(&self) -> bool {
        !self.hashes.is_empty()
    }

    pub fn is_empty(&self) -> bool {
        self.iocs.is_empty()
    }

    /// The IOC for `ip`: an exact IP, else the most specific CIDR holding
    /// it. IPv4-mapped IPv6 addresses match as IPv4.
    pub fn match_ip(&self, ip: IpAddr) -> Option<&Ioc> {
        let ip = ip.to_canonical();
        if let Some(&i) = self.ips.get(&ip) {
            return self.iocs.get(i);
        }
        let found = match ip {
            IpAddr::V4(v4) => {
                let addr = u32::from(v4);
                self.v4
                    .iter()
                    .find_map(|(bits, nets)| nets.get(&(addr & mask_v4(*bits))))
            }
            IpAddr::V6(v6) => {
                let addr = u128::from(v6);
                self.v6
                    .iter()
                    .find_map(|(bits, nets)| nets.get(&(addr & mask_v6(*bits))))
            }
        };
        found.and_then(|&i| self.iocs.get(i))
    }

    /// The IOC for `name` or its closest listed parent domain.
    pub fn match_domain(&self, name: &str) -> Option<&Ioc> {
        let name = name.trim();
        let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
        let mut rest = name.as_str();
        loop {
            if let Some(&i) = self.domains.get(rest) {
                return self.iocs.get(i);
            }
            rest = rest.split_once('.')?.1;
        }
    }

    /// The IOC for a file hash (md5, sha1 or sha256 hex, any case).
    pub fn match_hash(&self, hash: &str) -> Option<&Ioc> {
        let i = *self.hashes.get(&hash.trim().to_ascii_lowercase())?;
        self.iocs.get(i)
    }
}

fn parse_cidr(value: &str) -> Option<(IpAddr, u8)> {
    let (address, bits) = value.split_once('/')?;
    Some((address.parse().ok()?, bits.parse().ok()?))
}
