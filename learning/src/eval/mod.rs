//! Evaluation on labelled data: ranking metrics (ROC-AUC, PR-AUC), scores at
//! a threshold, and the KDD Cup 99 (DAMI outlier version) data set.
//! Pure: data comes in as bytes, figures go out.

pub mod federated;
pub mod kdd;
mod metrics;

pub use metrics::{Confusion, average_precision, quantile, roc_auc};
