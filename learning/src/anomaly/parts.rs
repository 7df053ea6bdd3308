//! The parts of a model a federated round combines: the networks'
//! parameters, the histogram counts and the calibration points.

use super::autoencoder::Member;
use super::{AnomalyModel, ModelError, ModelKind, TailCounts, Tails};

impl AnomalyModel {
    /// The parts a federated round combines: every member's parameters
    /// then every member's per-feature training error, the histogram
    /// counts, and the calibration points.
    pub(crate) fn federated_parts(&self) -> (Vec<f32>, &TailCounts, &[f64]) {
        let m = &self.stored.members;
        let vector = m
            .iter()
            .flat_map(|m| m.params.iter())
            .chain(m.iter().flat_map(|m| m.feature_error.iter()))
            .copied()
            .collect();
        (vector, self.stored.tails.counts(), &self.stored.calibration)
    }

    /// This model with combined parts (the layout of
    /// [`AnomalyModel::federated_parts`]).
    pub(crate) fn with_federated_parts(
        &self,
        vector: &[f32],
        tails: TailCounts,
        mut calibration: Vec<f64>,
        train_rows: u64,
    ) -> Result<AnomalyModel, ModelError> {
        if self.stored.config.kind == ModelKind::Forest {
            return Err(ModelError::Invalid(
                "a forest's trees do not combine by averaging: federated rounds take \
                 the kinds auto, tails, autoencoder and combined"
                    .into(),
            ));
        }
        let n = self.stored.members.len();
        let p = self.stored.shape.params();
        let inputs = self.stored.inputs;
        if vector.len() != n * (p + inputs) {
            return Err(ModelError::Invalid(format!(
                "{} values for {n} members of {p} parameters and {inputs} errors",
                vector.len()
            )));
        }
        let (params, errors) = vector.split_at(n * p);
        let members = params
            .chunks(p.max(1))
            .zip(errors.chunks(inputs.max(1)))
            .map(|(p, e)| Member {
                params: p.to_vec(),
                feature_error: e.iter().map(|v| v.max(0.0)).collect(),
            })
            .collect();
        calibration.sort_by(f64::total_cmp);
        let mut stored = self.stored.clone();
        stored.members = members;
        // Sites' choices and trees do not average: an `auto` model from a
        // round scores with the pooled tails (see `detector`).
        stored.forest = None;
        stored.selection = None;
        stored.tails = Tails::try_from(tails).map_err(ModelError::Invalid)?;
        stored.threshold = crate::eval::quantile(&calibration, stored.config.threshold_quantile)
            .unwrap_or(f64::INFINITY);
        stored.calibration = calibration;
        stored.train_rows = train_rows;
        AnomalyModel::assemble(stored)
    }
}
