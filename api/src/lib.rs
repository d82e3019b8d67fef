//! Shared by the master and the agent: the table of resources bosun serves, label and
//! field selectors, and the validation rules for names and labels. Kubernetes object
//! shapes come from k8s-openapi, re-exported here so every crate uses one version.
//! This crate depends on nothing else of bosun's and does no I/O.

pub mod quantity;
pub mod resources;
pub mod selector;
pub mod validation;

pub use k8s_openapi;
