//! Choosing a site's detector from its own unlabelled rows: the
//! Mass-Volume criterion (Goix, "How to evaluate the quality of
//! unsupervised anomaly detection algorithms?", 2016).
//!
//! A good scorer puts most of the data (mass α) in the smallest region of
//! the space. For each candidate, the region holding α of the training rows
//! is the set scoring at most the training scores' α-quantile; its volume is
//! estimated by uniform points in the unit cube. The criterion is the mean
//! volume over α in 0.90..=0.99; the smallest wins. In many dimensions every
//! such volume is near zero, so (as the paper advises) each estimate is made
//! on random subsets of 5 columns, averaged over repeats. No label is read.

use rand::rngs::StdRng;
use rand::seq::index::sample;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use super::forest::Forest;
use super::tails::{Side, Tails, top_k_sum};

/// A detector the node can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Detector {
    /// The sum of the `top_k` largest per-column tail scores.
    Tails { top_k: usize },
    /// The isolation forest.
    Forest,
}

impl std::fmt::Display for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Detector::Tails { top_k } if *top_k >= ALL => write!(f, "tails (all columns)"),
            Detector::Tails { top_k } => write!(f, "tails (top {top_k})"),
            Detector::Forest => write!(f, "isolation forest"),
        }
    }
}

/// `top_k` meaning every column.
pub const ALL: usize = 1 << 20;
/// The candidates, in the order ties are broken.
pub const CANDIDATES: [Detector; 5] = [
    Detector::Tails { top_k: 1 },
    Detector::Tails { top_k: 3 },
    Detector::Tails { top_k: 5 },
    Detector::Tails { top_k: ALL },
    Detector::Forest,
];
/// Columns per subset, subsets, uniform points per subset, and the rows
/// (at most) each estimate fits on.
const SUBSET: usize = 5;
const REPEATS: usize = 10;
const UNIFORM: usize = 5_000;
const ROWS: usize = 8_192;
/// Trees of the forests fitted for the estimate.
const TREES: usize = 50;

/// What was chosen, and every candidate's criterion (lower is better).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selection {
    pub chosen: Detector,
    pub mass_volume: Vec<(Detector, f64)>,
}

/// Mean share of `uniform` scores at or below the training scores'
/// α-quantile, α in 0.90..=0.99.
fn mass_volume(train: &mut [f64], uniform: &[f64]) -> f64 {
    train.sort_by(f64::total_cmp);
    (90u8..=99)
        .map(|a| f64::from(a) / 100.0)
        .map(|a| {
            let t = crate::eval::quantile(train, a).unwrap_or(f64::INFINITY);
            uniform.iter().filter(|s| **s <= t).count() as f64 / uniform.len().max(1) as f64
        })
        .sum::<f64>()
        / 10.0
}

/// Picks the candidate with the smallest Mass-Volume criterion on `rows`
/// (columns in [0, 1]).
pub fn select(rows: &[&[f32]], bins: usize, seed: u64) -> Selection {
    let mut rng = StdRng::seed_from_u64(seed);
    let width = rows.first().map_or(0, |r| r.len());
    let sub = width.min(SUBSET);
    let mut sums = [0.0f64; CANDIDATES.len()];
    for repeat in 0..REPEATS {
        if sub == 0 || rows.is_empty() {
            break;
        }
        let cols = sample(&mut rng, width, sub).into_vec();
        let picked = sample(&mut rng, rows.len(), rows.len().min(ROWS));
        let train: Vec<Vec<f32>> = picked
            .iter()
            .map(|i| cols.iter().map(|&c| rows[i][c]).collect())
            .collect();
        let uniform: Vec<Vec<f32>> = (0..UNIFORM)
            .map(|_| (0..sub).map(|_| rng.random::<f32>()).collect())
            .collect();
        let columns: Vec<(Side, Vec<f32>)> = (0..sub)
            .map(|j| (Side::Both, train.iter().map(|r| r[j]).collect()))
            .collect();
        let tails = Tails::fit(&columns, bins);
        let cells = |r: &Vec<f32>| -> Vec<f32> {
            r.iter()
                .enumerate()
                .map(|(j, v)| tails.score(j, *v))
                .collect()
        };
        let train_cells: Vec<Vec<f32>> = train.iter().map(cells).collect();
        let uniform_cells: Vec<Vec<f32>> = uniform.iter().map(cells).collect();
        let refs: Vec<&[f32]> = train.iter().map(Vec::as_slice).collect();
        let forest = Forest::fit(&refs, TREES, seed.wrapping_add(repeat as u64));
        for (i, candidate) in CANDIDATES.iter().enumerate() {
            let score = |row: &Vec<f32>, cells: &Vec<f32>| -> f64 {
                match candidate {
                    Detector::Tails { top_k } => f64::from(top_k_sum(&mut cells.clone(), *top_k)),
                    Detector::Forest => f64::from(forest.score(row)),
                }
            };
            let mut t: Vec<f64> = train
                .iter()
                .zip(&train_cells)
                .map(|(r, c)| score(r, c))
                .collect();
            let u: Vec<f64> = uniform
                .iter()
                .zip(&uniform_cells)
                .map(|(r, c)| score(r, c))
                .collect();
            sums[i] += mass_volume(&mut t, &u);
        }
    }
    let mass_volume: Vec<(Detector, f64)> = CANDIDATES
        .iter()
        .zip(sums)
        .map(|(c, s)| (*c, s / REPEATS as f64))
        .collect();
    let chosen = mass_volume
        .iter()
        .fold(None::<(Detector, f64)>, |best, &(c, v)| match best {
            Some((_, b)) if b <= v => best,
            _ => Some((c, v)),
        })
        .map_or(CANDIDATES[2], |(c, _)| c);
    Selection {
        chosen,
        mass_volume,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_band_across_columns_picks_the_forest() {
        // Every column alone is uniform; the data lie on the diagonal.
        // Tails see a full cube, the forest sees the band.
        let rows: Vec<Vec<f32>> = (0..2000)
            .map(|i| {
                let x = (i % 997) as f32 / 997.0;
                (0..4).map(|j| (x + j as f32 * 0.001).min(1.0)).collect()
            })
            .collect();
        let refs: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
        let s = select(&refs, 64, 3);
        assert_eq!(s.chosen, Detector::Forest, "{:?}", s.mass_volume);
        assert_eq!(s.mass_volume.len(), CANDIDATES.len());
    }

    #[test]
    fn narrow_columns_pick_tails() {
        // Each column concentrated near 0.5: tails' region is a small box.
        let rows: Vec<Vec<f32>> = (0..2000)
            .map(|i| {
                (0..6)
                    .map(|j| 0.5 + (((i * 7 + j * 13) % 101) as f32 - 50.0) * 0.0005)
                    .collect()
            })
            .collect();
        let refs: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
        let s = select(&refs, 128, 3);
        assert!(
            matches!(s.chosen, Detector::Tails { .. }),
            "{:?}",
            s.mass_volume
        );
        assert_eq!(select(&refs, 128, 3), s, "seeded");
    }
}
