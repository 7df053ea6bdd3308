//! One file per console page: each reads through the JSON API's handlers
//! (`super::call`) and renders HTML with `super::render`.

pub mod alert;
pub mod alerts;
pub mod audit;
pub mod cluster;
pub mod intel;
pub mod mesh;
pub mod models;
pub mod overview;
pub mod policy;
pub mod review;
