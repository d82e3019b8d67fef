//! The bosun master: the Kubernetes-compatible API server (`apiserver`), the durable
//! store behind it (`store`), authentication and PKI (`auth`), the patch engines
//! (`patch`) and the process that ties them together (`daemon`). Controllers and the
//! scheduler will live here too; the agent does not.

pub mod apiserver;
pub mod auth;
pub mod controllers;
pub mod daemon;
pub mod patch;
pub mod scheduler;
pub mod store;
#[cfg(test)]
mod testkit;
