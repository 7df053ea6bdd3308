//! Validation of gossiped alerts, in a fixed order, cheapest check first:
//! per-peer rate → size → decode → the origin is an admitted member → the
//! ed25519 signature → the timestamp is inside the allowed window → not
//! seen before. Pure logic: bytes, the relaying peer and the time in, a
//! verified [`Alert`] or the [`Reject`] reason out.

use std::collections::{HashMap, HashSet, VecDeque};

use crate::alert::{Alert, AlertError, MAX_ALERT_BYTES};

/// Why a gossiped message, or a stream from a peer that is not admitted
/// (an outsider), was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reject {
    /// The relaying peer sent more than its rate allows.
    RateLimited,
    Oversized,
    /// Not an alert.
    Decode,
    /// Signed by a key that is not an admitted member.
    NotAdmitted,
    /// Signed by a retired node key after its hand-over to a successor.
    Retired,
    /// Fields or signature do not verify.
    Signature,
    /// Outside the allowed time window (a replay of an old alert, or a clock
    /// far ahead).
    Stale,
    /// Already received.
    Duplicate,
    /// An outsider opened a gossip stream (to subscribe, graft or publish);
    /// it was closed unread.
    OutsiderGossip,
    /// An outsider asked for alerts by reconciliation.
    OutsiderSync,
    /// An outsider sent a Kademlia query.
    OutsiderKad,
    /// An outsider opened identify or ping.
    OutsiderOther,
    /// An outsider sent a request other than a join.
    OutsiderRequest,
    /// An outsider connected while the most joiners were connected.
    JoinersFull,
    /// A member's gossip frame over gossipsub's size limit (cut off
    /// unread, with every message in it).
    OversizedFrame,
    /// A member's gossip frame that does not decode.
    MalformedFrame,
}

impl Reject {
    pub const ALL: [Reject; 16] = [
        Reject::RateLimited,
        Reject::Oversized,
        Reject::Decode,
        Reject::NotAdmitted,
        Reject::Retired,
        Reject::Signature,
        Reject::Stale,
        Reject::Duplicate,
        Reject::OutsiderGossip,
        Reject::OutsiderSync,
        Reject::OutsiderKad,
        Reject::OutsiderOther,
        Reject::OutsiderRequest,
        Reject::JoinersFull,
        Reject::OversizedFrame,
        Reject::MalformedFrame,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Reject::RateLimited => "rate_limited",
            Reject::Oversized => "oversized",
            Reject::Decode => "decode",
            Reject::NotAdmitted => "not_admitted",
            Reject::Retired => "retired_key",
            Reject::Signature => "signature",
            Reject::Stale => "stale",
            Reject::Duplicate => "duplicate",
            Reject::OutsiderGossip => "outsider_gossip",
            Reject::OutsiderSync => "outsider_sync",
            Reject::OutsiderKad => "outsider_kad",
            Reject::OutsiderOther => "outsider_other",
            Reject::OutsiderRequest => "outsider_request",
            Reject::JoinersFull => "joiners_full",
            Reject::OversizedFrame => "oversized_frame",
            Reject::MalformedFrame => "malformed_frame",
        }
    }

    /// Whether the relaying peer is to blame (gossipsub `Reject`, which
    /// lowers its score) or not (`Ignore`: a duplicate, or our own limit).
    /// Outsiders' streams never reach gossipsub.
    pub fn penalises(self) -> bool {
        matches!(
            self,
            Reject::Oversized
                | Reject::Decode
                | Reject::NotAdmitted
                | Reject::Retired
                | Reject::Signature
                | Reject::Stale
        )
    }
}

/// Limits of the validator.
#[derive(Debug, Clone)]
pub struct ValidatorConfig {
    /// ed25519 public keys of the admitted members.
    pub admitted: Vec<[u8; 32]>,
    /// Oldest accepted alert, relative to now.
    pub max_age_ns: u64,
    /// Furthest accepted alert time ahead of now (clock skew).
    pub max_ahead_ns: u64,
    /// Alert ids remembered for duplicates.
    pub dedupe: usize,
    /// Messages per second each relaying peer may send, and the burst.
    pub peer_rate: f64,
    pub peer_burst: f64,
}

impl Default for ValidatorConfig {
    fn default() -> Self {
        Self {
            admitted: Vec::new(),
            max_age_ns: 15 * 60 * 1_000_000_000,
            max_ahead_ns: 60 * 1_000_000_000,
            dedupe: 100_000,
            peer_rate: 200.0,
            peer_burst: 2_000.0,
        }
    }
}

/// A token bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at_ns: u64,
}

/// Checks gossiped alerts; remembers what it accepted.
#[derive(Debug)]
pub struct Validator {
    cfg: ValidatorConfig,
    admitted: HashSet<[u8; 32]>,
    /// Retired node keys and the last sequence number each signed before
    /// its hand-over.
    retired: HashMap<[u8; 32], u64>,
    seen: HashSet<String>,
    order: VecDeque<String>,
    buckets: HashMap<String, Bucket>,
}

/// Peers with a rate bucket; beyond it, idle buckets are dropped.
const MAX_BUCKETS: usize = 10_000;

impl Validator {
    pub fn new(cfg: ValidatorConfig) -> Self {
        Self {
            admitted: cfg.admitted.iter().copied().collect(),
            retired: HashMap::new(),
            cfg,
            seen: HashSet::new(),
            order: VecDeque::new(),
            buckets: HashMap::new(),
        }
    }

    /// Replaces the admitted members (from configuration or, later, from
    /// the replicated membership).
    pub fn set_admitted(&mut self, keys: impl IntoIterator<Item = [u8; 32]>) {
        self.admitted = keys.into_iter().collect();
    }

    /// Replaces the retired keys: alerts they signed up to their last
    /// sequence number are accepted (relayed or fetched late), later ones
    /// refused as [`Reject::Retired`].
    pub fn set_retired(&mut self, keys: impl IntoIterator<Item = ([u8; 32], u64)>) {
        self.retired = keys.into_iter().collect();
    }

    /// Whether an alert of `time_ns` is well inside the gossip window (its
    /// first half), so peers with some clock skew still accept it.
    pub fn is_fresh(&self, time_ns: u64, now_ns: u64) -> bool {
        time_ns >= now_ns.saturating_sub(self.cfg.max_age_ns / 2)
            && time_ns <= now_ns.saturating_add(self.cfg.max_ahead_ns / 2)
    }

    pub fn is_admitted(&self, key: &[u8; 32]) -> bool {
        self.admitted.contains(key)
    }

    /// Records an alert as held (our own, or one fetched another way), so
    /// its gossip copy counts as a duplicate.
    pub fn remember(&mut self, id: &str) {
        if self.seen.contains(id) {
            return;
        }
        if self.order.len() >= self.cfg.dedupe.max(1)
            && let Some(old) = self.order.pop_front()
        {
            self.seen.remove(&old);
        }
        self.seen.insert(id.to_owned());
        self.order.push_back(id.to_owned());
    }

    /// Checks `bytes` relayed by `peer` at `now_ns`.
    pub fn check(&mut self, bytes: &[u8], peer: &str, now_ns: u64) -> Result<Alert, Reject> {
        if !self.take_token(peer, now_ns) {
            return Err(Reject::RateLimited);
        }
        let alert = self.verified(bytes)?;
        let t = alert.body.time_ns;
        if t < now_ns.saturating_sub(self.cfg.max_age_ns)
            || t > now_ns.saturating_add(self.cfg.max_ahead_ns)
        {
            return Err(Reject::Stale);
        }
        self.first_time(alert)
    }

    /// Checks an alert fetched by reconciliation: the same checks as
    /// gossip except the rate and the time window (fetched alerts are old by
    /// nature; each answer is bounded instead).
    pub fn check_synced(&mut self, bytes: &[u8]) -> Result<Alert, Reject> {
        let alert = self.verified(bytes)?;
        self.first_time(alert)
    }

    /// Size → decode → admitted origin → signature.
    fn verified(&self, bytes: &[u8]) -> Result<Alert, Reject> {
        if bytes.len() > MAX_ALERT_BYTES {
            return Err(Reject::Oversized);
        }
        let alert = Alert::parse(bytes).map_err(|e| match e {
            AlertError::TooLarge(_) => Reject::Oversized,
            _ => Reject::Decode,
        })?;
        let key: Option<[u8; 32]> = hex::decode(&alert.origin_key)
            .ok()
            .and_then(|k| k.try_into().ok());
        let Some(key) = key else {
            return Err(Reject::NotAdmitted);
        };
        if !self.admitted.contains(&key) {
            return Err(match self.retired.get(&key) {
                Some(last) if alert.body.seq <= *last => {
                    alert.verify().map_err(|_| Reject::Signature)?;
                    return Ok(alert);
                }
                Some(_) => Reject::Retired,
                None => Reject::NotAdmitted,
            });
        }
        alert.verify().map_err(|_| Reject::Signature)?;
        Ok(alert)
    }

    /// Not seen before; remembered from now on.
    fn first_time(&mut self, alert: Alert) -> Result<Alert, Reject> {
        if self.seen.contains(&alert.id) {
            return Err(Reject::Duplicate);
        }
        self.remember(&alert.id);
        Ok(alert)
    }

    fn take_token(&mut self, peer: &str, now_ns: u64) -> bool {
        let (rate, burst) = (self.cfg.peer_rate, self.cfg.peer_burst);
        if self.buckets.len() >= MAX_BUCKETS && !self.buckets.contains_key(peer) {
            // Idle long enough to be full again: forgetting them changes nothing.
            let refill_ns = (burst / rate.max(1e-9) * 1e9) as u64;
            self.buckets
                .retain(|_, b| now_ns.saturating_sub(b.at_ns) < refill_ns);
        }
        let b = self.buckets.entry(peer.to_owned()).or_insert(Bucket {
            tokens: burst,
            at_ns: now_ns,
        });
        let elapsed = now_ns.saturating_sub(b.at_ns) as f64 / 1e9;
        b.tokens = (b.tokens + elapsed * rate).min(burst);
        b.at_ns = now_ns;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::AlertBody;
    use ed25519_dalek::SigningKey;

    const NOW: u64 = 1_800_000_000_000_000_000;

    fn alert(key: &SigningKey, seq: u64, time_ns: u64) -> Alert {
        Alert::sign(
            AlertBody {
                seq,
                time_ns,
                severity: "high".into(),
                category: "reconnaissance".into(),
                technique: "T1046".into(),
                rule: "port_scan_vertical".into(),
                score: 1.0,
                subject: "source_ip:192.0.2.9".into(),
                evidence: vec![("ports".into(), "25".into())],
            },
            key,
        )
    }

    fn validator(admitted: &[&SigningKey]) -> Validator {
        Validator::new(ValidatorConfig {
            admitted: admitted
                .iter()
                .map(|k| k.verifying_key().to_bytes())
                .collect(),
            peer_rate: 10.0,
            peer_burst: 20.0,
            dedupe: 3,
            ..ValidatorConfig::default()
        })
    }

    #[test]
    fn each_bad_message_gets_its_reason_and_good_ones_pass() {
        let member = SigningKey::from_bytes(&[1; 32]);
        let stranger = SigningKey::from_bytes(&[2; 32]);
        let mut v = validator(&[&member]);
        let good = alert(&member, 1, NOW);
        assert_eq!(v.check(&good.encode(), "p", NOW), Ok(good.clone()));
        assert_eq!(v.check(&good.encode(), "p", NOW), Err(Reject::Duplicate));

        let mut tampered = alert(&member, 2, NOW);
        tampered.body.subject = "source_ip:198.51.100.1".into();
        assert_eq!(
            v.check(&tampered.encode(), "p", NOW),
            Err(Reject::Signature)
        );
        let mut forged = alert(&member, 3, NOW);
        forged.signature = alert(&stranger, 3, NOW).signature;
        assert_eq!(v.check(&forged.encode(), "p", NOW), Err(Reject::Signature));
        let unknown = alert(&stranger, 4, NOW);
        assert_eq!(
            v.check(&unknown.encode(), "p", NOW),
            Err(Reject::NotAdmitted)
        );
        let old = alert(&member, 5, NOW - 3_600 * 1_000_000_000);
        assert_eq!(v.check(&old.encode(), "p", NOW), Err(Reject::Stale));
        let ahead = alert(&member, 6, NOW + 3_600 * 1_000_000_000);
        assert_eq!(v.check(&ahead.encode(), "p", NOW), Err(Reject::Stale));
        assert_eq!(v.check(b"\x00garbage", "p", NOW), Err(Reject::Decode));
        let big = vec![b' '; MAX_ALERT_BYTES + 1];
        assert_eq!(v.check(&big, "p", NOW), Err(Reject::Oversized));

        // A rejected alert is not remembered: its valid twin still passes.
        let valid = alert(&member, 2, NOW);
        assert!(v.check(&valid.encode(), "p", NOW).is_ok());
        assert!(Reject::Signature.penalises() && !Reject::Duplicate.penalises());
    }

    #[test]
    fn a_retired_key_is_accepted_up_to_its_last_sequence_number_only() {
        let old = SigningKey::from_bytes(&[1; 32]);
        let new = SigningKey::from_bytes(&[2; 32]);
        let mut v = validator(&[&new]);
        v.set_retired([(old.verifying_key().to_bytes(), 7)]);
        let before = alert(&old, 7, NOW);
        assert_eq!(v.check(&before.encode(), "p", NOW), Ok(before));
        let after = alert(&old, 8, NOW);
        assert_eq!(v.check(&after.encode(), "p", NOW), Err(Reject::Retired));
        let mut forged = alert(&old, 6, NOW);
        forged.signature = alert(&new, 6, NOW).signature;
        assert_eq!(v.check(&forged.encode(), "p", NOW), Err(Reject::Signature));
        assert!(v.check(&alert(&new, 8, NOW).encode(), "p", NOW).is_ok());
    }

    #[test]
    fn peers_are_rate_limited_separately_and_refill() {
        let member = SigningKey::from_bytes(&[1; 32]);
        let mut v = validator(&[&member]);
        for _ in 0..20 {
            assert_ne!(v.check(b"x", "noisy", NOW), Err(Reject::RateLimited));
        }
        assert_eq!(v.check(b"x", "noisy", NOW), Err(Reject::RateLimited));
        assert_eq!(v.check(b"x", "calm", NOW), Err(Reject::Decode));
        // A second later, 10 more.
        assert_eq!(
            v.check(b"x", "noisy", NOW + 1_000_000_000),
            Err(Reject::Decode)
        );
    }

    #[test]
    fn the_dedupe_memory_is_bounded() {
        let member = SigningKey::from_bytes(&[1; 32]);
        let mut v = validator(&[&member]);
        let alerts: Vec<Alert> = (1..=4).map(|s| alert(&member, s, NOW)).collect();
        for a in &alerts {
            assert!(v.check(&a.encode(), "p", NOW).is_ok());
        }
        // Capacity 3: the first was forgotten, the last three are held.
        assert!(v.check(&alerts[0].encode(), "p", NOW).is_ok());
        assert_eq!(
            v.check(&alerts[3].encode(), "p", NOW),
            Err(Reject::Duplicate)
        );
        assert_eq!(v.seen.len(), 3);
    }
}
