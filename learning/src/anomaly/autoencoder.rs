//! A small autoencoder (burn, CPU backend) and its flat parameter vector.
//!
//! The error of a row is the mean over features of its squared
//! reconstruction error, each divided by that feature's mean training error,
//! so a feature the network reconstructs well weighs as much as a noisy one.

use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::activation::tanh;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::TrainConfig;

/// Layer widths: inputs → hidden → bottleneck → hidden → inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shape {
    pub inputs: usize,
    pub hidden: usize,
    pub bottleneck: usize,
}

impl Shape {
    /// `(d_input, d_output)` of each layer, in order.
    fn layers(self) -> [(usize, usize); 4] {
        [
            (self.inputs, self.hidden),
            (self.hidden, self.bottleneck),
            (self.bottleneck, self.hidden),
            (self.hidden, self.inputs),
        ]
    }

    /// Length of the flat parameter vector (weights then bias, per layer).
    pub fn params(self) -> usize {
        self.layers().iter().map(|(i, o)| i * o + o).sum()
    }
}

/// One trained member as stored: its parameters and the mean squared
/// training error of each feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub params: Vec<f32>,
    pub feature_error: Vec<f32>,
}

/// Encoder and decoder, two layers each.
#[derive(Module, Debug)]
pub struct Autoencoder {
    layers: Vec<Linear>,
}

impl Autoencoder {
    fn new(shape: Shape, device: &Device) -> Self {
        Self {
            layers: shape
                .layers()
                .iter()
                .map(|&(i, o)| LinearConfig::new(i, o).init(device))
                .collect(),
        }
    }

    /// Rebuilds a network from a flat parameter vector of `shape`.
    pub fn from_params(shape: Shape, params: &[f32], device: &Device) -> Option<Self> {
        if params.len() != shape.params() {
            return None;
        }
        let mut rest = params;
        let layers = shape
            .layers()
            .iter()
            .map(|&(i, o)| {
                let (w, tail) = rest.split_at(i * o);
                let (b, tail) = tail.split_at(o);
                rest = tail;
                Linear {
                    weight: Param::from_tensor(Tensor::from_data(
                        TensorData::new(w.to_vec(), [i, o]),
                        device,
                    )),
                    bias: Some(Param::from_tensor(Tensor::from_data(
                        TensorData::new(b.to_vec(), [o]),
                        device,
                    ))),
                }
            })
            .collect();
        Some(Self { layers })
    }

    /// The flat parameter vector (weights row-major `[in, out]`, then bias).
    pub fn to_params(&self) -> Vec<f32> {
        let mut out = Vec::new();
        for layer in &self.layers {
            out.extend(floats(layer.weight.val()));
            if let Some(b) = &layer.bias {
                out.extend(floats(b.val()));
            }
        }
        out
    }

    /// tanh on the two hidden layers; the code and the output stay linear,
    /// so no unit of the narrow bottleneck can die the way a ReLU unit does.
    fn forward(&self, mut x: Tensor<2>) -> Tensor<2> {
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x);
            if i % 2 == 0 {
                x = tanh(x);
            }
        }
        x
    }

    /// Squared reconstruction error of every feature of every row, row-major.
    pub fn squared_errors(&self, rows: &[&[f32]], inputs: usize, device: &Device) -> Vec<f32> {
        let mut out = Vec::with_capacity(rows.len() * inputs);
        for chunk in rows.chunks(4096) {
            let x = matrix(chunk, inputs, device);
            let diff = self.forward(x.clone()) - x;
            out.extend(floats(diff.clone() * diff));
        }
        out.resize(rows.len() * inputs, f32::INFINITY);
        out
    }
}

fn floats<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap_or_default()
}

fn matrix(rows: &[&[f32]], inputs: usize, device: &Device) -> Tensor<2> {
    let flat: Vec<f32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    Tensor::from_data(TensorData::new(flat, [rows.len(), inputs]), device)
}

/// Settings of one member's training run.
#[derive(Debug, Clone, Copy)]
pub struct Fit {
    pub epochs: usize,
    pub batch: usize,
    pub learning_rate: f64,
    pub seed: u64,
}

/// Trains one member from a seeded start (init and shuffle) and returns its
/// parameters; `start`, when given, replaces the random initialisation.
pub fn train(rows: &[&[f32]], shape: Shape, fit: Fit, start: Option<&[f32]>) -> Vec<f32> {
    let device = Device::flex().autodiff();
    device.seed(fit.seed);
    let mut net = start
        .and_then(|p| Autoencoder::from_params(shape, p, &device))
        .unwrap_or_else(|| Autoencoder::new(shape, &device));
    let mut optimizer = AdamConfig::new().init();
    // A seeded shuffle per epoch (xorshift), so runs replay exactly.
    let mut order: Vec<usize> = (0..rows.len()).collect();
    let mut state = fit.seed.max(1);
    for _ in 0..fit.epochs {
        for i in (1..order.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            order.swap(i, (state % (i as u64 + 1)) as usize);
        }
        for chunk in order.chunks(fit.batch.max(1)) {
            let batch: Vec<&[f32]> = chunk.iter().map(|&i| rows[i]).collect();
            let x = matrix(&batch, shape.inputs, &device);
            let diff = net.forward(x.clone()) - x;
            let loss = (diff.clone() * diff).mean();
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optimizer.step(fit.learning_rate, net, grads);
        }
    }
    net.to_params()
}

/// Smallest per-feature training error a row's error is divided by: a
/// feature the network reproduces exactly (a constant) must not turn a
/// deviation of 0.003 into an alert on its own.
const ERROR_FLOOR: f32 = 1e-5;

/// A member ready to score, on the plain (no autodiff) CPU device.
#[derive(Debug)]
pub struct Scorer {
    net: Autoencoder,
    /// 1 / mean training error of each feature.
    weight: Vec<f32>,
}

impl Scorer {
    pub fn new(shape: Shape, member: &Member, device: &Device) -> Option<Scorer> {
        if member.feature_error.len() != shape.inputs {
            return None;
        }
        let net = Autoencoder::from_params(shape, &member.params, device)?;
        let weight = member
            .feature_error
            .iter()
            .map(|e| 1.0 / e.max(ERROR_FLOOR))
            .collect();
        Some(Scorer { net, weight })
    }

    /// Normalised error of each row.
    pub fn errors(&self, rows: &[&[f32]], device: &Device) -> Vec<f32> {
        let inputs = self.weight.len();
        self.net
            .squared_errors(rows, inputs, device)
            .chunks(inputs.max(1))
            .map(|r| r.iter().zip(&self.weight).map(|(e, w)| e * w).sum::<f32>() / inputs as f32)
            .collect()
    }
}

/// Mean squared training error of each feature, for [`Member`].
pub fn feature_error(shape: Shape, params: &[f32], rows: &[&[f32]], device: &Device) -> Vec<f32> {
    let Some(net) = Autoencoder::from_params(shape, params, device) else {
        return vec![1.0; shape.inputs];
    };
    let mut sum = vec![0f64; shape.inputs];
    for r in net
        .squared_errors(rows, shape.inputs, device)
        .chunks(shape.inputs.max(1))
    {
        for (s, e) in sum.iter_mut().zip(r) {
            *s += f64::from(*e);
        }
    }
    let n = rows.len().max(1) as f64;
    sum.into_iter().map(|s| (s / n) as f32).collect()
}

/// Trains the ensemble's members (none for the tails model), each from
/// its own seed and, when given, from the matching `start` member.
pub fn fit_members(
    rows: &[&[f32]],
    shape: Shape,
    cfg: &TrainConfig,
    epochs: usize,
    seed: u64,
    start: Option<&[Member]>,
) -> Vec<Member> {
    if !cfg.uses_network() {
        return Vec::new();
    }
    let device = Device::flex();
    (0..cfg.members)
        .map(|m| {
            let fit = Fit {
                epochs,
                batch: cfg.batch,
                learning_rate: cfg.learning_rate,
                seed: seed.wrapping_add(m as u64),
            };
            let from = start.and_then(|s| s.get(m)).map(|s| s.params.as_slice());
            let params = train(rows, shape, fit, from);
            let feature_error = feature_error(shape, &params, rows, &device);
            Member {
                params,
                feature_error,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_round_trip_gives_the_same_network() {
        let shape = Shape {
            inputs: 4,
            hidden: 3,
            bottleneck: 2,
        };
        let device = Device::flex();
        let a = Autoencoder::new(shape, &device);
        let p = a.to_params();
        assert_eq!(p.len(), shape.params());
        let b = Autoencoder::from_params(shape, &p, &device).expect("rebuilds");
        assert_eq!(b.to_params(), p);
        let row = [0.1f32, 0.2, 0.3, 0.4];
        assert_eq!(
            a.squared_errors(&[&row], 4, &device),
            b.squared_errors(&[&row], 4, &device)
        );
        assert!(Autoencoder::from_params(shape, &p[1..], &device).is_none());
    }
}
