//! The Deployment controller (being written).
pub mod revision;
pub mod rollout;
pub mod status;
use super::{Informers, Options};
use crate::apiserver::Kube;
use std::sync::Arc;
pub fn start(_kube: &Kube, _informers: &Arc<Informers>, _options: &Options) {}
