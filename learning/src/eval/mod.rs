//! Evaluation on labelled data: ranking metrics (ROC-AUC, PR-AUC), scores at
//! a threshold, the KDD Cup 99 (DAMI outlier version) data set, and any
//! labelled table evaluated over random stratified splits.
//! Pure: data comes in as bytes, figures go out.

pub mod dataset;
pub mod federated;
pub mod kdd;
mod metrics;
pub mod table;
pub mod verdicts;

pub use metrics::{Confusion, average_precision, quantile, recall_at_fpr, roc_auc};
