//! Shared by the master and the agent: the table of resources bosun serves, label and
//! field selectors, the validation rules for names and labels, and the HTTPS client
//! the agent (and the tests and benchmarks) use to talk to the API server.
//! Kubernetes object shapes come from k8s-openapi, re-exported here so every crate
//! uses one version. This crate depends on nothing else of bosun's; only
//! [`client`] does I/O (network, and reading kubeconfig files), everything else is pure.

pub mod cidr;
pub mod client;
pub mod expansion;
pub mod quantity;
pub mod resources;
pub mod selector;
pub mod validation;

pub use k8s_openapi;
