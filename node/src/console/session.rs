//! Console sign-in state, in memory and bounded: one-time login links
//! (`amoskys operator login` asks for one) and the sessions they open.
//! Time is an input (`now_ms`), so expiry is tested without a clock.
//!
//! Secrets are kept only as their SHA-256, so neither a link token nor a
//! session id can be read back from memory or found by a timing probe of
//! the map. A session names the operator's key, never its role: the role
//! is looked up in the replicated operators on every request.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

/// How long a login link may be used: 60 s, once.
pub const LINK_TTL_MS: u64 = 60_000;
/// A session unused this long ends: 30 minutes.
pub const IDLE_MS: u64 = 30 * 60_000;
/// A session ends this long after sign-in, used or not: 8 hours.
pub const ABSOLUTE_MS: u64 = 8 * 3_600_000;
/// Most sessions a node keeps; the least recently used goes first.
pub const MAX_SESSIONS: usize = 1_024;
/// Most unused login links a node keeps; the oldest goes first.
pub const MAX_LINKS: usize = 256;

/// One signed-in browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The operator's public key, 64 hex digits.
    pub key: String,
    /// The token every form of this session carries (CSRF).
    pub csrf: String,
    pub created_ms: u64,
    pub seen_ms: u64,
}

#[derive(Debug)]
struct Link {
    key: String,
    expires_ms: u64,
}

/// Login links and sessions of one node.
#[derive(Debug, Default)]
pub struct Sessions {
    links: HashMap<String, Link>,
    sessions: HashMap<String, Session>,
}

/// 32 random bytes as 64 hex digits.
pub fn random_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

impl Sessions {
    /// A new one-time login token for the operator holding `key`.
    pub fn issue_link(&mut self, key: &str, now_ms: u64) -> String {
        self.links.retain(|_, l| l.expires_ms > now_ms);
        while self.links.len() >= MAX_LINKS {
            let Some(oldest) = self
                .links
                .iter()
                .min_by_key(|(_, l)| l.expires_ms)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            self.links.remove(&oldest);
        }
        let token = random_token();
        self.links.insert(
            digest(&token),
            Link {
                key: key.to_owned(),
                expires_ms: now_ms + LINK_TTL_MS,
            },
        );
        token
    }

    /// Uses a login token (once, within [`LINK_TTL_MS`]) and opens a
    /// session: its id (the cookie's value) and the session.
    pub fn redeem(&mut self, token: &str, now_ms: u64) -> Option<(String, Session)> {
        let link = self.links.remove(&digest(token))?;
        if link.expires_ms <= now_ms {
            return None;
        }
        self.sessions.retain(|_, s| live(s, now_ms));
        while self.sessions.len() >= MAX_SESSIONS {
            let Some(idlest) = self
                .sessions
                .iter()
                .min_by_key(|(_, s)| s.seen_ms)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            self.sessions.remove(&idlest);
        }
        let id = random_token();
        let session = Session {
            key: link.key,
            csrf: random_token(),
            created_ms: now_ms,
            seen_ms: now_ms,
        };
        self.sessions.insert(digest(&id), session.clone());
        Some((id, session))
    }

    /// The live session `id` names, marked as used now; an expired one is
    /// ended.
    pub fn touch(&mut self, id: &str, now_ms: u64) -> Option<Session> {
        let d = digest(id);
        let s = self.sessions.get_mut(&d)?;
        if !live(s, now_ms) {
            self.sessions.remove(&d);
            return None;
        }
        s.seen_ms = now_ms;
        Some(s.clone())
    }

    /// Ends session `id` (sign-out, or its operator is gone).
    pub fn end(&mut self, id: &str) {
        self.sessions.remove(&digest(id));
    }

    /// Sessions open now (for tests and status).
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }
}

fn live(s: &Session, now_ms: u64) -> bool {
    now_ms < s.seen_ms.saturating_add(IDLE_MS) && now_ms < s.created_ms.saturating_add(ABSOLUTE_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_opens_one_session_once_and_only_in_time() {
        let mut s = Sessions::default();
        let t = s.issue_link("k", 1_000);
        assert_eq!(t.len(), 64);
        let (id, session) = s.redeem(&t, 2_000).expect("first use");
        assert_eq!(session.key, "k");
        assert_eq!(session.csrf.len(), 64);
        assert!(s.redeem(&t, 2_001).is_none(), "second use");
        let late = s.issue_link("k", 1_000);
        assert!(s.redeem(&late, 1_000 + LINK_TTL_MS).is_none(), "expired");
        assert!(s.redeem("nope", 1_000).is_none());
        assert_eq!(s.touch(&id, 3_000).map(|x| x.key), Some("k".into()));
        s.end(&id);
        assert!(s.touch(&id, 3_001).is_none(), "signed out");
    }

    #[test]
    fn sessions_expire_when_idle_and_after_their_lifetime() {
        let mut s = Sessions::default();
        let t = s.issue_link("k", 0);
        let (id, _) = s.redeem(&t, 0).expect("session");
        assert!(s.touch(&id, IDLE_MS - 1).is_some());
        // Used every 20 minutes, it still ends after 8 hours.
        let mut now = IDLE_MS - 1;
        while now + 20 * 60_000 < ABSOLUTE_MS {
            now += 20 * 60_000;
            assert!(s.touch(&id, now).is_some(), "at {now}");
        }
        assert!(s.touch(&id, ABSOLUTE_MS).is_none());
        let t = s.issue_link("k", 0);
        let (id, _) = s.redeem(&t, 0).expect("session");
        assert!(s.touch(&id, IDLE_MS).is_none(), "idle");
        assert!(s.is_empty());
    }

    #[test]
    fn links_and_sessions_are_bounded() {
        let mut s = Sessions::default();
        let first = s.issue_link("k", 0);
        for _ in 0..MAX_LINKS {
            s.issue_link("k", 1);
        }
        assert!(s.redeem(&first, 2).is_none(), "the oldest link went first");
        let mut ids = Vec::new();
        for i in 0..=MAX_SESSIONS as u64 {
            let t = s.issue_link("k", 10 + i);
            ids.push(s.redeem(&t, 10 + i).expect("session").0);
        }
        assert_eq!(s.len(), MAX_SESSIONS);
        assert!(s.touch(&ids[0], 5_000).is_none(), "the idlest went first");
        assert!(s.touch(&ids[MAX_SESSIONS], 5_000).is_some());
    }
}
