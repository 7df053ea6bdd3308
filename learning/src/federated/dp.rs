//! Differential privacy of updates: each site clips its update (the change
//! from the base model) to an L2 norm and adds Gaussian noise before
//! sending it, so the update reveals little about any one site's data.
//!
//! The guarantee is per site and per round (the whole update of a site is
//! the protected unit, sensitivity = the clip norm). [`Accountant`] tracks
//! it with Rényi DP of the Gaussian mechanism: a round with noise
//! multiplier `z` costs `α / (2 z²)` at order α; rounds add up; the (ε, δ)
//! reported is the best conversion over a grid of orders.

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

/// Adds N(0, σ²) to every value, from a seeded generator (xorshift and
/// Box–Muller), so a site can replay its own noise.
pub fn add_noise(values: &mut [f32], sigma: f64, seed: u64) {
    let mut state = seed.max(1);
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        // In (0, 1]: never 0, so the logarithm is finite.
        ((state >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    };
    let mut spare: Option<f64> = None;
    for v in values.iter_mut() {
        let g = match spare.take() {
            Some(g) => g,
            None => {
                let (u1, u2) = (uniform(), uniform());
                let r = (-2.0 * u1.ln()).sqrt();
                let t = std::f64::consts::TAU * u2;
                spare = Some(r * t.sin());
                r * t.cos()
            }
        };
        *v += (g * sigma) as f32;
    }
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

    #[test]
    fn clipping_bounds_the_norm_and_keeps_the_direction() {
        let mut v = vec![3.0f32, 4.0];
        assert_eq!(clip(&mut v, 1.0), 5.0);
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
        let mut short = vec![0.1f32, 0.1];
        clip(&mut short, 1.0);
        assert_eq!(short, vec![0.1, 0.1]);
    }

    #[test]
    fn noise_has_the_asked_spread_and_replays() {
        let mut a = vec![0f32; 20_000];
        add_noise(&mut a, 2.0, 9);
        let mean = a.iter().map(|&x| f64::from(x)).sum::<f64>() / a.len() as f64;
        let var = a
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / a.len() as f64;
        assert!(mean.abs() < 0.05, "{mean}");
        assert!((var.sqrt() - 2.0).abs() < 0.05, "{}", var.sqrt());
        let mut b = vec![0f32; 20_000];
        add_noise(&mut b, 2.0, 9);
        assert_eq!(a, b);
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
