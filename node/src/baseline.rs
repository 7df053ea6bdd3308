//! Which replayed windows a model may learn from.
//!
//! Training replays the stored events of the baseline period
//! ([`crate::models`]); this filter replays the same events through the rule
//! engine beside the feature extractor, and leaves out of the baseline:
//! - every window whose subject a rule fired on during it (the scanner's
//!   source window, a flagged process);
//! - every source window while a network attack is under way: from a
//!   network rule's finding (scan, flood, brute force, IOC traffic) until
//!   the rule's `window_secs` after it, during which that rule does not
//!   fire again on the same key. A flood from thousands of spoofed sources
//!   names only its destination, and its thousands of one-SYN source
//!   windows would otherwise make the ordinary traffic look rare.
//!
//! - copies beyond [`MAX_ALIKE`] of one feature vector among the windows of
//!   one kind closing at the same time: a flood from spoofed sources that no
//!   rule named (below every threshold, or rules off) still makes thousands
//!   of identical one-packet windows a minute, while ordinary traffic
//!   repeats itself across minutes, not across thousands of entities at once.
//!
//! Time is the events' time; memory is bounded by the rule engine's own
//! bounds plus the findings of the two most recent windows and the vectors
//! of the current one.

use std::collections::{HashMap, HashSet, VecDeque};

use amoskys_learning::features::{EntityKind, FeatureWindow};
use amoskys_learning::{Category, RuleEngine, RulePolicy, Subject};
use amoskys_sensors::Event;

/// Most (subject, window) pairs remembered; beyond, the oldest window's go.
const MAX_FLAGGED: usize = 100_000;
/// Windows of one kind with one feature vector kept per window time.
pub const MAX_ALIKE: u32 = 16;

/// Decides, window by window, what a baseline keeps.
#[derive(Debug)]
pub struct BaselineFilter {
    engine: RuleEngine,
    width_ns: u64,
    hold_ns: u64,
    /// Attack periods, sorted and merged: [from, until).
    attacks: VecDeque<(u64, u64)>,
    /// Subjects flagged, by window index.
    flagged: HashSet<(Subject, u64)>,
    /// Index of the window last checked.
    current: u64,
    /// Copies of each (kind, feature vector) in the current window.
    alike: HashMap<(EntityKind, Vec<u32>), u32>,
    left_out: HashMap<EntityKind, u64>,
}

impl BaselineFilter {
    /// Replays `policy`'s rules over windows `width_ns` wide.
    pub fn new(policy: RulePolicy, width_ns: u64) -> Self {
        let hold_ns = policy.window_secs.saturating_mul(1_000_000_000);
        Self {
            engine: RuleEngine::new(policy),
            width_ns: width_ns.max(1),
            hold_ns,
            attacks: VecDeque::new(),
            flagged: HashSet::new(),
            current: 0,
            alike: HashMap::new(),
            left_out: HashMap::new(),
        }
    }

    /// Feeds one replayed event to the rules, before the feature extractor
    /// sees it.
    pub fn observe(&mut self, event: &Event) {
        for f in self.engine.observe(event) {
            let index = f.time_ns / self.width_ns;
            if self.flagged.len() >= MAX_FLAGGED {
                let oldest = self.flagged.iter().map(|(_, i)| *i).min();
                self.flagged.retain(|(_, i)| Some(*i) != oldest);
            }
            self.flagged.insert((normal(f.subject), index));
            if network(f.category) {
                self.attack(f.time_ns, f.time_ns.saturating_add(self.hold_ns));
            }
        }
    }

    /// Whether `w` goes into the baseline; counts it when it does not.
    pub fn keeps(&mut self, w: &FeatureWindow) -> bool {
        let index = w.start_ns / self.width_ns;
        if index > self.current {
            // Windows close in time order: older findings no longer matter.
            self.current = index;
            self.flagged.retain(|(_, i)| *i >= index);
            self.alike.clear();
        }
        while self.attacks.front().is_some_and(|a| a.1 <= w.start_ns) {
            self.attacks.pop_front();
        }
        let flagged = self.flagged.contains(&(normal(w.subject.clone()), index));
        let attacked = w.kind == EntityKind::Source
            && self
                .attacks
                .iter()
                .any(|&(from, until)| from < w.end_ns && until > w.start_ns);
        let copies = if flagged || attacked {
            0
        } else {
            let key = (w.kind, w.values.iter().map(|v| v.to_bits()).collect());
            let n = self.alike.entry(key).or_default();
            *n += 1;
            *n
        };
        if flagged || attacked || copies > MAX_ALIKE {
            *self.left_out.entry(w.kind).or_default() += 1;
            return false;
        }
        true
    }

    /// Windows of `kind` left out so far.
    pub fn left_out(&self, kind: EntityKind) -> u64 {
        self.left_out.get(&kind).copied().unwrap_or(0)
    }

    fn attack(&mut self, from: u64, until: u64) {
        match self.attacks.back_mut() {
            Some(last) if from <= last.1 => last.1 = last.1.max(until),
            _ => self.attacks.push_back((from, until)),
        }
    }
}

/// Findings from flow records: traffic of an attack.
fn network(c: Category) -> bool {
    matches!(
        c,
        Category::Reconnaissance
            | Category::Impact
            | Category::CredentialAccess
            | Category::CommandAndControl
    )
}

/// Process windows carry no pid.
fn normal(s: Subject) -> Subject {
    match s {
        Subject::Process { exe, .. } => Subject::Process { pid: 0, exe },
        other => other,
    }
}
