//! The agent's local image store: content-addressed, deduplicated images under
//! `<data-dir>/content`, imported from OCI layout tars, `docker save` tars or root
//! filesystem directories, listed, removed, and resolved to unpacked layer
//! directories for the runtime. Registry pulls ([`pull`], with mirrors and
//! credentials from [`registries`] and [`auth`]) add content through the same
//! [`StoreWriter`]; [`gc`] chooses images to remove when the disk fills up.
//! Mounting layers is the runtime's job, not this module's.

mod archive;
pub mod auth;
pub mod digest;
pub mod display;
mod error;
pub mod gc;
mod import;
pub mod platform;
pub mod pull;
pub mod reference;
pub mod registries;
mod store;
pub mod unpack;
pub mod whiteout;

pub use error::ImageError;
pub use import::{ImportEvent, ImportedImage};
pub use pull::{PullError, PullEvent, Pulled, Puller};
pub use reference::{Reference, ReferenceError};
pub use registries::{Registries, RegistriesError};
pub use store::{
    GcGuard, GcReport, ImageRecord, ImageStore, ImageSummary, LayerInfo, ResolvedImage, StoreWriter,
};

/// The store's directory inside the agent's data dir.
pub fn store_dir(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("content")
}

#[cfg(test)]
mod tests;
