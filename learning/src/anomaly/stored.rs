//! A model's stored form: JSON bytes, read back only after checking the
//! format version and that every part fits the others.

use serde::Deserialize;

use super::{AnomalyModel, Detector, MODEL_FORMAT, ModelError, Stored};

impl AnomalyModel {
    /// The stored form (JSON).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.stored).unwrap_or_default()
    }

    /// Reads a stored model, checking its format and consistency.
    pub fn from_bytes(bytes: &[u8]) -> Result<AnomalyModel, ModelError> {
        #[derive(Deserialize)]
        struct Head {
            format: u16,
        }
        let head: Head =
            serde_json::from_slice(bytes).map_err(|e| ModelError::Decode(e.to_string()))?;
        if head.format != MODEL_FORMAT {
            return Err(ModelError::Format { found: head.format });
        }
        let stored: Stored =
            serde_json::from_slice(bytes).map_err(|e| ModelError::Decode(e.to_string()))?;
        let expected_columns = stored.inputs + usize::from(stored.config.uses_network());
        if stored.tails.columns() != expected_columns {
            return Err(ModelError::Invalid(format!(
                "{} tail columns for {} inputs",
                stored.tails.columns(),
                stored.inputs
            )));
        }
        if stored.shape.inputs != stored.inputs {
            return Err(ModelError::Invalid(
                "network shape does not match inputs".into(),
            ));
        }
        if stored.config.uses_network() && stored.members.is_empty() {
            return Err(ModelError::Invalid("no network members".into()));
        }
        if let Some(p) = stored.config.problems().first() {
            return Err(ModelError::Invalid(p.clone()));
        }
        if let Some(p) = stored
            .forest
            .as_ref()
            .and_then(|f| f.problems(stored.inputs))
        {
            return Err(ModelError::Invalid(p));
        }
        let model = AnomalyModel::assemble(stored)?;
        if model.detector() == Detector::Forest && model.stored.forest.is_none() {
            return Err(ModelError::Invalid("a forest model without trees".into()));
        }
        Ok(model)
    }
}
