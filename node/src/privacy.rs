//! The privacy policy for alert contents: how addresses appear in subjects
//! and evidence. Raw events are never copied into alerts; this filters even
//! the summary facts that are.

use std::net::{IpAddr, SocketAddr};

use amoskys_learning::Subject;
use sha2::{Digest, Sha256};

/// How addresses appear in alerts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addresses {
    /// As they are.
    Keep,
    /// `h:` and 16 hex characters of SHA-256(salt ‖ address): equal addresses
    /// stay equal across nodes sharing the salt, so alerts still correlate.
    Hash { salt: String },
}

/// Applies the privacy policy to a finding's subject and evidence.
#[derive(Debug, Clone)]
pub struct Privacy {
    pub addresses: Addresses,
}

impl Privacy {
    fn addr(&self, ip: IpAddr) -> String {
        match &self.addresses {
            Addresses::Keep => ip.to_string(),
            Addresses::Hash { salt } => {
                let mut h = Sha256::new();
                h.update(salt.as_bytes());
                h.update(ip.to_string().as_bytes());
                format!("h:{}", hex::encode(&h.finalize()[..8]))
            }
        }
    }

    /// The subject as alert text, e.g. `source_ip:192.0.2.9`.
    pub fn subject(&self, s: &Subject) -> String {
        match s {
            Subject::SourceIp(ip) => format!("source_ip:{}", self.addr(*ip)),
            Subject::DestinationIp(ip) => format!("destination_ip:{}", self.addr(*ip)),
            Subject::Process { pid, exe } => format!("process:{exe}#{pid}"),
            Subject::Listener { port } => format!("listener:{port}"),
            Subject::Device(name) => format!("device:{name}"),
            Subject::Host => "host".to_owned(),
            Subject::Model(kind) => format!("model:{kind}"),
        }
    }

    /// Evidence with every address or address:port value filtered.
    pub fn evidence(&self, evidence: &[(String, String)]) -> Vec<(String, String)> {
        evidence
            .iter()
            .map(|(k, v)| {
                let v = if let Ok(ip) = v.parse::<IpAddr>() {
                    self.addr(ip)
                } else if let Ok(sa) = v.parse::<SocketAddr>() {
                    format!("{}:{}", self.addr(sa.ip()), sa.port())
                } else {
                    v.clone()
                };
                (k.clone(), v)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashing_hides_addresses_but_keeps_equality() {
        let p = Privacy {
            addresses: Addresses::Hash {
                salt: "mesh-wide-salt-0123".into(),
            },
        };
        let ip: IpAddr = "192.0.2.9".parse().expect("ip");
        let s = p.subject(&Subject::SourceIp(ip));
        assert!(
            s.starts_with("source_ip:h:") && !s.contains("192.0.2.9"),
            "{s}"
        );
        assert_eq!(s, p.subject(&Subject::SourceIp(ip)));
        let ev = p.evidence(&[
            ("target".into(), "192.0.2.1:22".into()),
            ("ports".into(), "120".into()),
        ]);
        assert!(
            ev[0].1.starts_with("h:") && ev[0].1.ends_with(":22"),
            "{ev:?}"
        );
        assert_eq!(ev[1].1, "120");

        let keep = Privacy {
            addresses: Addresses::Keep,
        };
        assert_eq!(keep.subject(&Subject::SourceIp(ip)), "source_ip:192.0.2.9");
    }
}
