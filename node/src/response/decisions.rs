//! Decisions and the addresses no decision may touch. Pure: no I/O, time
//! passed in.
//!
//! A [`Decision`] names a subject (an address or a CIDR block), an action,
//! why, the alerts behind it, who made it and when it expires. [`Guard`]
//! holds what is never blocked (loopback, the node's own addresses, the
//! members' addresses, `response.never_block`); [`plan`] turns the live
//! decisions into the set a node enforces: guarded, bounded, without
//! blocks nested in others (the kernel set holds intervals that must not
//! overlap).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest reason text, in bytes.
pub const MAX_REASON_BYTES: usize = 1024;
/// Most alert ids one decision names.
pub const MAX_ALERTS: usize = 32;
/// Longest decision a client may ask for: 30 days.
pub const MAX_DURATION_SECS: u64 = 30 * 86_400;

/// An address or a CIDR block, its host bits zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subject {
    addr: IpAddr,
    len: u8,
}

/// Why a text is not a subject.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    #[error(
        "{0:?} is not an IPv4 or IPv6 address or CIDR block (e.g. 203.0.113.7 or 203.0.113.0/24)"
    )]
    Syntax(String),
    #[error("prefix length /{len} is over {max} for {addr}")]
    Prefix { addr: String, len: u8, max: u8 },
}

fn bits(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// `addr` with all but its first `len` bits cleared.
fn masked(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
        }
    }
}

impl Subject {
    /// One address.
    pub fn host(addr: IpAddr) -> Subject {
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
            v4 => v4,
        };
        Subject {
            addr,
            len: bits(addr),
        }
    }

    /// The block `addr/len` (host bits cleared).
    pub fn block(addr: IpAddr, len: u8) -> Result<Subject, SubjectError> {
        if len > bits(addr) {
            return Err(SubjectError::Prefix {
                addr: addr.to_string(),
                len,
                max: bits(addr),
            });
        }
        Ok(Subject {
            addr: masked(addr, len),
            len,
        })
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    pub fn is_host(&self) -> bool {
        self.len == bits(self.addr)
    }

    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// Whether `ip` lies in this block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = Subject::host(ip).addr;
        ip.is_ipv4() == self.addr.is_ipv4() && masked(ip, self.len) == self.addr
    }

    /// Whether `other` lies wholly in this block.
    pub fn covers(&self, other: &Subject) -> bool {
        other.len >= self.len && self.contains(other.addr)
    }

    /// Whether the two blocks share an address (CIDR blocks either nest
    /// or are disjoint).
    pub fn overlaps(&self, other: &Subject) -> bool {
        self.covers(other) || other.covers(self)
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_host() {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.len)
        }
    }
}

impl FromStr for Subject {
    type Err = SubjectError;

    fn from_str(s: &str) -> Result<Subject, SubjectError> {
        let t = s.trim();
        let syntax = || SubjectError::Syntax(s.chars().take(64).collect());
        match t.split_once('/') {
            None => t.parse::<IpAddr>().map(Subject::host).map_err(|_| syntax()),
            Some((a, l)) => {
                let addr = a.parse::<IpAddr>().map_err(|_| syntax())?;
                if l.is_empty() || l.len() > 3 || !l.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(syntax());
                }
                let len = l.parse::<u8>().map_err(|_| syntax())?;
                Subject::block(addr, len)
            }
        }
    }
}

impl Serialize for Subject {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Subject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Subject, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// What a decision does. One action for now: drop what the subject sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    BlockSource,
}

impl Action {
    pub const NAMES: [&'static str; 1] = ["block_source"];

    pub fn label(self) -> &'static str {
        match self {
            Action::BlockSource => "block_source",
        }
    }
}

impl FromStr for Action {
    type Err = String;

    fn from_str(s: &str) -> Result<Action, String> {
        match s {
            "block_source" => Ok(Action::BlockSource),
            other => Err(format!(
                "{other:?} is not an action (expected \"block_source\")"
            )),
        }
    }
}

/// One decision, as the workspace keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    pub subject: Subject,
    pub action: Action,
    pub reason: String,
    /// The alerts behind it (none for one made by hand).
    #[serde(default)]
    pub alerts: Vec<String>,
    /// Who made it: `rule:<response rule>` or `operator:<name>`, then
    /// `@<peer id>` of the node that wrote it.
    pub origin: String,
    pub created_ms: u64,
    pub expires_ms: u64,
}

impl Decision {
    pub fn is_live(&self, now_ms: u64) -> bool {
        self.expires_ms > now_ms
    }

    /// The key of its entry in the `decisions` document.
    pub fn key(&self) -> String {
        key(self.action, &self.subject)
    }

    /// What is wrong with it, if anything (a peer's entry is read through
    /// this too).
    pub fn problem(&self) -> Option<String> {
        if self.reason.len() > MAX_REASON_BYTES {
            return Some(format!(
                "reason of {} bytes is over {MAX_REASON_BYTES}",
                self.reason.len()
            ));
        }
        if self.alerts.len() > MAX_ALERTS {
            return Some(format!(
                "{} alert ids are over {MAX_ALERTS}",
                self.alerts.len()
            ));
        }
        None
    }
}

/// The entry key of `action` against `subject`.
pub fn key(action: Action, subject: &Subject) -> String {
    format!("{}:{subject}", action.label())
}

/// Seconds from `now_ms` to `expires_ms`, rounded up, at least 1 (an
/// nftables element timeout).
pub fn seconds_left(expires_ms: u64, now_ms: u64) -> u64 {
    expires_ms.saturating_sub(now_ms).div_ceil(1000).max(1)
}

/// Why a decision is not enforced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(rename_all = "snake_case", tag = "refused", content = "address")]
pub enum Refusal {
    #[error("it reaches loopback ({0}), which is never blocked")]
    Loopback(String),
    #[error("it reaches {0}, an address of this node, which is never blocked")]
    Own(String),
    #[error("it reaches {0}, the address of an admitted member, which is never blocked")]
    Member(String),
    #[error("it reaches {0} of response.never_block")]
    NeverBlock(String),
}

impl Refusal {
    pub fn label(&self) -> &'static str {
        match self {
            Refusal::Loopback(_) => "loopback",
            Refusal::Own(_) => "own_address",
            Refusal::Member(_) => "member",
            Refusal::NeverBlock(_) => "never_block",
        }
    }
}

/// Loopback blocks, never blocked.
const LOOPBACK: [Subject; 2] = [
    Subject {
        addr: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)),
        len: 8,
    },
    Subject {
        addr: IpAddr::V6(Ipv6Addr::LOCALHOST),
        len: 128,
    },
];

/// What is never blocked on this node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Guard {
    own: Vec<IpAddr>,
    members: Vec<IpAddr>,
    never: Vec<Subject>,
}

impl Guard {
    pub fn new(own: Vec<IpAddr>, members: Vec<IpAddr>, never: Vec<Subject>) -> Guard {
        Guard {
            own,
            members,
            never,
        }
    }

    /// `Ok` when `subject` may be blocked; else the first protected
    /// address or block it would reach.
    pub fn check(&self, subject: &Subject) -> Result<(), Refusal> {
        if let Some(lo) = LOOPBACK.iter().find(|lo| subject.overlaps(lo)) {
            return Err(Refusal::Loopback(lo.to_string()));
        }
        if let Some(ip) = self.own.iter().find(|ip| subject.contains(**ip)) {
            return Err(Refusal::Own(ip.to_string()));
        }
        if let Some(ip) = self.members.iter().find(|ip| subject.contains(**ip)) {
            return Err(Refusal::Member(ip.to_string()));
        }
        if let Some(b) = self.never.iter().find(|b| subject.overlaps(b)) {
            return Err(Refusal::NeverBlock(b.to_string()));
        }
        Ok(())
    }
}

/// What a node enforces of the live decisions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Subjects to block, each with its expiry (ms since the Unix epoch).
    pub enforce: Vec<(Subject, u64)>,
    /// Decisions refused by the guard.
    pub refused: Vec<(Subject, Refusal)>,
    /// Live decisions beyond `response.max_decisions`, not enforced.
    pub over_limit: Vec<Subject>,
}

/// The set to enforce at `now_ms`: live `block_source` decisions the
/// guard allows, oldest first up to `max`; a block inside another one
/// enforced is left out (the outer one drops its traffic).
pub fn plan(decisions: &[Decision], guard: &Guard, max: usize, now_ms: u64) -> Plan {
    let mut live: Vec<&Decision> = decisions
        .iter()
        .filter(|d| d.is_live(now_ms) && d.action == Action::BlockSource)
        .collect();
    live.sort_by_key(|d| (d.created_ms, d.subject));
    let mut out = Plan::default();
    let mut allowed: Vec<(Subject, u64)> = Vec::new();
    for d in live {
        if let Err(r) = guard.check(&d.subject) {
            out.refused.push((d.subject, r));
            continue;
        }
        if allowed.len() >= max {
            out.over_limit.push(d.subject);
            continue;
        }
        match allowed.iter_mut().find(|(s, _)| *s == d.subject) {
            Some((_, end)) => *end = (*end).max(d.expires_ms),
            None => allowed.push((d.subject, d.expires_ms)),
        }
    }
    out.enforce = allowed
        .iter()
        .filter(|(s, _)| !allowed.iter().any(|(o, _)| o != s && o.covers(s)))
        .copied()
        .collect();
    out
}
