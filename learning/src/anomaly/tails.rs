//! Per-column tail probabilities from fixed-bin histograms.
//!
//! A column's value falls in one of `bins` equal bins over [0, 1]; its tail
//! score is `-ln P`, where `P` is the share of training values at least as
//! extreme on the rarer side (two-sided) or above it (right-sided). Counts
//! over fixed bins merge by addition, so sites can pool them exactly.

use serde::{Deserialize, Serialize};

/// Which side of a column is unusual.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// Rare on either side (feature columns).
    Both,
    /// Only large values are rare (reconstruction error).
    Right,
}

/// Histogram counts of every column, plus lookup tables built from them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "TailCounts", try_from = "TailCounts")]
pub struct Tails {
    counts: TailCounts,
    /// `tables[c][b]`: tail score of bin `b` of column `c`.
    tables: Vec<Vec<f32>>,
}

/// The stored part of [`Tails`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TailCounts {
    pub bins: usize,
    pub total: u64,
    pub sides: Vec<Side>,
    /// `counts[c][b]`: training values of column `c` in bin `b`.
    pub counts: Vec<Vec<u64>>,
}

/// The bin of a value in [0, 1] (out-of-range values fall in the edge bins).
pub fn bin(value: f32, bins: usize) -> usize {
    let b = (value * bins as f32).floor();
    if b.is_nan() || b < 0.0 {
        0
    } else {
        (b as usize).min(bins.saturating_sub(1))
    }
}

impl Tails {
    /// Counts `columns` (each a column of training values).
    pub fn fit(columns: &[(Side, Vec<f32>)], bins: usize) -> Tails {
        let bins = bins.max(2);
        let total = columns.first().map_or(0, |(_, v)| v.len() as u64);
        let counts = columns
            .iter()
            .map(|(_, values)| {
                let mut c = vec![0u64; bins];
                for &v in values {
                    c[bin(v, bins)] += 1;
                }
                c
            })
            .collect();
        let sides = columns.iter().map(|(s, _)| *s).collect();
        Tails::build(TailCounts {
            bins,
            total,
            sides,
            counts,
        })
    }

    pub fn columns(&self) -> usize {
        self.tables.len()
    }

    /// Tail score of `value` in column `col` (0 for an unknown column).
    pub fn score(&self, col: usize, value: f32) -> f32 {
        self.tables
            .get(col)
            .map_or(0.0, |t| t[bin(value, self.counts.bins)])
    }

    pub fn counts(&self) -> &TailCounts {
        &self.counts
    }
}

impl TryFrom<TailCounts> for Tails {
    type Error = String;

    /// Checks stored counts before building tables from them.
    fn try_from(counts: TailCounts) -> Result<Tails, String> {
        if counts.bins < 2 {
            return Err(format!("tails: {} bins, need at least 2", counts.bins));
        }
        if counts.sides.len() != counts.counts.len() {
            return Err(format!(
                "tails: {} sides for {} columns",
                counts.sides.len(),
                counts.counts.len()
            ));
        }
        for (col, c) in counts.counts.iter().enumerate() {
            if c.len() != counts.bins {
                return Err(format!(
                    "tails: column {col} has {} bins, expected {}",
                    c.len(),
                    counts.bins
                ));
            }
            let sum = c.iter().try_fold(0u64, |a, &b| a.checked_add(b));
            if sum != Some(counts.total) {
                return Err(format!(
                    "tails: column {col} counts do not add up to the total {}",
                    counts.total
                ));
            }
        }
        Ok(Tails::build(counts))
    }
}

impl Tails {
    fn build(counts: TailCounts) -> Tails {
        let n = counts.total.max(1) as f64;
        let floor = 0.5 / n;
        let tables = counts
            .counts
            .iter()
            .zip(&counts.sides)
            .map(|(c, side)| {
                let mut left = 0u64;
                let mut right: u64 = c.iter().sum();
                c.iter()
                    .map(|&in_bin| {
                        left += in_bin;
                        let p = match side {
                            Side::Both => left.min(right),
                            Side::Right => right,
                        };
                        right -= in_bin;
                        (-(p as f64 / n).max(floor).ln()) as f32
                    })
                    .collect()
            })
            .collect();
        Tails { counts, tables }
    }
}

impl From<Tails> for TailCounts {
    fn from(t: Tails) -> TailCounts {
        t.counts
    }
}

/// Sum of the `k` largest values (all of them when fewer).
pub fn top_k_sum(values: &mut [f32], k: usize) -> f32 {
    let k = k.clamp(1, values.len().max(1));
    if values.len() > k {
        values.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
    }
    values.iter().take(k).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rare_bins_score_high_and_common_bins_low() {
        // 99 zeros and one 1.0, two-sided in column 0, right-sided in 1.
        let mut a = vec![0.0f32; 99];
        a.push(1.0);
        let t = Tails::fit(&[(Side::Both, a.clone()), (Side::Right, a)], 4);
        assert!(t.score(0, 1.0) > 4.0, "{}", t.score(0, 1.0));
        assert!(t.score(0, 0.0) < 0.02);
        // A value never seen on the rare side scores the floor, -ln(0.5/n).
        assert!((t.score(0, 0.6) - t.score(0, 0.9)).abs() < 1e-6);
        // Right-sided: the rare high value scores as on two sides, and a
        // low value is never unusual.
        assert_eq!(t.score(1, 1.0), t.score(0, 1.0));
        assert_eq!(t.score(1, 0.0), 0.0);
        // Two-sided: the common low value is at its own (common) tail.
        assert!((t.score(0, 0.0) - -(0.99f32).ln()).abs() < 1e-6);
        assert_eq!(t.score(7, 0.5), 0.0);
    }

    #[test]
    fn bins_clamp_and_counts_round_trip() {
        assert_eq!(bin(-3.0, 8), 0);
        assert_eq!(bin(f32::NAN, 8), 0);
        assert_eq!(bin(1.0, 8), 7);
        assert_eq!(bin(0.5, 8), 4);
        let t = Tails::fit(&[(Side::Both, vec![0.1, 0.2, 0.9])], 8);
        let json = serde_json::to_string(&t).expect("serialise");
        let back: Tails = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, t);
    }

    #[test]
    fn top_k_sums_the_largest() {
        assert_eq!(top_k_sum(&mut [1.0, 5.0, 3.0, 4.0], 2), 9.0);
        assert_eq!(top_k_sum(&mut [1.0, 2.0], 5), 3.0);
        assert_eq!(top_k_sum(&mut [], 3), 0.0);
    }
}
