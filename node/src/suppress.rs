//! Which findings do not become alerts, by two memories:
//! - repeats: the same rule on the same subject raises at most one alert
//!   per `detection.suppress_secs`. What was raised when is kept in the
//!   store with the alerts (`storage/suppress.rs`) and loaded at start, so
//!   a node restarted in the middle of a scan does not raise it again;
//! - verdicts: an alert whose case is marked false positive suppresses its
//!   rule on its subject for the policy's `rules.false_positive_suppress_secs`
//!   from the verdict, on every node. The workspace feeds the set
//!   ([`FalsePositives`]) on a watch channel; detection reads it in memory.
//!
//! Times are the findings' own (event time), as everywhere in detection.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

/// Most (rule, subject) pairs remembered for repeats, in memory and in the
/// store.
pub const MAX_SUPPRESSED: usize = 10_000;
/// Most alerts whose suppressed findings are counted.
const MAX_COUNTED: usize = 10_000;

/// A (rule, subject) pair.
pub type Pair = (String, String);

/// When a (rule, subject) last raised an alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    pub rule: String,
    pub subject: String,
    pub time_ns: u64,
}

/// Changes of the repeat memory to keep in the store: the new time of a
/// pair, or `None` when it was forgotten.
pub type MarkChanges = HashMap<Pair, Option<u64>>;

/// What becomes of a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Raise,
    /// The same rule on the same subject raised within `suppress_secs`.
    Repeat,
    /// A false-positive verdict covers it.
    Verdict,
}

/// The false-positive verdicts in force: (rule, subject) → the alert judged
/// and the time of the verdict (ms).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FalsePositives {
    by_pair: HashMap<Pair, (String, u64)>,
}

impl FalsePositives {
    /// Adds a verdict; of two on one pair the later one counts.
    pub fn insert(&mut self, rule: &str, subject: &str, alert: &str, at_ms: u64) {
        let entry = self
            .by_pair
            .entry((rule.to_owned(), subject.to_owned()))
            .or_insert_with(|| (alert.to_owned(), at_ms));
        if at_ms > entry.1 {
            *entry = (alert.to_owned(), at_ms);
        }
    }

    /// The alert judged and the verdict's time, for a pair.
    pub fn get(&self, rule: &str, subject: &str) -> Option<(&str, u64)> {
        // A borrowed tuple key needs owned strings; the set is small.
        self.by_pair
            .get(&(rule.to_owned(), subject.to_owned()))
            .map(|(a, t)| (a.as_str(), *t))
    }

    pub fn len(&self) -> usize {
        self.by_pair.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_pair.is_empty()
    }
}

/// Findings each false-positive verdict suppressed on this node since it
/// started, by the judged alert's id (bounded: past the bound, new alerts
/// are not counted).
#[derive(Debug, Default)]
pub struct VerdictCounts(Mutex<HashMap<String, u64>>);

impl VerdictCounts {
    pub fn add(&self, alert: &str) {
        let mut m = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = m.get_mut(alert) {
            *n += 1;
        } else if m.len() < MAX_COUNTED {
            m.insert(alert.to_owned(), 1);
        }
    }

    pub fn get(&self, alert: &str) -> u64 {
        let m = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        m.get(alert).copied().unwrap_or(0)
    }
}

/// The workspace's verdicts as detection follows them.
#[derive(Debug)]
pub struct VerdictFeed {
    pub set: watch::Receiver<Arc<FalsePositives>>,
    pub counts: Arc<VerdictCounts>,
}

/// The suppression state of one detector.
#[derive(Debug)]
pub struct Suppression {
    repeat_ns: u64,
    last: HashMap<Pair, u64>,
    changes: MarkChanges,
    verdicts: Option<VerdictFeed>,
    current: Arc<FalsePositives>,
}

impl Suppression {
    pub fn new(suppress_secs: u64) -> Self {
        Self {
            repeat_ns: suppress_secs.saturating_mul(1_000_000_000),
            last: HashMap::new(),
            changes: MarkChanges::new(),
            verdicts: None,
            current: Arc::default(),
        }
    }

    /// Takes up the marks kept in the store (the newest [`MAX_SUPPRESSED`]).
    pub fn restore(&mut self, mut marks: Vec<Mark>) {
        marks.sort_by_key(|m| std::cmp::Reverse(m.time_ns));
        for m in marks.into_iter().take(MAX_SUPPRESSED) {
            self.last.insert((m.rule, m.subject), m.time_ns);
        }
    }

    /// Also suppresses what false-positive verdicts cover.
    pub fn follow_verdicts(&mut self, feed: VerdictFeed) {
        self.current = feed.set.borrow().clone();
        self.verdicts = Some(feed);
    }

    /// Picks up the latest verdicts (once per batch).
    pub fn refresh(&mut self) {
        if let Some(feed) = self.verdicts.as_mut()
            && feed.set.has_changed().unwrap_or(false)
        {
            self.current = feed.set.borrow_and_update().clone();
        }
    }

    /// Decides on a finding at time `t`; a verdict covers `verdict_ns` from
    /// its time. A raised finding is remembered.
    pub fn check(&mut self, rule: &str, subject: &str, t: u64, verdict_ns: u64) -> Outcome {
        if let Some((alert, at_ms)) = self.current.get(rule, subject)
            && t < at_ms.saturating_mul(1_000_000).saturating_add(verdict_ns)
        {
            if let Some(feed) = &self.verdicts {
                feed.counts.add(alert);
            }
            return Outcome::Verdict;
        }
        let key = (rule.to_owned(), subject.to_owned());
        if let Some(&prev) = self.last.get(&key)
            && t.saturating_sub(prev) < self.repeat_ns
        {
            return Outcome::Repeat;
        }
        if self.last.len() >= MAX_SUPPRESSED && !self.last.contains_key(&key) {
            self.make_room(t);
        }
        self.last.insert(key.clone(), t);
        self.changes.insert(key, Some(t));
        Outcome::Raise
    }

    /// Forgets pairs past the window; if none is, the oldest one.
    fn make_room(&mut self, t: u64) {
        let horizon = t.saturating_sub(self.repeat_ns);
        let changes = &mut self.changes;
        self.last.retain(|k, seen| {
            let keep = *seen >= horizon;
            if !keep {
                changes.insert(k.clone(), None);
            }
            keep
        });
        if self.last.len() >= MAX_SUPPRESSED
            && let Some(oldest) = self
                .last
                .iter()
                .min_by_key(|(_, seen)| **seen)
                .map(|(k, _)| k.clone())
        {
            self.last.remove(&oldest);
            self.changes.insert(oldest, None);
        }
    }

    /// What changed since the last call, to keep in the store.
    pub fn take_changes(&mut self) -> MarkChanges {
        std::mem::take(&mut self.changes)
    }

    /// Pairs remembered for repeats.
    pub fn remembered(&self) -> usize {
        self.last.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn a_repeat_within_the_window_is_suppressed_and_a_restore_keeps_it() {
        let mut s = Suppression::new(300);
        assert_eq!(s.check("port_scan", "src:a", 10 * S, 0), Outcome::Raise);
        assert_eq!(s.check("port_scan", "src:a", 20 * S, 0), Outcome::Repeat);
        assert_eq!(s.check("port_scan", "src:b", 20 * S, 0), Outcome::Raise);
        assert_eq!(s.check("port_scan", "src:a", 311 * S, 0), Outcome::Raise);
        let changes = s.take_changes();
        assert_eq!(changes.len(), 2);
        assert!(s.take_changes().is_empty());

        let mut restarted = Suppression::new(300);
        restarted.restore(
            changes
                .into_iter()
                .filter_map(|((rule, subject), t)| {
                    Some(Mark {
                        rule,
                        subject,
                        time_ns: t?,
                    })
                })
                .collect(),
        );
        assert_eq!(
            restarted.check("port_scan", "src:a", 312 * S, 0),
            Outcome::Repeat
        );
    }

    #[test]
    fn memory_is_bounded_and_forgotten_pairs_are_deleted() {
        let mut s = Suppression::new(1_000_000);
        for i in 0..MAX_SUPPRESSED as u64 + 5 {
            assert_eq!(s.check("r", &format!("s{i}"), i, 0), Outcome::Raise);
        }
        assert_eq!(s.remembered(), MAX_SUPPRESSED);
        let changes = s.take_changes();
        let deleted = changes.values().filter(|t| t.is_none()).count();
        assert_eq!(deleted, 5);
        assert_eq!(changes.get(&("r".into(), "s0".into())), Some(&None));
    }

    #[test]
    fn a_verdict_suppresses_its_pair_for_its_time_and_counts() {
        let mut set = FalsePositives::default();
        set.insert("port_scan", "src:a", "alert-1", 1_000);
        let (tx, rx) = watch::channel(Arc::new(set));
        let counts = Arc::new(VerdictCounts::default());
        let mut s = Suppression::new(0);
        s.follow_verdicts(VerdictFeed {
            set: rx,
            counts: counts.clone(),
        });
        let window = 60 * S;
        assert_eq!(
            s.check("port_scan", "src:a", 30 * S, window),
            Outcome::Verdict
        );
        assert_eq!(
            s.check("port_scan", "src:b", 30 * S, window),
            Outcome::Raise
        );
        assert_eq!(
            s.check("port_scan", "src:a", 62 * S, window),
            Outcome::Raise
        );
        assert_eq!(counts.get("alert-1"), 1);
        tx.send_replace(Arc::default());
        s.refresh();
        assert_eq!(
            s.check("port_scan", "src:a", 30 * S, window),
            Outcome::Raise
        );
    }
}
