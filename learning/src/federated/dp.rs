//! Differential privacy of updates: each site clips its update (the change
//! from the base model) to an L2 norm and adds Gaussian noise before
//! sending it, so the update reveals little about any one site's data.
//!
//! The guarantee is per site and per round (the whole update of a site is
//! the protected unit, sensitivity = the clip norm). [`Accountant`] tracks
//! it with Rényi DP of the Gaussian mechanism: a round with noise
//! multiplier `z` costs `α / (2 z²)` at order α; rounds add up; the (ε, δ)
//! reported is the best conversion over a grid of orders.
//!
//! The guarantee needs noise no one else can reproduce: a node draws it
//! from a generator seeded by the operating system ([`NoiseSource::Os`]).
//! Seeded noise ([`NoiseSource::Seeded`]) is for evaluations that must
//! replay, and protects nothing.

use rand::SeedableRng;
use rand::rngs::{StdRng, SysRng};
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

/// Clipping and noise settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DpConfig {
    /// Largest L2 norm of an update.
    pub clip: f64,
    /// Noise standard deviation as a multiple of `clip`.
    pub noise_multiplier: f64,
    pub delta: f64,
}

impl DpConfig {
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !(self.clip > 0.0 && self.clip.is_finite()) {
            out.push("clip must be positive".into());
        }
        if !(self.noise_multiplier > 0.0 && self.noise_multiplier.is_finite()) {
            out.push("noise_multiplier must be positive".into());
        }
        if !(self.delta > 0.0 && self.delta < 1.0) {
            out.push("delta must be in (0, 1)".into());
        }
        out
    }
}

/// Scales `delta` down to L2 norm `clip` when it is longer; returns the
/// norm it had.
pub fn clip(delta: &mut [f32], clip: f64) -> f64 {
    let norm = delta
        .iter()
        .map(|&v| f64::from(v).powi(2))
        .sum::<f64>()
        .sqrt();
    if norm > clip && norm > 0.0 {
        let s = (clip / norm) as f32;
        for v in delta.iter_mut() {
            *v *= s;
        }
    }
    norm
}

/// Where a site's noise comes from.
///
/// Only [`NoiseSource::Os`] gives the (ε, δ) of the [`Accountant`]: noise
/// that anyone can regenerate can be subtracted, and then the update is
/// the clipped change itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoiseSource {
    /// A ChaCha generator seeded from the operating system for every
    /// update: no one else can draw the same noise. Nodes use this.
    Os,
    /// A generator seeded with this value, so an evaluation replays
    /// exactly. Whoever knows the seed can remove the noise: NOT private.
    Seeded(u64),
}

/// Why noise could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum NoiseError {
    #[error(
        "cannot seed the noise generator from the operating system ({0}); the update is not sent without noise"
    )]
    Os(#[source] rand::rngs::SysError),
    #[error(
        "noise standard deviation {0} is not a finite non-negative number; check clip and noise_multiplier"
    )]
    Sigma(f64),
}

/// Adds N(0, σ²) to every value, drawn from `source`.
pub fn add_noise(values: &mut [f32], sigma: f64, source: NoiseSource) -> Result<(), NoiseError> {
    if !(sigma.is_finite() && sigma >= 0.0) {
        return Err(NoiseError::Sigma(sigma));
    }
    let normal = Normal::new(0.0, sigma).map_err(|_| NoiseError::Sigma(sigma))?;
    let mut rng = match source {
        NoiseSource::Os => StdRng::try_from_rng(&mut SysRng).map_err(NoiseError::Os)?,
        NoiseSource::Seeded(seed) => StdRng::seed_from_u64(seed),
    };
    for v in values.iter_mut() {
        *v += normal.sample(&mut rng) as f32;
    }
    Ok(())
}

/// Clips `delta` to `config.clip` and adds noise of standard deviation
/// `clip × noise_multiplier` from `source`; returns the norm it had.
pub fn privatize(
    delta: &mut [f32],
    config: &DpConfig,
    source: NoiseSource,
) -> Result<f64, NoiseError> {
    let norm = clip(delta, config.clip);
    add_noise(delta, config.clip * config.noise_multiplier, source)?;
    Ok(norm)
}

/// The privacy spent so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Accountant {
    /// Noise multiplier of each round taken.
    rounds: Vec<f64>,
}

/// Rényi orders the conversion to (ε, δ) searches.
const ORDERS: [f64; 17] = [
    1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0, 16.0, 20.0, 32.0, 64.0, 128.0,
];

impl Accountant {
    /// Records one round with noise multiplier `z`.
    pub fn spend(&mut self, z: f64) {
        self.rounds.push(z);
    }

    pub fn rounds(&self) -> usize {
        self.rounds.len()
    }

    /// ε at `delta` for everything spent.
    pub fn epsilon(&self, delta: f64) -> f64 {
        epsilon_of(&self.rounds, delta)
    }

    /// ε at `delta` of one round with noise multiplier `z`.
    pub fn round_epsilon(z: f64, delta: f64) -> f64 {
        epsilon_of(&[z], delta)
    }
}

fn epsilon_of(rounds: &[f64], delta: f64) -> f64 {
    if rounds.is_empty() {
        return 0.0;
    }
    ORDERS
        .iter()
        .map(|&a| {
            let rdp: f64 = rounds.iter().map(|z| a / (2.0 * z * z)).sum();
            rdp + (1.0 / delta).ln() / (a - 1.0)
        })
        .fold(f64::INFINITY, f64::min)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::federated::tests::correlation;

    #[test]
    fn clipping_bounds_the_norm_and_keeps_the_direction() {
        let mut v = vec![3.0f32, 4.0];
        assert_eq!(clip(&mut v, 1.0), 5.0);
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
        let mut short = vec![0.1f32, 0.1];
        clip(&mut short, 1.0);
        assert_eq!(short, vec![0.1, 0.1]);
    }

    fn noise(len: usize, sigma: f64, source: NoiseSource) -> Vec<f32> {
        let mut v = vec![0f32; len];
        add_noise(&mut v, sigma, source).expect("noise drawn");
        v
    }

    #[test]
    fn os_noise_has_the_asked_spread() {
        let a = noise(20_000, 2.0, NoiseSource::Os);
        let n = a.len() as f64;
        let mean = a.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        let sd = (a
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / n)
            .sqrt();
        // Standard errors: 0.014 for the mean, 0.01 for the deviation.
        assert!(mean.abs() < 0.1, "{mean}");
        assert!((sd - 2.0).abs() < 0.08, "{sd}");
    }

    #[test]
    fn os_noise_differs_between_identical_calls() {
        let (a, b) = (
            noise(5_000, 1.0, NoiseSource::Os),
            noise(5_000, 1.0, NoiseSource::Os),
        );
        assert_ne!(a, b);
        // Independent draws: correlation near 0 (standard error 0.014).
        assert!(correlation(&a, &b).abs() < 0.1);
    }

    #[test]
    fn seeded_noise_replays_its_seed() {
        let a = noise(1_000, 1.0, NoiseSource::Seeded(9));
        assert_eq!(a, noise(1_000, 1.0, NoiseSource::Seeded(9)));
        assert_ne!(a, noise(1_000, 1.0, NoiseSource::Seeded(10)));
    }

    #[test]
    fn a_bad_deviation_is_an_error_and_leaves_the_values() {
        let mut v = vec![1f32; 4];
        let err = add_noise(&mut v, f64::NAN, NoiseSource::Os).expect_err("refused");
        assert!(matches!(err, NoiseError::Sigma(_)), "{err}");
        assert_eq!(v, vec![1f32; 4]);
    }

    #[test]
    fn privatize_clips_then_adds_noise() {
        let cfg = DpConfig {
            clip: 1.0,
            noise_multiplier: 1e-3,
            delta: 1e-5,
        };
        let mut v = vec![30.0f32, 40.0];
        let norm = privatize(&mut v, &cfg, NoiseSource::Os).expect("privatized");
        assert_eq!(norm, 50.0);
        assert!(
            (v[0] - 0.6).abs() < 0.02 && (v[1] - 0.8).abs() < 0.02,
            "{v:?}"
        );
    }

    #[test]
    fn privacy_adds_up_over_rounds() {
        let one = Accountant::round_epsilon(1.0, 1e-5);
        let mut acc = Accountant::default();
        for _ in 0..10 {
            acc.spend(1.0);
        }
        let ten = acc.epsilon(1e-5);
        assert!(ten > one && ten < 10.0 * one, "{one} {ten}");
        // More noise, less spent.
        assert!(Accountant::round_epsilon(4.0, 1e-5) < one);
    }
}
