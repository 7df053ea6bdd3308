//! Parsing and normalizing user-supplied indicators: IPs (canonical form,
//! IPv4-mapped addresses as IPv4), CIDRs (network form), domains (lowercase,
//! without the trailing dot) and file hashes (lowercase hex, optionally
//! written `md5:`, `sha1:` or `sha256:`), with errors that name what was
//! wrong.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::doc::WsError;
use super::intel::MAX_REASON_BYTES;

/// What an IOC matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IocKind {
    Ip,
    Cidr,
    Domain,
    /// A file hash: md5, sha1 or sha256, hex.
    Hash,
}

impl IocKind {
    pub fn label(self) -> &'static str {
        match self {
            IocKind::Ip => "ip",
            IocKind::Cidr => "cidr",
            IocKind::Domain => "domain",
            IocKind::Hash => "hash",
        }
    }

    fn from_label(label: &str) -> Option<IocKind> {
        [IocKind::Ip, IocKind::Cidr, IocKind::Domain, IocKind::Hash]
            .into_iter()
            .find(|k| k.label() == label)
    }

    /// Validates `input` as this kind and returns its normalized form.
    pub fn normalize(self, input: &str) -> Result<String, IocError> {
        let input = input.trim();
        if input.is_empty() {
            return Err(IocError::Empty);
        }
        match self {
            IocKind::Ip => input
                .parse::<IpAddr>()
                .map(|ip| ip.to_canonical().to_string())
                .map_err(|_| IocError::Ip {
                    input: input.into(),
                }),
            IocKind::Cidr => normalize_cidr(input),
            IocKind::Domain => normalize_domain(input),
            IocKind::Hash => normalize_hash(input),
        }
    }
}

/// Why user input is not a valid IOC.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IocError {
    #[error("the indicator is empty")]
    Empty,
    #[error("{input:?} is not an IPv4 or IPv6 address")]
    Ip { input: String },
    #[error("{input:?} is not a CIDR: write ADDRESS/PREFIX, e.g. 10.0.0.0/8")]
    CidrForm { input: String },
    #[error(
        "{input:?}: the prefix length {prefix} is out of range (0 to {max} for this address family)"
    )]
    CidrPrefix {
        input: String,
        prefix: String,
        max: u8,
    },
    #[error("{input:?}: {address:?} before the slash is not an IP address")]
    CidrAddress { input: String, address: String },
    #[error("{input:?} has {len} hex digits; a hash has 32 (md5), 40 (sha1) or 64 (sha256)")]
    HashLength { input: String, len: usize },
    #[error("{input:?} is not a hex hash")]
    HashHex { input: String },
    #[error("{input:?} has {len} hex digits; a {algorithm} hash has {expected}")]
    HashAlgorithm {
        input: String,
        algorithm: &'static str,
        len: usize,
        expected: usize,
    },
    #[error("{input:?} is not a domain: {reason}")]
    Domain { input: String, reason: &'static str },
    #[error("reason of {0} bytes is over the limit of {MAX_REASON_BYTES}")]
    ReasonTooLong(usize),
    #[error(transparent)]
    Store(#[from] WsError),
}

/// Hash algorithms that may prefix a hash, with their length in hex digits.
const HASH_ALGORITHMS: [(&str, usize); 3] = [("md5", 32), ("sha1", 40), ("sha256", 64)];

/// Parses a user's indicator: `kind:value` (e.g. `domain:evil.example`),
/// a hash named by its algorithm (`sha256:9f86…`), or a bare value whose
/// kind is detected. Returns the normalized value.
pub fn parse_indicator(input: &str) -> Result<(IocKind, String), IocError> {
    let input = input.trim();
    if let Some((algorithm, expected, value)) = input.split_once(':').and_then(|(a, v)| {
        let (name, len) = HASH_ALGORITHMS
            .into_iter()
            .find(|(name, _)| a.eq_ignore_ascii_case(name))?;
        Some((name, len, v.trim()))
    }) {
        let hash = normalize_hash(value)?;
        if hash.len() != expected {
            return Err(IocError::HashAlgorithm {
                input: value.into(),
                algorithm,
                len: hash.len(),
                expected,
            });
        }
        return Ok((IocKind::Hash, hash));
    }
    if let Some((kind, value)) = input
        .split_once(':')
        .and_then(|(k, v)| Some((IocKind::from_label(k)?, v)))
    {
        return Ok((kind, kind.normalize(value)?));
    }
    let kind = if input.contains('/') {
        IocKind::Cidr
    } else if input.parse::<IpAddr>().is_ok()
        || input.contains(':')
        || input.chars().all(|c| c.is_ascii_digit() || c == '.')
    {
        IocKind::Ip
    } else if input.len() >= 32 && input.chars().all(|c| c.is_ascii_hexdigit()) {
        IocKind::Hash
    } else {
        IocKind::Domain
    };
    Ok((kind, kind.normalize(input)?))
}

fn normalize_cidr(input: &str) -> Result<String, IocError> {
    let (address, prefix) = input.split_once('/').ok_or_else(|| IocError::CidrForm {
        input: input.into(),
    })?;
    let ip: IpAddr = address.trim().parse().map_err(|_| IocError::CidrAddress {
        input: input.into(),
        address: address.into(),
    })?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let bits = prefix
        .trim()
        .parse::<u8>()
        .ok()
        .filter(|b| *b <= max)
        .ok_or_else(|| IocError::CidrPrefix {
            input: input.into(),
            prefix: prefix.into(),
            max,
        })?;
    Ok(format!("{}/{bits}", network(ip, bits)))
}

/// `ip` with the host bits below a `bits`-long prefix cleared.
pub(super) fn network(ip: IpAddr, bits: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4((u32::from(v4) & mask_v4(bits)).into()),
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & mask_v6(bits)).into()),
    }
}

pub(super) fn mask_v4(bits: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(bits.min(32)))
        .unwrap_or(0)
}

pub(super) fn mask_v6(bits: u8) -> u128 {
    u128::MAX
        .checked_shl(128 - u32::from(bits.min(128)))
        .unwrap_or(0)
}

/// Lowercase, without one trailing dot, checked label by label.
pub(super) fn normalize_domain(input: &str) -> Result<String, IocError> {
    let err = |reason| IocError::Domain {
        input: input.into(),
        reason,
    };
    let name = input
        .strip_suffix('.')
        .unwrap_or(input)
        .to_ascii_lowercase();
    if !name.is_ascii() {
        return Err(err("non-ASCII; use the punycode (xn--) form"));
    }
    if name.len() > 253 {
        return Err(err("longer than 253 characters"));
    }
    let labels: Vec<&str> = name.split('.').collect();
    if labels.len() < 2 {
        return Err(err("needs at least two labels, e.g. evil.example"));
    }
    for label in &labels {
        if label.is_empty() || label.len() > 63 {
            return Err(err("a label is empty or longer than 63 characters"));
        }
        if !label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(err(
                "only letters, digits, '-' and '_' may appear in a label",
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(err("a label starts or ends with '-'"));
        }
    }
    if labels
        .last()
        .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(err("the last label is numeric (an invalid IP address?)"));
    }
    Ok(name)
}

fn normalize_hash(input: &str) -> Result<String, IocError> {
    if !input.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(IocError::HashHex {
            input: input.into(),
        });
    }
    match input.len() {
        32 | 40 | 64 => Ok(input.to_ascii_lowercase()),
        len => Err(IocError::HashLength {
            input: input.into(),
            len,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA256: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn a_hash_may_name_its_algorithm() {
        for input in [
            format!("sha256:{SHA256}"),
            format!("SHA256:{}", SHA256.to_ascii_uppercase()),
            format!("hash:{SHA256}"),
            SHA256.to_owned(),
        ] {
            assert_eq!(
                parse_indicator(&input),
                Ok((IocKind::Hash, SHA256.to_owned())),
                "{input}"
            );
        }
        let md5 = "d41d8cd98f00b204e9800998ecf8427e";
        assert_eq!(
            parse_indicator(&format!("md5:{md5}")),
            Ok((IocKind::Hash, md5.to_owned()))
        );
        let sha1 = "da39a3ee5e6b4b0d3255bfef95601890afd80709";
        assert_eq!(
            parse_indicator(&format!("sha1:{sha1}")),
            Ok((IocKind::Hash, sha1.to_owned()))
        );
    }

    #[test]
    fn a_named_algorithm_checks_the_length_and_digits() {
        let err = parse_indicator(&format!("sha256:{}", &SHA256[..40]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("a sha256 hash has 64"), "{err}");
        let err = parse_indicator("md5:not-hex").unwrap_err().to_string();
        assert!(err.contains("is not a hex hash"), "{err}");
    }
}
