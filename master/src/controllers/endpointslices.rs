//! placeholder
use super::{Informers, Options};
use crate::apiserver::Kube;
use std::sync::Arc;
pub fn start(kube: &Kube, informers: &Arc<Informers>, options: &Options) {
    let _ = (kube, informers, options);
}
