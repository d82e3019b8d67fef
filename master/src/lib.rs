//! The bosun master: the Kubernetes-compatible API server (`apiserver`), the durable
//! store behind it (`store`), authentication and PKI (`auth`) and the patch engines
//! (`patch`). Controllers and the scheduler will live here too; the agent does not.

pub mod apiserver;
pub mod auth;
pub mod patch;
pub mod store;
