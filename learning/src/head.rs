//! The supervised head: what the analysts' verdicts teach. A logistic
//! regression over the unsupervised score and the feature window behind an
//! alert, trained on the site's verdicts (false positive or true positive),
//! re-ranks alerts.
//!
//! - Its input is `[s, x₁ … x_d]`: `s` is the unsupervised score as a log
//!   ratio to the model's alert threshold ([`score_input`]), `x` the
//!   window's features (scaled to [0, 1]).
//! - Its parameters are one flat `f32` vector `[bias, w_s, w₁ … w_d]`, so
//!   heads from several sites combine by any [`Rule`] of
//!   [`crate::federated`] (FedAvg, median, Krum …); only that vector
//!   travels, never a verdict or a window.
//! - The L2 penalty pulls the parameters towards the **prior** head
//!   `[0, prior_slope, 0 … 0]`, whose ranking is exactly the unsupervised
//!   one. With few verdicts the head stays near it, and until
//!   [`HeadConfig::min_per_class`] verdicts of each class exist it is not in
//!   force at all: [`Head::rank`] then returns the unsupervised ranking.
//! - Training is full-batch gradient descent from a base head: no
//!   randomness, so the same verdicts give the same head bit for bit.
//!   Classes are weighted equally (few attacks among many false positives
//!   still count).

use serde::{Deserialize, Serialize};

use crate::federated::{AggregateError, Rule, Weighted, aggregate};

/// Bounds of the score input (a log ratio to the threshold).
const SCORE_INPUT_CLIP: f32 = 6.0;

/// How a head learns and when it is in force.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeadConfig {
    /// Strength of the pull towards the prior head (per mean example).
    pub l2: f64,
    /// Gradient steps of one training run.
    pub steps: usize,
    pub learning_rate: f64,
    /// Weight of the score input in the prior head.
    pub prior_slope: f32,
    /// Verdicts of each class (false and true positives, summed over the
    /// sites that trained the head) before the head re-ranks anything.
    pub min_per_class: u64,
}

impl Default for HeadConfig {
    fn default() -> Self {
        Self {
            l2: 0.05,
            steps: 400,
            learning_rate: 0.5,
            prior_slope: 2.0,
            min_per_class: 10,
        }
    }
}

impl HeadConfig {
    /// Problems with these settings, each naming its field.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !(self.l2 >= 0.0 && self.l2.is_finite()) {
            out.push("l2 must be a finite number ≥ 0".to_owned());
        }
        if !(1..=100_000).contains(&self.steps) {
            out.push("steps must be 1..=100000".to_owned());
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            out.push("learning_rate must be positive".to_owned());
        }
        if !(self.prior_slope > 0.0 && self.prior_slope.is_finite()) {
            out.push("prior_slope must be positive".to_owned());
        }
        if self.min_per_class < 1 {
            out.push("min_per_class must be at least 1".to_owned());
        }
        out
    }
}

/// The unsupervised score as the head's input: `ln(score / threshold)`,
/// clipped to ±6 (0 at the alert threshold; a non-finite score is the top).
pub fn score_input(score: f64, threshold: f64) -> f32 {
    let eps = 1e-6;
    if score.is_nan() {
        return SCORE_INPUT_CLIP;
    }
    let r = ((score.max(0.0) + eps) / (threshold.max(0.0) + eps)).ln() as f32;
    if r.is_finite() {
        r.clamp(-SCORE_INPUT_CLIP, SCORE_INPUT_CLIP)
    } else if r > 0.0 {
        SCORE_INPUT_CLIP
    } else {
        -SCORE_INPUT_CLIP
    }
}

/// One verdict: the alert's score input, its window, and whether the
/// analyst found it a true positive (an attack).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict<'a> {
    pub score: f32,
    pub features: &'a [f32],
    pub attack: bool,
}

/// Why a head or update was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HeadError {
    #[error("invalid head settings: {}", .0.join("; "))]
    Config(Vec<String>),
    #[error("verdict {index} has {found} features, the head takes {expected}")]
    Width {
        index: usize,
        found: usize,
        expected: usize,
    },
    #[error(transparent)]
    Aggregate(#[from] AggregateError),
}

/// A head: its parameters and the verdicts behind them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Head {
    /// `[bias, w_s, w₁ … w_d]`.
    pub params: Vec<f32>,
    /// True-positive verdicts it was trained on (all sites).
    pub attacks: u64,
    /// False-positive verdicts it was trained on (all sites).
    pub normals: u64,
}

impl Head {
    /// The prior head for windows of `inputs` features: it ranks exactly
    /// as the unsupervised score does.
    pub fn prior(inputs: usize, cfg: &HeadConfig) -> Head {
        let mut params = vec![0.0; inputs + 2];
        params[1] = cfg.prior_slope;
        Head {
            params,
            attacks: 0,
            normals: 0,
        }
    }

    pub fn inputs(&self) -> usize {
        self.params.len().saturating_sub(2)
    }

    /// Whether enough verdicts of both classes are behind it to re-rank.
    pub fn in_force(&self, cfg: &HeadConfig) -> bool {
        self.attacks >= cfg.min_per_class && self.normals >= cfg.min_per_class
    }

    /// Problems with a head read from elsewhere (a peer, a file): fewer
    /// than the bias and score weight, or a value that is not finite.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.params.len() < 2 {
            out.push(format!(
                "a head has at least 2 parameters, this one {}",
                self.params.len()
            ));
        }
        if self.params.iter().any(|p| !p.is_finite()) {
            out.push("a head parameter is not finite".to_owned());
        }
        out
    }

    /// The log-odds that an alert is a true positive (a missing parameter
    /// counts as 0).
    pub fn logit(&self, score: f32, features: &[f32]) -> f64 {
        let p = &self.params;
        let at = |i: usize| f64::from(p.get(i).copied().unwrap_or(0.0));
        let mut z = at(0) + at(1) * f64::from(score);
        for (w, x) in p.get(2..).unwrap_or(&[]).iter().zip(features) {
            z += f64::from(*w) * f64::from(*x);
        }
        z
    }

    /// The probability that an alert is a true positive.
    pub fn probability(&self, score: f32, features: &[f32]) -> f64 {
        sigmoid(self.logit(score, features))
    }

    /// The ranking score of an alert (higher first): the head's log-odds
    /// when it is in force, else the unsupervised score input itself.
    pub fn rank(&self, cfg: &HeadConfig, score: f32, features: &[f32]) -> f64 {
        if self.in_force(cfg) {
            self.logit(score, features)
        } else {
            f64::from(score)
        }
    }

    /// Trains from this head on `verdicts` (a site's own) and returns the
    /// new head, its counts those of `verdicts` alone.
    pub fn train(&self, verdicts: &[Verdict<'_>], cfg: &HeadConfig) -> Result<Head, HeadError> {
        let mut problems = cfg.problems();
        problems.extend(self.problems());
        if !problems.is_empty() {
            return Err(HeadError::Config(problems));
        }
        let d = self.inputs();
        for (index, v) in verdicts.iter().enumerate() {
            if v.features.len() != d {
                return Err(HeadError::Width {
                    index,
                    found: v.features.len(),
                    expected: d,
                });
            }
        }
        let attacks = verdicts.iter().filter(|v| v.attack).count() as u64;
        let normals = verdicts.len() as u64 - attacks;
        let mut params: Vec<f64> = self.params.iter().map(|&p| f64::from(p)).collect();
        if !verdicts.is_empty() {
            let prior = Head::prior(d, cfg).params;
            // Each class weighs half, whatever its count.
            let weight = |attack: bool| {
                let n = if attack { attacks } else { normals };
                let classes = u64::from(attacks > 0) + u64::from(normals > 0);
                1.0 / (n.max(1) * classes) as f64
            };
            let mut grad = vec![0.0; params.len()];
            for _ in 0..cfg.steps {
                grad.iter_mut().for_each(|g| *g = 0.0);
                for v in verdicts {
                    let mut z = params[0] + params[1] * f64::from(v.score);
                    for (w, x) in params[2..].iter().zip(v.features) {
                        z += w * f64::from(*x);
                    }
                    let err = (sigmoid(z) - f64::from(u8::from(v.attack))) * weight(v.attack);
                    grad[0] += err;
                    grad[1] += err * f64::from(v.score);
                    for (g, x) in grad[2..].iter_mut().zip(v.features) {
                        *g += err * f64::from(*x);
                    }
                }
                for ((p, g), p0) in params.iter_mut().zip(&grad).zip(&prior) {
                    *p -= cfg.learning_rate * (g + cfg.l2 * (*p - f64::from(*p0)));
                }
            }
        }
        Ok(Head {
            params: params.iter().map(|&p| p as f32).collect(),
            attacks,
            normals,
        })
    }
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// What one site sends for a round of the head: its parameters after
/// training on its own verdicts, and how many of each class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadUpdate {
    pub round: u64,
    pub vector: Vec<f32>,
    pub attacks: u64,
    pub normals: u64,
}

/// One site's step: `base` trained on the site's `verdicts`. None when the
/// site has no verdict of one class (its head would only learn its bias).
pub fn local_update(
    base: &Head,
    round: u64,
    verdicts: &[Verdict<'_>],
    cfg: &HeadConfig,
) -> Result<Option<HeadUpdate>, HeadError> {
    let attacks = verdicts.iter().filter(|v| v.attack).count();
    if attacks == 0 || attacks == verdicts.len() {
        return Ok(None);
    }
    let local = base.train(verdicts, cfg)?;
    Ok(Some(HeadUpdate {
        round,
        vector: local.params,
        attacks: local.attacks,
        normals: local.normals,
    }))
}

/// Combines the sites' updates by `rule`, each weighted by its verdicts.
/// No update: `base` unchanged.
pub fn combine(base: &Head, updates: &[HeadUpdate], rule: Rule) -> Result<Head, HeadError> {
    if updates.is_empty() {
        return Ok(base.clone());
    }
    for (index, u) in updates.iter().enumerate() {
        if u.vector.len() != base.params.len() {
            return Err(HeadError::Width {
                index,
                found: u.vector.len().saturating_sub(2),
                expected: base.inputs(),
            });
        }
    }
    let weighted: Vec<Weighted> = updates
        .iter()
        .map(|u| Weighted {
            values: u.vector.clone(),
            samples: u.attacks.saturating_add(u.normals),
        })
        .collect();
    Ok(Head {
        params: aggregate(rule, &weighted)?,
        attacks: updates
            .iter()
            .fold(0u64, |n, u| n.saturating_add(u.attacks)),
        normals: updates
            .iter()
            .fold(0u64, |n, u| n.saturating_add(u.normals)),
    })
}

#[cfg(test)]
#[path = "head_tests.rs"]
mod tests;
