//! Ranking metrics for anomaly scores (higher = more anomalous).

/// Area under the ROC curve: the probability that a random positive scores
/// above a random negative, ties counting half (Mann–Whitney U with average
/// ranks). None when one class is empty.
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let n = scores.len().min(labels.len());
    let positives = labels[..n].iter().filter(|&&l| l).count();
    let negatives = n - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        // Ranks i+1 ..= j+1 share their average.
        let average = (i + j + 2) as f64 / 2.0;
        rank_sum += average * order[i..=j].iter().filter(|&&k| labels[k]).count() as f64;
        i = j + 1;
    }
    let p = positives as f64;
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * negatives as f64))
}

/// Area under the precision–recall curve as average precision:
/// Σ (Rₖ − Rₖ₋₁) · Pₖ over score thresholds from high to low, equal scores
/// taken together (the definition scikit-learn uses). None without positives.
pub fn average_precision(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let n = scores.len().min(labels.len());
    let positives = labels[..n].iter().filter(|&&l| l).count();
    if positives == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut seen, mut ap, mut last_recall) = (0usize, 0usize, 0.0, 0.0);
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        tp += order[i..=j].iter().filter(|&&k| labels[k]).count();
        seen += j - i + 1;
        let recall = tp as f64 / positives as f64;
        ap += (recall - last_recall) * (tp as f64 / seen as f64);
        last_recall = recall;
        i = j + 1;
    }
    Some(ap)
}

/// Recall at the score that `fpr` of the normal rows exceed.
pub fn recall_at_fpr(scores: &[f64], labels: &[bool], fpr: f64) -> f64 {
    let normal: Vec<f64> = scores
        .iter()
        .zip(labels)
        .filter(|(_, a)| !**a)
        .map(|(s, _)| *s)
        .collect();
    let Some(cut) = quantile(&normal, 1.0 - fpr) else {
        return f64::NAN;
    };
    let attacks = labels.iter().filter(|a| **a).count();
    let caught = scores
        .iter()
        .zip(labels)
        .filter(|(s, a)| **a && **s > cut)
        .count();
    caught as f64 / attacks.max(1) as f64
}

/// The q-quantile (0 ≤ q ≤ 1) of `values`, linear between order statistics.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    Some(v[lo] + (v[hi] - v[lo]) * (pos - lo as f64))
}

/// Counts at a threshold: a score at or above it is flagged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Confusion {
    pub tp: u64,
    pub fp: u64,
    pub tn: u64,
    pub fn_: u64,
}

impl Confusion {
    pub fn at(scores: &[f64], labels: &[bool], threshold: f64) -> Confusion {
        let mut c = Confusion::default();
        for (&s, &l) in scores.iter().zip(labels) {
            match (s >= threshold, l) {
                (true, true) => c.tp += 1,
                (true, false) => c.fp += 1,
                (false, false) => c.tn += 1,
                (false, true) => c.fn_ += 1,
            }
        }
        c
    }

    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }

    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }

    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }

    /// False-positive rate: flagged negatives over all negatives.
    pub fn fpr(&self) -> f64 {
        ratio(self.fp, self.fp + self.tn)
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn reference_values() {
        // The example of scikit-learn's documentation.
        let labels = [false, false, true, true];
        let scores = [0.1, 0.4, 0.35, 0.8];
        assert!(close(roc_auc(&scores, &labels).expect("auc"), 0.75));
        assert!(close(
            average_precision(&scores, &labels).expect("ap"),
            0.833_333_333_333_333_4
        ));
    }

    #[test]
    fn extremes_and_ties() {
        let labels = [false, false, true, true];
        assert_eq!(roc_auc(&[0.0, 0.1, 0.8, 0.9], &labels), Some(1.0));
        assert_eq!(roc_auc(&[0.9, 0.8, 0.1, 0.0], &labels), Some(0.0));
        assert_eq!(roc_auc(&[0.5; 4], &labels), Some(0.5), "all tied");
        assert_eq!(
            average_precision(&[0.5; 4], &labels),
            Some(0.5),
            "precision of the one group"
        );
        assert_eq!(average_precision(&[0.0, 0.1, 0.8, 0.9], &labels), Some(1.0));
        assert_eq!(roc_auc(&[0.1, 0.2], &[true, true]), None, "one class");
        assert_eq!(average_precision(&[0.1], &[false]), None);
    }

    #[test]
    fn permutation_does_not_change_metrics() {
        let labels = [true, false, false, true, false, false, true, false];
        let scores = [0.9, 0.2, 0.4, 0.4, 0.1, 0.7, 0.8, 0.3];
        let mut idx: Vec<usize> = (0..8).collect();
        idx.reverse();
        let (l2, s2): (Vec<bool>, Vec<f64>) = idx.iter().map(|&i| (labels[i], scores[i])).unzip();
        assert_eq!(roc_auc(&scores, &labels), roc_auc(&s2, &l2));
        assert_eq!(
            average_precision(&scores, &labels),
            average_precision(&s2, &l2)
        );
    }

    #[test]
    fn threshold_counts_and_quantiles() {
        let labels = [true, false, false, true];
        let c = Confusion::at(&[0.9, 0.2, 0.6, 0.4], &labels, 0.5);
        assert_eq!(
            c,
            Confusion {
                tp: 1,
                fp: 1,
                tn: 1,
                fn_: 1
            }
        );
        assert!(close(c.f1(), 0.5) && close(c.fpr(), 0.5));
        assert_eq!(quantile(&[3.0, 1.0, 2.0], 0.5), Some(2.0));
        assert_eq!(quantile(&[0.0, 10.0], 0.95), Some(9.5));
        assert_eq!(quantile(&[], 0.5), None);
    }
}
