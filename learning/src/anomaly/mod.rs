//! The local anomaly model, trained on a node's own baseline windows with no
//! labels. Inputs are feature vectors scaled to [0, 1] (see
//! [`crate::features`]).
//!
//! Detectors, chosen by [`ModelKind`]:
//! - **tails**: per-feature histograms over fixed bins; a value's tail
//!   score is `-ln` of the share of baseline values at least as extreme. A
//!   window's score is the sum of its `top_k` largest. This catches a window
//!   that is extreme in a few features (a burst of failed connections, a
//!   root shell) whatever the others do.
//! - **forest**: an isolation forest ([`forest`]); it also catches a window
//!   whose features are each ordinary but whose combination is not.
//! - **auto**: the one of tails (top 1, 3, 5 or all) and forest that the
//!   site's own rows favour by the Mass-Volume criterion ([`select`]), no
//!   label read.
//! - **autoencoder** and **combined** (the tails with the autoencoder's
//!   error as one more column): a seeded ensemble of small burn
//!   autoencoders. Measured against the others on eight public data sets
//!   in docs/BENCHMARKS.md.
//!
//! The alert threshold is a quantile of the training scores (set by
//! policy). Histogram counts add up across sites and network parameters
//! average; a forest's trees and an `auto` choice stay local (a federated
//! `auto` model scores with the pooled tails). Training and scoring are CPU
//! work: callers run them off the async runtime.

mod autoencoder;
mod forest;
mod parts;
mod select;
mod stored;
mod tails;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

pub use autoencoder::Shape;
use autoencoder::{Member, Scorer, fit_members};
pub use forest::Forest;
pub use select::{CANDIDATES, Detector, Selection, select};
pub use tails::{Side, TailCounts, Tails};

/// Version of the stored model format ([`AnomalyModel::to_bytes`]).
pub const MODEL_FORMAT: u16 = 1;
/// Bins of the autoencoder-error column: `log2(error)` over [-10, 22].
const ERROR_LOG2_RANGE: (f32, f32) = (-10.0, 22.0);
/// Training scores kept to turn a score into a baseline quantile.
const CALIBRATION_POINTS: usize = 1001;

/// Which parts score a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    Tails,
    Autoencoder,
    Combined,
    /// The isolation forest.
    Forest,
    /// The detector the site's own rows favour, chosen at training without
    /// labels (see [`select`]).
    Auto,
}

impl std::str::FromStr for ModelKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "tails" => Ok(Self::Tails),
            "autoencoder" => Ok(Self::Autoencoder),
            "combined" => Ok(Self::Combined),
            "forest" => Ok(Self::Forest),
            "auto" => Ok(Self::Auto),
            _ => Err(format!(
                "unknown model kind {s:?} (expected auto, tails, forest, autoencoder or combined)"
            )),
        }
    }
}

/// Settings of one training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub kind: ModelKind,
    /// Histogram bins per feature.
    pub bins: usize,
    /// Tail scores summed into a window's score.
    pub top_k: usize,
    pub hidden: usize,
    pub bottleneck: usize,
    pub epochs: usize,
    pub batch: usize,
    pub learning_rate: f64,
    pub seed: u64,
    /// Quantile of the training scores used as the alert threshold.
    pub threshold_quantile: f64,
    /// Autoencoders trained with seeds `seed, seed+1, …`; their errors are
    /// averaged.
    pub members: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            kind: ModelKind::Combined,
            bins: 128,
            top_k: 5,
            hidden: 12,
            bottleneck: 3,
            epochs: 20,
            batch: 256,
            learning_rate: 1e-3,
            seed: 42,
            threshold_quantile: 0.99,
            members: 3,
        }
    }
}

impl TrainConfig {
    /// Problems with these settings, each naming its field.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut need = |ok: bool, msg: &str| {
            if !ok {
                out.push(msg.to_owned());
            }
        };
        need((2..=4096).contains(&self.bins), "bins must be 2..=4096");
        need(self.top_k >= 1, "top_k must be at least 1");
        need(self.hidden >= 1, "hidden must be at least 1");
        need(self.bottleneck >= 1, "bottleneck must be at least 1");
        need(self.epochs >= 1, "epochs must be at least 1");
        need(self.batch >= 1, "batch must be at least 1");
        need(
            self.learning_rate > 0.0 && self.learning_rate.is_finite(),
            "learning_rate must be positive",
        );
        need(
            (0.5..1.0).contains(&self.threshold_quantile),
            "threshold_quantile must be in [0.5, 1)",
        );
        need((1..=32).contains(&self.members), "members must be 1..=32");
        out
    }

    fn uses_network(&self) -> bool {
        matches!(self.kind, ModelKind::Autoencoder | ModelKind::Combined)
    }
}

/// Why training could not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrainError {
    #[error("no training rows")]
    Empty,
    #[error("row {row} has {found} features, expected {expected}")]
    Width {
        row: usize,
        found: usize,
        expected: usize,
    },
    #[error("row {row} feature {feature} is not a finite number")]
    NotFinite { row: usize, feature: usize },
    #[error("invalid training settings: {}", .0.join("; "))]
    Config(Vec<String>),
}

/// Why stored model bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error("not a model file: {0}")]
    Decode(String),
    #[error("model format {found} is not supported (this build reads {MODEL_FORMAT})")]
    Format { found: u16 },
    #[error("inconsistent model: {0}")]
    Invalid(String),
}

/// Everything a model is, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    format: u16,
    /// Feature schema the inputs follow, e.g. `source@1`.
    schema: String,
    inputs: usize,
    config: TrainConfig,
    train_rows: u64,
    threshold: f64,
    /// Sorted training scores, evenly spaced quantiles.
    calibration: Vec<f64>,
    tails: Tails,
    shape: Shape,
    members: Vec<Member>,
    /// The trees of a `forest` model, or of an `auto` one that chose it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    forest: Option<Forest>,
    /// What an `auto` model chose, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    selection: Option<Selection>,
}

/// A trained model with its calibrated threshold.
#[derive(Debug)]
pub struct AnomalyModel {
    stored: Stored,
    scorers: Vec<autoencoder::Scorer>,
    device: Device,
}

impl AnomalyModel {
    /// Trains on `rows` (labels are never seen) and calibrates the
    /// threshold. `schema` names the feature schema of the rows.
    pub fn train(
        schema: &str,
        rows: &[&[f32]],
        cfg: &TrainConfig,
    ) -> Result<AnomalyModel, TrainError> {
        let problems = cfg.problems();
        if !problems.is_empty() {
            return Err(TrainError::Config(problems));
        }
        let inputs = rows.first().map(|r| r.len()).ok_or(TrainError::Empty)?;
        check_rows(rows, inputs)?;
        let shape = Shape {
            inputs,
            hidden: cfg.hidden,
            bottleneck: cfg.bottleneck,
        };
        let members = fit_members(rows, shape, cfg, cfg.epochs, cfg.seed, None);
        AnomalyModel::calibrated(schema, rows, cfg, shape, members, true)
    }

    /// Trains the base model's networks further on `rows` for `epochs`
    /// (from the base's parameters) and calibrates on `rows`: one site's
    /// local step of a federated round.
    pub fn train_from(
        &self,
        rows: &[&[f32]],
        epochs: usize,
        seed: u64,
    ) -> Result<AnomalyModel, TrainError> {
        let cfg = &self.stored.config;
        let inputs = self.stored.inputs;
        if rows.is_empty() {
            return Err(TrainError::Empty);
        }
        check_rows(rows, inputs)?;
        let members = fit_members(
            rows,
            self.stored.shape,
            cfg,
            epochs.max(1),
            seed,
            Some(&self.stored.members),
        );
        // A site's step keeps to the parts that combine: no choice, no trees.
        AnomalyModel::calibrated(
            &self.stored.schema,
            rows,
            cfg,
            self.stored.shape,
            members,
            false,
        )
    }

    /// A model that has seen no data: seeded initial networks, empty
    /// histograms. The base of a federated model's first round.
    pub fn untrained(
        schema: &str,
        inputs: usize,
        cfg: &TrainConfig,
    ) -> Result<AnomalyModel, TrainError> {
        let problems = cfg.problems();
        if !problems.is_empty() {
            return Err(TrainError::Config(problems));
        }
        let shape = Shape {
            inputs,
            hidden: cfg.hidden,
            bottleneck: cfg.bottleneck,
        };
        let members = fit_members(&[], shape, cfg, 0, cfg.seed, None)
            .into_iter()
            .map(|m| Member {
                feature_error: vec![1.0; inputs],
                ..m
            })
            .collect();
        let columns = inputs + usize::from(cfg.uses_network());
        AnomalyModel::assemble(Stored {
            format: MODEL_FORMAT,
            schema: schema.to_owned(),
            inputs,
            config: cfg.clone(),
            train_rows: 0,
            threshold: f64::INFINITY,
            calibration: vec![0.0; CALIBRATION_POINTS],
            tails: Tails::fit(&vec![(Side::Both, Vec::new()); columns], cfg.bins),
            shape,
            members,
            forest: None,
            selection: None,
        })
        .map_err(|e| TrainError::Config(vec![e.to_string()]))
    }

    /// Assembles a model from trained members and calibrates it on `rows`:
    /// histograms of every feature and of the network error, for a `local`
    /// model the `auto` choice and the forest, the threshold and the
    /// calibration points.
    fn calibrated(
        schema: &str,
        rows: &[&[f32]],
        cfg: &TrainConfig,
        shape: Shape,
        members: Vec<Member>,
        local: bool,
    ) -> Result<AnomalyModel, TrainError> {
        let inputs = shape.inputs;
        let mut model = AnomalyModel::assemble(Stored {
            format: MODEL_FORMAT,
            schema: schema.to_owned(),
            inputs,
            config: cfg.clone(),
            train_rows: rows.len() as u64,
            threshold: f64::INFINITY,
            calibration: Vec::new(),
            tails: Tails::fit(&[], cfg.bins),
            shape,
            members,
            forest: None,
            selection: None,
        })
        .map_err(|e| TrainError::Config(vec![e.to_string()]))?;
        if local && cfg.kind == ModelKind::Auto {
            model.stored.selection = Some(select(rows, cfg.bins, cfg.seed));
        }
        if local && model.detector() == Detector::Forest {
            model.stored.forest = Some(Forest::fit(rows, forest::TREES, cfg.seed));
        }
        // Histograms of every feature, and of the network's error.
        let mut columns: Vec<(Side, Vec<f32>)> = (0..inputs)
            .map(|j| (Side::Both, rows.iter().map(|r| r[j]).collect()))
            .collect();
        if cfg.uses_network() {
            let errors = model.network_errors(rows);
            columns.push((
                Side::Right,
                errors.iter().map(|e| error_column(*e)).collect(),
            ));
        }
        model.stored.tails = Tails::fit(&columns, cfg.bins);
        let mut scores = model.score(rows);
        scores.sort_by(f64::total_cmp);
        model.stored.threshold =
            crate::eval::quantile(&scores, cfg.threshold_quantile).unwrap_or(f64::INFINITY);
        model.stored.calibration = (0..CALIBRATION_POINTS)
            .map(|i| {
                let pos = i * (scores.len() - 1) / (CALIBRATION_POINTS - 1);
                scores[pos]
            })
            .collect();
        Ok(model)
    }

    fn assemble(stored: Stored) -> Result<AnomalyModel, ModelError> {
        let device = Device::flex();
        let scorers = stored
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| {
                Scorer::new(stored.shape, m, &device).ok_or_else(|| {
                    ModelError::Invalid(format!("member {i} does not fit shape {:?}", stored.shape))
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(AnomalyModel {
            stored,
            scorers,
            device,
        })
    }

    /// Mean normalised network error of each row (all of width `inputs`).
    fn network_errors(&self, rows: &[&[f32]]) -> Vec<f32> {
        let mut sum = vec![0f32; rows.len()];
        for s in &self.scorers {
            for (acc, e) in sum.iter_mut().zip(s.errors(rows, &self.device)) {
                *acc += e;
            }
        }
        let n = self.scorers.len().max(1) as f32;
        sum.into_iter().map(|s| s / n).collect()
    }

    /// Score of each row (higher = more unusual). Rows of the wrong width or
    /// with a non-finite value score infinity.
    pub fn score(&self, rows: &[&[f32]]) -> Vec<f64> {
        let inputs = self.stored.inputs;
        let valid = |r: &[f32]| r.len() == inputs && r.iter().all(|v| v.is_finite());
        let good: Vec<&[f32]> = rows.iter().copied().filter(|r| valid(r)).collect();
        let errors = if self.stored.config.uses_network() {
            self.network_errors(&good)
        } else {
            vec![0.0; good.len()]
        };
        let detector = self.detector();
        let k = match detector {
            Detector::Tails { top_k } => top_k,
            Detector::Forest => self.stored.config.top_k,
        };
        let mut cells = Vec::with_capacity(inputs + 1);
        let mut scores = good.iter().zip(errors).map(|(r, err)| {
            if self.stored.config.kind == ModelKind::Autoencoder {
                return f64::from(err);
            }
            if let (Detector::Forest, Some(f)) = (detector, &self.stored.forest) {
                return f64::from(f.score(r));
            }
            cells.clear();
            cells.extend(
                r.iter()
                    .enumerate()
                    .map(|(j, v)| self.stored.tails.score(j, *v)),
            );
            if self.stored.config.kind == ModelKind::Combined {
                cells.push(self.stored.tails.score(inputs, error_column(err)));
            }
            f64::from(tails::top_k_sum(&mut cells, k))
        });
        rows.iter()
            .map(|r| {
                if valid(r) {
                    scores.next().unwrap_or(f64::INFINITY)
                } else {
                    f64::INFINITY
                }
            })
            .collect()
    }

    /// What scores rows when the kind is `tails`, `forest` or `auto` (for
    /// the other kinds, the tails part): an `auto` model's choice, or the
    /// tails with the configured `top_k` when it has none (a federated
    /// model combines histograms, not choices).
    pub fn detector(&self) -> Detector {
        let tails = Detector::Tails {
            top_k: self.stored.config.top_k,
        };
        match (self.stored.config.kind, &self.stored.selection) {
            (ModelKind::Forest, _) => Detector::Forest,
            (ModelKind::Auto, Some(s)) => s.chosen,
            _ => tails,
        }
    }

    /// What an `auto` model chose and every candidate's criterion.
    pub fn selection(&self) -> Option<&Selection> {
        self.stored.selection.as_ref()
    }

    /// The `n` columns that add most to a row's combined or tails score,
    /// largest first: `(feature index, tail score)`, where index
    /// [`AnomalyModel::inputs`] is the autoencoder's error. Empty for the
    /// autoencoder alone or a row of the wrong width.
    pub fn explain(&self, row: &[f32], n: usize) -> Vec<(usize, f32)> {
        let inputs = self.stored.inputs;
        if row.len() != inputs || self.stored.config.kind == ModelKind::Autoencoder {
            return Vec::new();
        }
        let mut cells: Vec<(usize, f32)> = row
            .iter()
            .enumerate()
            .map(|(j, v)| (j, self.stored.tails.score(j, *v)))
            .collect();
        if self.stored.config.uses_network() {
            let err = self.network_errors(&[row]).first().copied().unwrap_or(0.0);
            cells.push((inputs, self.stored.tails.score(inputs, error_column(err))));
        }
        cells.sort_by(|a, b| b.1.total_cmp(&a.1));
        cells.truncate(n);
        cells
    }

    /// Share of baseline windows that scored below `score`, in [0, 1]: the
    /// confidence an alert carries.
    pub fn baseline_rank(&self, score: f64) -> f64 {
        let c = &self.stored.calibration;
        if c.is_empty() {
            return 0.0;
        }
        let below = c.partition_point(|s| *s < score);
        below as f64 / c.len() as f64
    }

    /// Scores at or above this raise a finding (the training quantile set
    /// at training time).
    pub fn threshold(&self) -> f64 {
        self.stored.threshold
    }

    /// The training-score quantile `q` (from the stored calibration points),
    /// so a policy can move the threshold without retraining.
    pub fn threshold_at(&self, q: f64) -> f64 {
        let c = &self.stored.calibration;
        if c.is_empty() || !(0.0..=1.0).contains(&q) {
            return self.stored.threshold;
        }
        crate::eval::quantile(c, q).unwrap_or(self.stored.threshold)
    }

    pub fn inputs(&self) -> usize {
        self.stored.inputs
    }

    /// The feature schema the model was trained on.
    pub fn schema(&self) -> &str {
        &self.stored.schema
    }

    pub fn config(&self) -> &TrainConfig {
        &self.stored.config
    }

    pub fn train_rows(&self) -> u64 {
        self.stored.train_rows
    }

    /// Parameters of the networks (for federated rounds and size reports).
    pub fn parameters(&self) -> usize {
        self.stored.members.iter().map(|m| m.params.len()).sum()
    }
}

/// Every row has `inputs` finite values.
fn check_rows(rows: &[&[f32]], inputs: usize) -> Result<(), TrainError> {
    for (row, r) in rows.iter().enumerate() {
        if r.len() != inputs {
            return Err(TrainError::Width {
                row,
                found: r.len(),
                expected: inputs,
            });
        }
        if let Some(feature) = r.iter().position(|v| !v.is_finite()) {
            return Err(TrainError::NotFinite { row, feature });
        }
    }
    Ok(())
}

/// The error column's value in [0, 1].
fn error_column(err: f32) -> f32 {
    let (lo, hi) = ERROR_LOG2_RANGE;
    (err.max(1e-30).log2() - lo) / (hi - lo)
}

#[cfg(test)]
mod tests;
