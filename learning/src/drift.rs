//! Drift of a model's live scores away from its training scores: the
//! population stability index (PSI) over bins cut at the training-score
//! deciles, on a bounded sliding window of recent live scores, and drift
//! episodes with hysteresis (one start per episode).
//!
//! `PSI = Σ (live_i − train_i) · ln(live_i / train_i)` over the bins' shares.
//! Below 0.1 is usually read as stable, above 0.25 as a significant shift.
//! Pure: scores and times in, statistics and episode starts out.

use std::collections::VecDeque;

/// Bins of the statistic: the deciles of the training scores.
pub const BINS: usize = 10;
/// Floor of a share in the statistic, so an empty bin counts as rare, not
/// impossible (its term is then at most about `ln(1e4)` ≈ 9.2).
const FLOOR: f64 = 1e-4;
/// An episode ends when the statistic falls below this share of the
/// threshold, so noise around the threshold does not start new ones.
pub const END_RATIO: f64 = 0.5;

/// PSI between two share vectors of equal length (each summing to 1).
pub fn psi(train: &[f64], live: &[f64]) -> f64 {
    train
        .iter()
        .zip(live)
        .map(|(t, l)| {
            let (t, l) = (t.max(FLOOR), l.max(FLOOR));
            (l - t) * (l / t).ln()
        })
        .sum()
}

/// The training side: bin edges and the share of training scores in each
/// bin. Bin `i` holds the scores `s` with `edges[i-1] <= s < edges[i]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    edges: Vec<f64>,
    shares: Vec<f64>,
}

impl Reference {
    /// From the edges (deduplicated and sorted here) and the training
    /// scores' distribution function `below(x)`: the share of training
    /// scores strictly below `x`, in [0, 1]. Ties in the training scores
    /// merge bins, so a bin is never empty by construction of its edges.
    pub fn new(edges: impl IntoIterator<Item = f64>, below: impl Fn(f64) -> f64) -> Reference {
        let mut edges: Vec<f64> = edges.into_iter().filter(|e| e.is_finite()).collect();
        edges.sort_by(f64::total_cmp);
        edges.dedup();
        let mut shares = Vec::with_capacity(edges.len() + 1);
        let mut prev = 0.0;
        for e in &edges {
            let at = below(*e).clamp(prev, 1.0);
            shares.push(at - prev);
            prev = at;
        }
        shares.push(1.0 - prev);
        Reference { edges, shares }
    }

    /// From training scores, sorted ascending: edges at their deciles.
    pub fn from_sorted(scores: &[f64]) -> Reference {
        if scores.is_empty() {
            return Reference::new([], |_| 0.0);
        }
        let n = scores.len();
        let edges = (1..BINS).map(|i| scores[i * n / BINS]);
        Reference::new(edges, |x| {
            scores.partition_point(|s| *s < x) as f64 / n as f64
        })
    }

    /// The bin of a live score (infinity: the top bin; NaN: none).
    pub fn bin(&self, score: f64) -> Option<usize> {
        if score.is_nan() {
            return None;
        }
        Some(self.edges.partition_point(|e| *e <= score))
    }

    pub fn bins(&self) -> usize {
        self.shares.len()
    }

    pub fn shares(&self) -> &[f64] {
        &self.shares
    }
}

/// What a [`Tracker`] says after a check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Check {
    /// Fewer live windows than the minimum: no statistic yet.
    Warming { windows: usize },
    /// The statistic, no change of episode.
    Steady { psi: f64, windows: usize },
    /// A drift episode starts now: raise it once.
    Started { psi: f64, windows: usize },
    /// The episode that ran ends.
    Ended { psi: f64, windows: usize },
}

/// Live scores of one model against its [`Reference`]: the last `capacity`
/// scores' bins (a ring) and their counts, and whether a drift episode runs.
#[derive(Debug, Clone)]
pub struct Tracker {
    reference: Reference,
    recent: VecDeque<usize>,
    counts: Vec<u64>,
    capacity: usize,
    /// When the running episode started (the time given to the check).
    since_ns: Option<u64>,
    last: Option<f64>,
}

impl Tracker {
    pub fn new(reference: Reference, capacity: usize) -> Tracker {
        let bins = reference.bins();
        Tracker {
            reference,
            recent: VecDeque::with_capacity(capacity.min(1 << 16)),
            counts: vec![0; bins],
            capacity: capacity.max(1),
            since_ns: None,
            last: None,
        }
    }

    /// Adds a live score; the oldest leaves once `capacity` are held.
    pub fn observe(&mut self, score: f64) {
        let Some(bin) = self.reference.bin(score) else {
            return;
        };
        while self.recent.len() >= self.capacity {
            if let Some(old) = self.recent.pop_front() {
                self.counts[old] -= 1;
            }
        }
        self.recent.push_back(bin);
        self.counts[bin] += 1;
    }

    /// Shrinks or grows the sliding window (the policy changed).
    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity.max(1);
        while self.recent.len() > self.capacity {
            if let Some(old) = self.recent.pop_front() {
                self.counts[old] -= 1;
            }
        }
    }

    pub fn windows(&self) -> usize {
        self.recent.len()
    }

    /// The statistic over the live window, once it holds any score.
    pub fn statistic(&self) -> Option<f64> {
        let n = self.recent.len();
        if n == 0 {
            return None;
        }
        let live: Vec<f64> = self.counts.iter().map(|c| *c as f64 / n as f64).collect();
        Some(psi(self.reference.shares(), &live))
    }

    /// The statistic of the last check, if it had one.
    pub fn last(&self) -> Option<f64> {
        self.last
    }

    /// When the running episode started.
    pub fn since_ns(&self) -> Option<u64> {
        self.since_ns
    }

    /// Compares the statistic with `threshold` once `min_windows` scores
    /// are held: an episode starts at or above it and ends below
    /// [`END_RATIO`] of it. `now_ns` is recorded as an episode's start.
    pub fn check(&mut self, threshold: f64, min_windows: usize, now_ns: u64) -> Check {
        let windows = self.windows();
        if windows < min_windows.max(1) {
            return Check::Warming { windows };
        }
        let psi = self.statistic().unwrap_or(0.0);
        self.last = Some(psi);
        match self.since_ns {
            None if psi >= threshold => {
                self.since_ns = Some(now_ns);
                Check::Started { psi, windows }
            }
            Some(_) if psi < threshold * END_RATIO => {
                self.since_ns = None;
                Check::Ended { psi, windows }
            }
            _ => Check::Steady { psi, windows },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scores `0..n` repeated, as a sorted training sample.
    fn uniform(n: usize) -> Vec<f64> {
        (0..n).map(|i| i as f64).collect()
    }

    #[test]
    fn identical_distributions_score_zero_and_a_shift_scores_high() {
        let train = uniform(1000);
        let reference = Reference::from_sorted(&train);
        assert_eq!(reference.bins(), BINS);
        assert!(reference.shares().iter().all(|s| (s - 0.1).abs() < 1e-9));
        let mut same = Tracker::new(reference.clone(), 1000);
        for s in &train {
            same.observe(*s);
        }
        assert!(same.statistic().expect("scores") < 1e-9);
        // Everything in the top decile (nine bins empty): PSI ≈ 8.3.
        let mut shifted = Tracker::new(reference, 1000);
        for i in 0..500 {
            shifted.observe(950.0 + f64::from(i % 50));
        }
        let psi = shifted.statistic().expect("scores");
        assert!(psi > 2.0, "{psi}");
    }

    #[test]
    fn ties_merge_bins_and_an_unseen_region_counts_as_rare() {
        // Half the training windows score exactly 0.
        let mut train = vec![0.0; 500];
        train.extend(uniform(500).iter().map(|s| s + 1.0));
        let reference = Reference::from_sorted(&train);
        assert!(reference.bins() < BINS, "{reference:?}");
        let sum: f64 = reference.shares().iter().sum();
        assert!((sum - 1.0).abs() < 1e-9);
        // The same mixture is stable; all-zero live scores are not.
        let mut t = Tracker::new(reference.clone(), 2000);
        train.iter().for_each(|s| t.observe(*s));
        assert!(t.statistic().expect("scores") < 1e-9);
        let mut zeros = Tracker::new(reference.clone(), 2000);
        (0..500).for_each(|_| zeros.observe(0.0));
        assert!(zeros.statistic().expect("scores") > 0.25);
        // Scores beyond every training score (and infinity) go to the top
        // bin; NaN is ignored.
        assert_eq!(reference.bin(f64::INFINITY), Some(reference.bins() - 1));
        assert_eq!(reference.bin(f64::NAN), None);
    }

    #[test]
    fn one_start_per_episode_with_hysteresis_and_a_bounded_window() {
        let reference = Reference::from_sorted(&uniform(1000));
        let mut t = Tracker::new(reference, 200);
        // Warming until the minimum is held.
        for i in 0..99 {
            t.observe(f64::from(i * 10));
        }
        assert_eq!(t.check(0.25, 100, 1), Check::Warming { windows: 99 });
        // Stable traffic, then a shift: one start, then steady.
        for i in 0..200 {
            t.observe(f64::from(i * 5));
        }
        assert_eq!(t.windows(), 200, "bounded by the capacity");
        assert!(matches!(t.check(0.25, 100, 2), Check::Steady { psi, .. } if psi < 0.1));
        let mut started = 0;
        for i in 0..400u32 {
            t.observe(990.0 + f64::from(i % 10));
            if let Check::Started { .. } = t.check(0.25, 100, 3 + u64::from(i)) {
                started += 1;
            }
        }
        assert_eq!(started, 1);
        let since = t.since_ns().expect("an episode runs");
        // Back to the training distribution: the episode ends once.
        let mut ended = 0;
        for i in 0..400u32 {
            t.observe(f64::from((i * 37) % 1000));
            match t.check(0.25, 100, 1000 + u64::from(i)) {
                Check::Ended { .. } => ended += 1,
                Check::Started { .. } => panic!("a second start"),
                _ => {}
            }
        }
        assert_eq!(ended, 1);
        assert!(since >= 3 && t.since_ns().is_none());
        t.set_capacity(10);
        assert_eq!(t.windows(), 10);
    }

    #[test]
    fn psi_of_known_shares() {
        let a = [0.5, 0.5];
        let b = [0.9, 0.1];
        let expected = 0.4 * (0.9f64 / 0.5).ln() + (-0.4) * (0.1f64 / 0.5).ln();
        assert!((psi(&a, &b) - expected).abs() < 1e-12);
        assert_eq!(psi(&a, &a), 0.0);
    }
}
