//! Federated training of the anomaly model: each site trains the round's
//! base model on its own windows and sends only an update; an aggregator
//! combines the updates into the next version. No row ever leaves a site.
//!
//! - [`aggregate`]: the rules (FedAvg, median, trimmed mean, Krum,
//!   Multi-Krum) over flat vectors;
//! - [`dp`]: clipping, Gaussian noise and the privacy accountant;
//! - [`round`]: a round's collector (who may send, until when, how many are
//!   needed), pure;
//! - here: what an update of the anomaly model is ([`SiteUpdate`]), how a
//!   site makes one ([`local_update`]) and how updates become a model
//!   ([`combine`]).
//!
//! An update is one vector: the networks' parameters, their per-feature
//! training errors, the per-column histogram frequencies and the site's
//! score quantiles, all computed on the site's data after its local
//! training. The rule combines the whole vector, so a robust rule also
//! protects the histograms and the calibration; frequencies are turned back
//! into counts over the summed sample count.

pub mod aggregate;
pub mod dp;
pub mod round;

use serde::{Deserialize, Serialize};

use crate::anomaly::{AnomalyModel, ModelError, TailCounts, TrainError};
pub use aggregate::{AggregateError, Rule, Weighted, aggregate, fedavg_weights};
pub use dp::{Accountant, DpConfig, NoiseError, NoiseSource};

/// What one site sends for a round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteUpdate {
    pub round: u64,
    /// Rows the site trained on.
    pub samples: u64,
    /// Parameters, errors, frequencies and calibration, in the layout of
    /// [`layout`].
    pub vector: Vec<f32>,
    /// L2 norm of the change from the base before clipping.
    pub delta_norm: f64,
}

/// Lengths of the parts of an update vector of `base`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub network: usize,
    pub bins: usize,
    pub columns: usize,
    pub calibration: usize,
}

impl Layout {
    pub fn len(&self) -> usize {
        self.network + self.bins * self.columns + self.calibration
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub fn layout(base: &AnomalyModel) -> Layout {
    let (network, tails, calibration) = base.federated_parts();
    Layout {
        network: network.len(),
        bins: tails.bins,
        columns: tails.counts.len(),
        calibration: calibration.len(),
    }
}

/// A model as one update vector (frequencies instead of counts).
pub fn flatten(model: &AnomalyModel) -> Vec<f32> {
    let (mut v, tails, calibration) = model.federated_parts();
    let total = tails.total.max(1) as f64;
    for col in &tails.counts {
        v.extend(col.iter().map(|&c| (c as f64 / total) as f32));
    }
    v.extend(calibration.iter().map(|&c| c as f32));
    v
}

#[derive(Debug, thiserror::Error)]
pub enum FederatedError {
    #[error(transparent)]
    Train(#[from] TrainError),
    #[error(transparent)]
    Aggregate(#[from] AggregateError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Noise(#[from] NoiseError),
    #[error("{0}")]
    Invalid(String),
}

/// Differential privacy of one site's update: the settings, and where its
/// noise comes from (nodes: [`NoiseSource::Os`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SiteDp {
    pub config: DpConfig,
    pub noise: NoiseSource,
}

/// One site's step: trains `base` on `rows` for `epochs` (the training
/// shuffled and initialised by `seed`), and returns the update, clipped
/// and noised when `dp` is given.
pub fn local_update(
    base: &AnomalyModel,
    round: u64,
    rows: &[&[f32]],
    epochs: usize,
    seed: u64,
    dp: Option<SiteDp>,
) -> Result<SiteUpdate, FederatedError> {
    let local = base.train_from(rows, epochs, seed)?;
    let start = flatten(base);
    let mut vector = flatten(&local);
    let mut delta: Vec<f32> = vector.iter().zip(&start).map(|(v, s)| v - s).collect();
    let delta_norm = match dp {
        Some(SiteDp { config, noise }) => dp::privatize(&mut delta, &config, noise)?,
        None => delta
            .iter()
            .map(|&d| f64::from(d).powi(2))
            .sum::<f64>()
            .sqrt(),
    };
    if dp.is_some() {
        vector = start.iter().zip(&delta).map(|(s, d)| s + d).collect();
    }
    Ok(SiteUpdate {
        round,
        samples: rows.len() as u64,
        vector,
        delta_norm,
    })
}

/// Combines the updates of a round into the next version of `base`.
pub fn combine(
    base: &AnomalyModel,
    updates: &[SiteUpdate],
    rule: Rule,
) -> Result<AnomalyModel, FederatedError> {
    let shape = layout(base);
    for (i, u) in updates.iter().enumerate() {
        if u.vector.len() != shape.len() {
            return Err(FederatedError::Invalid(format!(
                "update {i} has {} values, the model takes {}",
                u.vector.len(),
                shape.len()
            )));
        }
    }
    let weighted: Vec<Weighted> = updates
        .iter()
        .map(|u| Weighted {
            values: u.vector.clone(),
            samples: u.samples,
        })
        .collect();
    let combined = aggregate(rule, &weighted)?;
    let (network, rest) = combined.split_at(shape.network);
    let (freqs, calibration) = rest.split_at(shape.bins * shape.columns);
    let total: u64 = updates.iter().map(|u| u.samples).sum();
    let (_, base_tails, _) = base.federated_parts();
    let tails = TailCounts {
        bins: shape.bins,
        total,
        sides: base_tails.sides.clone(),
        counts: freqs
            .chunks(shape.bins.max(1))
            .map(|f| counts_of(f, total))
            .collect(),
    };
    let calibration = calibration.iter().map(|&c| f64::from(c)).collect();
    Ok(base.with_federated_parts(network, tails, calibration, total)?)
}

/// Frequencies (possibly noised) as whole counts that sum to `total`
/// (largest remainders get the rounding).
fn counts_of(freqs: &[f32], total: u64) -> Vec<u64> {
    let clean: Vec<f64> = freqs.iter().map(|&f| f64::from(f).max(0.0)).collect();
    let sum: f64 = clean.iter().sum();
    if sum <= 0.0 || total == 0 {
        let mut c = vec![0; freqs.len()];
        if let Some(first) = c.first_mut() {
            *first = total;
        }
        return c;
    }
    let exact: Vec<f64> = clean.iter().map(|f| f / sum * total as f64).collect();
    let mut counts: Vec<u64> = exact.iter().map(|e| e.floor() as u64).collect();
    let short = total - counts.iter().sum::<u64>();
    let mut order: Vec<usize> = (0..exact.len()).collect();
    order.sort_by(|&a, &b| (exact[b] - exact[b].floor()).total_cmp(&(exact[a] - exact[a].floor())));
    for &i in order.iter().take(short as usize) {
        counts[i] += 1;
    }
    counts
}

#[cfg(test)]
mod tests;
