//! Active learning: which unlabelled alerts an analyst should judge next,
//! so that few verdicts teach the head much.
//!
//! - While the head is not in force (too few verdicts of a class), the
//!   alerts ranked highest by the unsupervised score come first: they are
//!   what an analyst sees first anyway, and they hold both the attacks and
//!   the rare normal windows that score like attacks.
//! - Once it is in force, uncertainty sampling: the alerts whose
//!   probability of being an attack is nearest 0.5 (the head's decision
//!   boundary).
//! - Either way with diversity: from a shortlist of `3 × k` candidates,
//!   each next pick maximises its merit times its distance (in feature
//!   space) to the nearest alert already picked, so one burst of
//!   near-identical windows does not take every slot.
//!
//! Pure and deterministic: ties go to the lower id.

/// An unlabelled alert the learner may ask about.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate<'a> {
    /// The caller's id of the alert.
    pub id: usize,
    /// The unsupervised score input ([`crate::head::score_input`]).
    pub score: f32,
    /// The head's probability that it is an attack, when the head is in
    /// force; None before.
    pub probability: Option<f64>,
    pub features: &'a [f32],
}

impl Candidate<'_> {
    /// How much a verdict on it would teach, in [0, 1] for an uncertainty.
    fn merit(&self) -> f64 {
        match self.probability {
            Some(p) if p.is_finite() => 1.0 - (2.0 * p - 1.0).abs(),
            Some(_) => 0.0,
            None => f64::from(self.score),
        }
    }
}

/// Shortlist size per requested verdict.
const SHORTLIST: usize = 3;

/// The ids of up to `k` candidates to ask an analyst about, in the order
/// to ask.
pub fn choose(candidates: &[Candidate<'_>], k: usize) -> Vec<usize> {
    if k == 0 || candidates.is_empty() {
        return Vec::new();
    }
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by(|&a, &b| {
        let (ca, cb) = (&candidates[a], &candidates[b]);
        cb.merit().total_cmp(&ca.merit()).then(ca.id.cmp(&cb.id))
    });
    order.truncate(k.saturating_mul(SHORTLIST));
    // Merit as a positive weight: scores are shifted so the lowest on the
    // shortlist still counts.
    let lowest = order
        .iter()
        .map(|&i| candidates[i].merit())
        .fold(f64::INFINITY, f64::min);
    let weight = |i: usize| candidates[i].merit() - lowest + 1e-3;
    let mut nearest = vec![f64::INFINITY; order.len()];
    let mut taken = vec![false; order.len()];
    let mut picked = Vec::with_capacity(k.min(order.len()));
    for _ in 0..k.min(order.len()) {
        let mut best: Option<(usize, f64)> = None;
        for (slot, &i) in order.iter().enumerate() {
            if taken[slot] {
                continue;
            }
            let value = if nearest[slot].is_finite() {
                weight(i) * nearest[slot]
            } else {
                weight(i)
            };
            if best.is_none_or(|(_, v)| value > v) {
                best = Some((slot, value));
            }
        }
        let Some((slot, _)) = best else { break };
        taken[slot] = true;
        let chosen = &candidates[order[slot]];
        picked.push(chosen.id);
        for (s, &i) in order.iter().enumerate() {
            if !taken[s] {
                nearest[s] = nearest[s].min(distance(chosen, &candidates[i]));
            }
        }
    }
    picked
}

fn distance(a: &Candidate<'_>, b: &Candidate<'_>) -> f64 {
    let features: f64 = a
        .features
        .iter()
        .zip(b.features)
        .map(|(x, y)| f64::from(x - y).powi(2))
        .sum();
    (features + f64::from(a.score - b.score).powi(2)).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(id: usize, score: f32, p: Option<f64>, f: &[f32]) -> Candidate<'_> {
        Candidate {
            id,
            score,
            probability: p,
            features: f,
        }
    }

    #[test]
    fn before_the_head_the_top_alerts_come_first() {
        let f = [[0.0f32], [1.0], [0.5], [0.2]];
        let c: Vec<Candidate> = (0..4)
            .map(|i| cand(i, [1.0, 4.0, 3.0, 0.5][i], None, &f[i]))
            .collect();
        assert_eq!(choose(&c, 1), [1]);
        assert_eq!(choose(&c, 2)[0], 1);
        assert_eq!(choose(&c, 9).len(), 4, "never more than offered");
        assert!(choose(&c, 0).is_empty());
    }

    #[test]
    fn uncertainty_near_the_boundary_with_diversity() {
        // Three near-identical uncertain alerts, one a little less
        // uncertain far away, and sure ones.
        let f = [
            [0.0f32, 0.0],
            [0.0, 0.01],
            [0.01, 0.0],
            [1.0, 1.0],
            [0.5, 0.5],
            [0.9, 0.1],
        ];
        let p = [0.5, 0.51, 0.49, 0.4, 0.99, 0.01];
        let c: Vec<Candidate> = (0..6)
            .map(|i| cand(10 + i, 1.0, Some(p[i]), &f[i]))
            .collect();
        let two = choose(&c, 2);
        assert_eq!(two[0], 10, "the most uncertain first");
        assert_eq!(two[1], 13, "then the distinct one, not a near twin");
        // Deterministic.
        assert_eq!(choose(&c, 4), choose(&c, 4));
    }
}
