//! The local anomaly model: a small autoencoder (burn, CPU backend) trained
//! on a node's own baseline windows; the score of a window is its mean
//! squared reconstruction error, and the alert threshold is a quantile of the
//! training scores (set by policy).
//!
//! Why an autoencoder: it learns the joint shape of normal feature vectors
//! without labels, scores a window in one small forward pass, and its
//! weights are plain tensors that federated averaging can combine.
//! Training and scoring are CPU work: callers run them off the async runtime.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};

/// Settings of one training run.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    pub hidden: usize,
    pub bottleneck: usize,
    pub epochs: usize,
    pub batch: usize,
    pub learning_rate: f64,
    pub seed: u64,
    /// Quantile of the training scores used as the alert threshold.
    pub threshold_quantile: f64,
    /// Autoencoders trained with seeds `seed, seed+1, …`; a row's score is
    /// the mean of their errors, each divided by its median training error.
    pub members: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            hidden: 12,
            bottleneck: 3,
            epochs: 20,
            batch: 256,
            learning_rate: 1e-3,
            seed: 42,
            threshold_quantile: 0.99,
            members: 5,
        }
    }
}

/// Encoder and decoder, two layers each.
#[derive(Module, Debug)]
pub struct Autoencoder {
    enc1: Linear,
    enc2: Linear,
    dec1: Linear,
    dec2: Linear,
}

impl Autoencoder {
    fn new(inputs: usize, cfg: &TrainConfig, device: &Device) -> Self {
        Self {
            enc1: LinearConfig::new(inputs, cfg.hidden).init(device),
            enc2: LinearConfig::new(cfg.hidden, cfg.bottleneck).init(device),
            dec1: LinearConfig::new(cfg.bottleneck, cfg.hidden).init(device),
            dec2: LinearConfig::new(cfg.hidden, inputs).init(device),
        }
    }

    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let h = relu(self.enc1.forward(x));
        let z = relu(self.enc2.forward(h));
        let h = relu(self.dec1.forward(z));
        self.dec2.forward(h)
    }
}

/// A trained model with its calibrated threshold.
#[derive(Debug)]
pub struct AnomalyModel {
    /// Each member with the median of its training errors.
    members: Vec<(Autoencoder, f64)>,
    device: Device,
    inputs: usize,
    /// Scores at or above this raise a finding.
    pub threshold: f64,
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
}

/// Trains one autoencoder with its own seed (init and shuffle).
fn train_one(
    rows: &[&[f32]],
    inputs: usize,
    cfg: &TrainConfig,
    seed: u64,
    device: &Device,
) -> Autoencoder {
    device.seed(seed);
    let mut net = Autoencoder::new(inputs, cfg, device);
    let mut optimizer = AdamConfig::new().init();
    // A seeded shuffle per epoch (xorshift), so runs replay exactly.
    let mut order: Vec<usize> = (0..rows.len()).collect();
    let mut state = seed.max(1);
    for _ in 0..cfg.epochs {
        for i in (1..order.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            order.swap(i, (state % (i as u64 + 1)) as usize);
        }
        for chunk in order.chunks(cfg.batch.max(1)) {
            let batch: Vec<&[f32]> = chunk.iter().map(|&i| rows[i]).collect();
            let x = matrix(&batch, inputs, device);
            let diff = net.forward(x.clone()) - x;
            let loss = (diff.clone() * diff).mean();
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optimizer.step(cfg.learning_rate, net, grads);
        }
    }
    net
}

/// Mean squared reconstruction error of each row (all of width `inputs`).
fn errors_of(net: &Autoencoder, rows: &[&[f32]], inputs: usize, device: &Device) -> Vec<f64> {
    let mut out = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(4096) {
        let x = matrix(chunk, inputs, device);
        let diff = net.forward(x.clone()) - x;
        let errors = (diff.clone() * diff)
            .mean_dim(1)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap_or_default();
        out.extend(errors.into_iter().map(f64::from));
    }
    out.resize(rows.len(), f64::INFINITY);
    out
}

fn matrix(rows: &[&[f32]], inputs: usize, device: &Device) -> Tensor<2> {
    let flat: Vec<f32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    Tensor::from_data(TensorData::new(flat, [rows.len(), inputs]), device)
}

impl AnomalyModel {
    /// Trains on `rows` (labels are never seen) and calibrates the threshold.
    pub fn train(rows: &[&[f32]], cfg: &TrainConfig) -> Result<AnomalyModel, TrainError> {
        let inputs = rows.first().map(|r| r.len()).ok_or(TrainError::Empty)?;
        if let Some((row, r)) = rows.iter().enumerate().find(|(_, r)| r.len() != inputs) {
            return Err(TrainError::Width {
                row,
                found: r.len(),
                expected: inputs,
            });
        }
        let device = Device::flex().autodiff();
        let mut model = AnomalyModel {
            members: Vec::new(),
            device: device.clone(),
            inputs,
            threshold: f64::INFINITY,
        };
        for m in 0..cfg.members.max(1) {
            let seed = cfg.seed.wrapping_add(m as u64);
            let net = train_one(rows, inputs, cfg, seed, &device);
            let errors = errors_of(&net, rows, inputs, &device);
            let scale = crate::eval::quantile(&errors, 0.5)
                .filter(|s| *s > 0.0)
                .unwrap_or(1.0);
            model.members.push((net, scale));
        }
        let scores = model.score(rows);
        model.threshold =
            crate::eval::quantile(&scores, cfg.threshold_quantile).unwrap_or(f64::INFINITY);
        Ok(model)
    }

    /// Reconstruction error of each row relative to training (higher =
    /// more unusual). Rows of the wrong width score infinity.
    pub fn score(&self, rows: &[&[f32]]) -> Vec<f64> {
        let good: Vec<&[f32]> = rows
            .iter()
            .copied()
            .filter(|r| r.len() == self.inputs)
            .collect();
        let mut sum = vec![0.0; good.len()];
        for (net, scale) in &self.members {
            for (s, e) in sum
                .iter_mut()
                .zip(errors_of(net, &good, self.inputs, &self.device))
            {
                *s += e / scale;
            }
        }
        let members = self.members.len().max(1) as f64;
        let mut scores = sum.into_iter().map(|s| s / members);
        rows.iter()
            .map(|r| {
                if r.len() == self.inputs {
                    scores.next().unwrap_or(f64::INFINITY)
                } else {
                    f64::INFINITY
                }
            })
            .collect()
    }

    pub fn inputs(&self) -> usize {
        self.inputs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_a_normal_pattern_and_flags_the_odd_row() {
        // Normal rows lie on a line; anomalies do not.
        let normal: Vec<Vec<f32>> = (0..512)
            .map(|i| {
                let t = (i % 64) as f32 / 64.0;
                vec![t, 1.0 - t, t * 0.5, 0.25]
            })
            .collect();
        let rows: Vec<&[f32]> = normal.iter().map(Vec::as_slice).collect();
        let cfg = TrainConfig {
            hidden: 8,
            bottleneck: 2,
            epochs: 30,
            batch: 64,
            learning_rate: 1e-2,
            members: 2,
            ..TrainConfig::default()
        };
        let model = AnomalyModel::train(&rows, &cfg).expect("trains");
        let odd = [1.0f32, 1.0, 0.0, 1.0];
        let scores = model.score(&[rows[10], &odd, &[0.0, 1.0]]);
        assert!(
            scores[1] > model.threshold,
            "odd row {} vs threshold {}",
            scores[1],
            model.threshold
        );
        assert!(scores[0] < scores[1]);
        assert_eq!(scores[2], f64::INFINITY, "wrong width");
        assert_eq!(
            AnomalyModel::train(&[], &cfg).err(),
            Some(TrainError::Empty)
        );
    }
}
