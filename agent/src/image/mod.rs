//! The agent's local image store: content-addressed, deduplicated images under
//! `<data-dir>/content`, imported from OCI layout tars, `docker save` tars or root
//! filesystem directories, listed, removed, and resolved to unpacked layer
//! directories for the runtime. Registry pulls (a later issue) add content through
//! the same [`StoreWriter`]. Mounting layers is the runtime's job, not this module's.

mod archive;
pub mod digest;
pub mod display;
mod error;
mod import;
pub mod platform;
pub mod reference;
mod store;
pub mod unpack;
pub mod whiteout;

pub use error::ImageError;
pub use import::{ImportEvent, ImportedImage};
pub use reference::{Reference, ReferenceError};
pub use store::{
    GcReport, ImageRecord, ImageStore, ImageSummary, LayerInfo, ResolvedImage, StoreWriter,
};

/// The store's directory inside the agent's data dir.
pub fn store_dir(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("content")
}

#[cfg(test)]
mod tests;
