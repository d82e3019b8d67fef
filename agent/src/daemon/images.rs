//! The agent's image chores: the registries configuration (`--insecure-registry`,
//! `--registries-file`), air-gap images imported when the agent starts
//! (`DATA/images/*.tar`), and image garbage collection by disk use every few
//! minutes, sparing images any container on this host uses.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::image::gc::{self, DiskUse, GcPolicy};
use crate::image::{ImageStore, ImportEvent, Registries};
use crate::runtime::Runtime;

/// How often image garbage collection looks at the disk.
const GC_EVERY: Duration = Duration::from_secs(300);

/// The image flags of `bosun agent`.
#[derive(Clone, Debug)]
pub struct ImageOptions {
    /// Registries reached over plain HTTP (`HOST:PORT`).
    pub insecure_registries: Vec<String>,
    /// k3s-style registries.yaml; a missing file is no configuration.
    pub registries_file: PathBuf,
    pub gc: GcPolicy,
}

impl Default for ImageOptions {
    fn default() -> Self {
        ImageOptions {
            insecure_registries: Vec::new(),
            registries_file: PathBuf::from("/etc/bosun/registries.yaml"),
            gc: GcPolicy::default(),
        }
    }
}

impl ImageOptions {
    /// The registries configuration, or one line saying what is wrong with it.
    pub fn registries(&self) -> Result<Registries, String> {
        if self.gc.low_percent >= self.gc.high_percent || self.gc.high_percent > 100 {
            return Err(format!(
                "--image-gc-low-threshold ({}) must be below --image-gc-high-threshold ({}), both at most 100",
                self.gc.low_percent, self.gc.high_percent
            ));
        }
        Registries::load(&self.registries_file, &self.insecure_registries)
            .map_err(|e| crate::error_chain(&e))
    }
}

/// The archives of the air-gap directory, sorted: `*.tar`, `*.tar.gz`, `*.tgz`, `*.tar.zst`.
pub fn airgap_archives(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter(|p| {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            [".tar", ".tar.gz", ".tgz", ".tar.zst"]
                .iter()
                .any(|s| n.ends_with(s))
        })
        .collect();
    out.sort();
    out
}

/// Imports every archive of `dir` (blocking), printing a line per layer and
/// image; a broken archive is reported and skipped.
pub fn import_airgap(store: &ImageStore, dir: &Path, say: &dyn Fn(&str)) {
    for archive in airgap_archives(dir) {
        say(&format!(
            "importing air-gap images from {}",
            archive.display()
        ));
        let mut progress = |e: &ImportEvent| match e {
            ImportEvent::Layer {
                index,
                count,
                diff_id,
                reused,
                ..
            } => say(&format!(
                "  layer {index}/{count} {diff_id} {}",
                if *reused {
                    "already present"
                } else {
                    "unpacked"
                }
            )),
            ImportEvent::Tagged { reference, .. } => say(&format!("  imported {reference}")),
        };
        if let Err(e) = store.import_archive_with(&archive, None, &mut progress) {
            say(&format!(
                "  skipping {}: {}",
                archive.display(),
                crate::error_chain(&e)
            ));
        }
    }
}

/// The images containers on this host use (references and ids).
fn images_in_use(runtime: &Runtime) -> Result<HashSet<String>, String> {
    let pods = runtime.list().map_err(|e| crate::error_chain(&e))?;
    Ok(pods
        .into_iter()
        .flat_map(|p| p.containers)
        .flat_map(|c| [c.image_ref, c.image_id])
        .collect())
}

/// One round of image garbage collection; returns the removed references.
pub fn collect_once(
    store: &ImageStore,
    runtime: &Runtime,
    policy: GcPolicy,
) -> Result<Vec<String>, String> {
    let (capacity, available) =
        crate::node::facts::filesystem(store.root()).map_err(|e| crate::error_chain(&e))?;
    let in_use = images_in_use(runtime)?;
    gc::collect(
        store,
        &in_use,
        DiskUse {
            capacity,
            available,
        },
        policy,
    )
    .map_err(|e| crate::error_chain(&e))
}

/// Runs image garbage collection every few minutes, forever.
pub async fn gc_loop(store: ImageStore, runtime: Runtime, policy: GcPolicy) {
    loop {
        let (s, r) = (store.clone(), runtime.clone());
        match tokio::task::spawn_blocking(move || collect_once(&s, &r, policy)).await {
            Ok(Ok(removed)) if !removed.is_empty() => {
                tracing::info!(removed = ?removed, "image garbage collection removed unused images")
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "image garbage collection"),
            Err(e) => tracing::warn!(error = %e, "image garbage collection"),
        }
        tokio::time::sleep(GC_EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn airgap_archives_are_the_tar_files() {
        let d = tempfile::tempdir().unwrap();
        for n in ["b.tar", "a.tar.gz", "c.txt", "d.tar.zst"] {
            std::fs::write(d.path().join(n), b"").unwrap();
        }
        std::fs::create_dir(d.path().join("e.tar")).unwrap();
        let names: Vec<String> = airgap_archives(d.path())
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.tar.gz", "b.tar", "d.tar.zst"]);
        assert!(airgap_archives(Path::new("/nonexistent")).is_empty());
    }

    #[test]
    fn thresholds_must_be_ordered() {
        let mut o = ImageOptions {
            registries_file: PathBuf::from("/nonexistent/r.yaml"),
            ..ImageOptions::default()
        };
        assert!(o.registries().is_ok());
        o.gc.low_percent = 90;
        assert!(o.registries().unwrap_err().contains("below"));
    }
}
