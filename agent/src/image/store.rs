//! The content-addressed image store under `DIR/content/`:
//!
//! ```text
//! blobs/sha256/<hex>          manifests and configs, named by their digest
//! layers/<hex>/layer.json     one unpacked layer per diffID, shared by every image
//! layers/<hex>/rootfs/        … its files, whiteouts already in overlayfs form
//! refs.json                   reference → manifest, config, layers (the only mutable file)
//! refs.lock, gc.lock          flock(2) files
//! tmp/                        work in progress, renamed into place when complete
//! ```
//!
//! Every write lands in `tmp/` first and is renamed into place once complete and
//! synced, so a crash leaves at most garbage in `tmp/`, and a reader sees either the
//! old or the new state. Writers ([`StoreWriter`]) hold `gc.lock` shared for their
//! whole run so that garbage collection (exclusive) never deletes a layer an import
//! has unpacked but not tagged yet; `refs.json` is rewritten under `refs.lock`.
//! Layer tars are not kept: a layer is verified (blob digest and diffID) while it
//! is unpacked. Registry pulls add content through the same [`StoreWriter`].

use super::digest::{sha256_hex, sha256_of};
use super::error::{io_err, json_err, ImageError};
use super::reference::Reference;
use super::unpack::{unpack_layer_expecting, Unpacked};
use nix::fcntl::{Flock, FlockArg};
use oci_spec::image::ImageConfiguration;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// What the store keeps about one reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageRecord {
    /// `sha256:` digest of the manifest blob.
    pub manifest: String,
    /// `sha256:` digest of the config blob: the image id.
    pub config: String,
    /// `registry/repo@sha256:…` when the manifest came from a registry or an OCI layout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo_digest: Option<String>,
    /// diffIDs, bottom layer first.
    pub layers: Vec<String>,
    /// Sum of the layers' uncompressed tar sizes.
    pub size: u64,
    /// The config's `created`, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// When this reference was last tagged (imported or pulled), Unix seconds;
    /// set by [`StoreWriter::tag`]. Garbage collection removes the oldest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_at: Option<i64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct RefsFile {
    version: u32,
    images: BTreeMap<String, ImageRecord>,
}

/// One unpacked layer in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerInfo {
    pub diff_id: String,
    /// Uncompressed tar size.
    pub size: u64,
    /// The directory to use as an overlay lower dir.
    #[serde(skip)]
    pub path: PathBuf,
}

/// One image for `bosun image ls`: every reference to one config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSummary {
    pub references: Vec<String>,
    /// `sha256:<config digest>`
    pub id: String,
    pub size: u64,
    pub created: Option<String>,
}

/// What the kubelet needs to start a container of an image.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// The normalised reference, e.g. `docker.io/library/busybox:latest`.
    pub reference: String,
    /// `sha256:<config digest>`
    pub id: String,
    pub repo_digest: Option<String>,
    /// Unpacked layer dirs, bottom first.
    pub layers: Vec<PathBuf>,
    pub config: ImageConfiguration,
}

/// What a garbage collection removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    pub blobs: usize,
    pub layers: usize,
}

/// The image store rooted at `DIR/content`.
#[derive(Debug, Clone)]
pub struct ImageStore {
    root: PathBuf,
    preserve_owner: bool,
}

const REFS: &str = "refs.json";
const REFS_VERSION: u32 = 1;

impl ImageStore {
    /// Opens (creating if needed) the store in `root`, normally `<data-dir>/content`.
    pub fn open(root: &Path) -> Result<ImageStore, ImageError> {
        for d in ["blobs/sha256", "layers", "tmp"] {
            let p = root.join(d);
            fs::create_dir_all(&p).map_err(io_err(format!("creating {}", p.display())))?;
        }
        Ok(ImageStore {
            root: root.to_path_buf(),
            preserve_owner: nix::unistd::geteuid().is_root(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Holds off garbage collection until dropped, without borrowing the store
    /// (a registry pull holds one across its awaits). Blocks while a collection runs.
    pub fn gc_guard(&self) -> Result<GcGuard, ImageError> {
        Ok(GcGuard(self.lock("gc.lock", FlockArg::LockShared)?))
    }

    /// Starts writing: holds off garbage collection until dropped.
    pub fn writer(&self) -> Result<StoreWriter<'_>, ImageError> {
        let gc = self.lock("gc.lock", FlockArg::LockShared)?;
        Ok(StoreWriter {
            store: self,
            _gc: gc,
        })
    }

    fn lock(&self, name: &str, how: FlockArg) -> Result<Flock<File>, ImageError> {
        let path = self.root.join(name);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err(format!("opening {}", path.display())))?;
        Flock::lock(file, how).map_err(|(_, e)| ImageError::Io {
            what: format!("locking {}", path.display()),
            source: io::Error::from(e),
        })
    }

    fn blob_path(&self, digest: &str) -> Result<PathBuf, ImageError> {
        let hex = sha256_hex(digest).ok_or_else(|| {
            ImageError::invalid(format!("digest {digest:?}"), "not a sha256 digest")
        })?;
        Ok(self.root.join("blobs/sha256").join(hex))
    }

    fn layer_dir(&self, diff_id: &str) -> Result<PathBuf, ImageError> {
        let hex = sha256_hex(diff_id).ok_or_else(|| {
            ImageError::invalid(format!("diffID {diff_id:?}"), "not a sha256 digest")
        })?;
        Ok(self.root.join("layers").join(hex))
    }

    /// The blob `digest` as stored (it was verified when written).
    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>, ImageError> {
        let p = self.blob_path(digest)?;
        fs::read(&p).map_err(io_err(format!("reading blob {digest}")))
    }

    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).is_ok_and(|p| p.exists())
    }

    /// The unpacked layer with this diffID, if the store has it.
    pub fn layer(&self, diff_id: &str) -> Option<LayerInfo> {
        let dir = self.layer_dir(diff_id).ok()?;
        let meta = fs::read(dir.join("layer.json")).ok()?;
        let mut info: LayerInfo = serde_json::from_slice(&meta).ok()?;
        info.path = dir.join("rootfs");
        Some(info)
    }

    fn read_refs(&self) -> Result<RefsFile, ImageError> {
        let p = self.root.join(REFS);
        match fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b).map_err(json_err(p.display().to_string())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(RefsFile {
                version: REFS_VERSION,
                images: BTreeMap::new(),
            }),
            Err(e) => Err(io_err(format!("reading {}", p.display()))(e)),
        }
    }

    fn write_refs(&self, refs: &RefsFile) -> Result<(), ImageError> {
        let bytes = serde_json::to_vec_pretty(refs).map_err(json_err("refs table"))?;
        write_atomic(&self.root.join("tmp"), &self.root.join(REFS), &bytes)
    }

    /// Changes the refs table under its lock.
    fn update_refs<T>(
        &self,
        f: impl FnOnce(&mut RefsFile) -> Result<T, ImageError>,
    ) -> Result<T, ImageError> {
        let _lock = self.lock("refs.lock", FlockArg::LockExclusive)?;
        let mut refs = self.read_refs()?;
        let out = f(&mut refs)?;
        refs.version = REFS_VERSION;
        self.write_refs(&refs)?;
        Ok(out)
    }

    /// Every reference and what it points at.
    pub fn records(&self) -> Result<BTreeMap<String, ImageRecord>, ImageError> {
        Ok(self.read_refs()?.images)
    }

    /// Every image, with all its references, sorted by first reference.
    pub fn list(&self) -> Result<Vec<ImageSummary>, ImageError> {
        let refs = self.read_refs()?;
        let mut by_id: BTreeMap<&str, ImageSummary> = BTreeMap::new();
        for (name, rec) in &refs.images {
            let s = by_id.entry(&rec.config).or_insert_with(|| ImageSummary {
                references: Vec::new(),
                id: rec.config.clone(),
                size: rec.size,
                created: rec.created.clone(),
            });
            s.references.push(name.clone());
        }
        let mut out: Vec<ImageSummary> = by_id.into_values().collect();
        out.sort_by(|a, b| a.references.cmp(&b.references));
        Ok(out)
    }

    /// Finds `image` (a reference, or an image id `sha256:…` / unique hex prefix of
    /// at least 12 characters) and returns what a container needs. Reads the refs
    /// table and one config blob; hashes nothing.
    pub fn resolve(&self, image: &str) -> Result<ResolvedImage, ImageError> {
        let refs = self.read_refs()?;
        let (name, rec) = find(&refs, image)?
            .into_iter()
            .next()
            .ok_or_else(|| ImageError::NotFound(image.to_string()))?;
        let config_bytes = self.read_blob(&rec.config)?;
        let config = ImageConfiguration::from_reader(&config_bytes[..])
            .map_err(|e| ImageError::invalid(format!("config {}", rec.config), e.to_string()))?;
        let mut layers = Vec::with_capacity(rec.layers.len());
        for diff_id in &rec.layers {
            let dir = self.layer_dir(diff_id)?.join("rootfs");
            if !dir.is_dir() {
                return Err(ImageError::invalid(
                    format!("image {name}"),
                    format!("layer {diff_id} is missing from the store; import the image again"),
                ));
            }
            layers.push(dir);
        }
        Ok(ResolvedImage {
            reference: name,
            id: rec.config.clone(),
            repo_digest: rec.repo_digest.clone(),
            layers,
            config,
        })
    }

    /// Removes `image` (a reference, or an id: then every reference to it), then
    /// deletes blobs and layers no reference uses any more. Returns the removed
    /// references.
    pub fn remove(&self, image: &str) -> Result<Vec<String>, ImageError> {
        let removed = self.update_refs(|refs| {
            let names: Vec<String> = find(refs, image)?.into_iter().map(|(n, _)| n).collect();
            if names.is_empty() {
                return Err(ImageError::NotFound(image.to_string()));
            }
            for n in &names {
                refs.images.remove(n);
            }
            Ok(names)
        })?;
        self.gc()?;
        Ok(removed)
    }

    /// Deletes every blob and layer that no reference uses, and leftovers in `tmp/`.
    /// Waits for running imports to finish.
    pub fn gc(&self) -> Result<GcReport, ImageError> {
        let _gc = self.lock("gc.lock", FlockArg::LockExclusive)?;
        let refs = self.read_refs()?;
        let mut live_blobs = BTreeSet::new();
        let mut live_layers = BTreeSet::new();
        for rec in refs.images.values() {
            for d in [&rec.manifest, &rec.config] {
                if let Some(h) = sha256_hex(d) {
                    live_blobs.insert(h.to_string());
                }
            }
            for d in &rec.layers {
                if let Some(h) = sha256_hex(d) {
                    live_layers.insert(h.to_string());
                }
            }
        }
        let tmp = self.root.join("tmp");
        let mut report = GcReport::default();
        for (sub, live, count) in [
            ("blobs/sha256", &live_blobs, &mut report.blobs),
            ("layers", &live_layers, &mut report.layers),
        ] {
            let dir = self.root.join(sub);
            for entry in fs::read_dir(&dir).map_err(io_err(format!("reading {}", dir.display())))? {
                let entry = entry.map_err(io_err(format!("reading {}", dir.display())))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if live.contains(&name) {
                    continue;
                }
                // Out of sight first, so nobody sees a half-deleted layer.
                let doomed = tmp.join(format!("gc-{}-{name}", rand::random::<u32>()));
                fs::rename(entry.path(), &doomed)
                    .map_err(io_err(format!("removing {}", entry.path().display())))?;
                *count += 1;
            }
        }
        for entry in fs::read_dir(&tmp).map_err(io_err(format!("reading {}", tmp.display())))? {
            let entry = entry.map_err(io_err(format!("reading {}", tmp.display())))?;
            remove_any(&entry.path())?;
        }
        Ok(report)
    }
}

/// The references `image` names: one reference, or all references to an id
/// (`sha256:<hex>`, or a hex prefix of at least 12 characters).
fn find(refs: &RefsFile, image: &str) -> Result<Vec<(String, ImageRecord)>, ImageError> {
    let is_hex = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let id_prefix = match image.strip_prefix("sha256:") {
        Some(h) if is_hex(h) && !h.is_empty() && h.len() <= 64 => h,
        Some(_) => return Err(ImageError::Usage(format!("{image:?} is not an image id"))),
        None => {
            let parsed = Reference::parse(image);
            if let Ok(r) = &parsed {
                let name = r.to_string();
                if let Some(rec) = refs.images.get(&name) {
                    return Ok(vec![(name, rec.clone())]);
                }
            }
            if image.len() >= 12 && image.len() <= 64 && is_hex(image) {
                image
            } else {
                parsed?;
                return Ok(Vec::new());
            }
        }
    };
    let matches: Vec<(String, ImageRecord)> = refs
        .images
        .iter()
        .filter(|(_, r)| {
            r.config
                .strip_prefix("sha256:")
                .is_some_and(|h| h.starts_with(id_prefix))
        })
        .map(|(n, r)| (n.clone(), r.clone()))
        .collect();
    let ids: BTreeSet<&str> = matches.iter().map(|(_, r)| r.config.as_str()).collect();
    if ids.len() > 1 {
        return Err(ImageError::Usage(format!(
            "image id prefix {image} matches {} images; give more of it",
            ids.len()
        )));
    }
    Ok(matches)
}

/// While it lives, garbage collection waits (see [`ImageStore::gc_guard`]).
pub struct GcGuard(#[allow(dead_code)] Flock<File>);

/// Adds content to the store; garbage collection waits while one exists.
pub struct StoreWriter<'a> {
    store: &'a ImageStore,
    _gc: Flock<File>,
}

impl StoreWriter<'_> {
    pub fn store(&self) -> &ImageStore {
        self.store
    }

    /// Stores `bytes` as the blob `digest` after checking that they hash to it.
    pub fn put_blob(&self, digest: &str, bytes: &[u8]) -> Result<(), ImageError> {
        let path = self.store.blob_path(digest)?;
        let actual = sha256_of(bytes);
        if actual != digest {
            return Err(ImageError::DigestMismatch {
                what: format!("blob {digest}"),
                expected: digest.to_string(),
                actual,
            });
        }
        if path.exists() {
            return Ok(());
        }
        write_atomic(&self.store.root.join("tmp"), &path, bytes)
    }

    /// Unpacks the layer blob `blob` (plain, gzip or zstd tar) unless the store has
    /// `diff_id` already (then `blob` is not read). The tar must hash to `diff_id`
    /// and, when given, the blob as read to `blob_digest`; otherwise nothing is kept.
    pub fn put_layer(
        &self,
        blob: impl Read,
        diff_id: &str,
        blob_digest: Option<&str>,
    ) -> Result<(LayerInfo, bool), ImageError> {
        if let Some(info) = self.store.layer(diff_id) {
            return Ok((info, true));
        }
        let final_dir = self.store.layer_dir(diff_id)?;
        let tmp = TempDir::new(&self.store.root.join("tmp"), "layer")?;
        let rootfs = tmp.0.join("rootfs");
        fs::create_dir(&rootfs).map_err(io_err(format!("creating {}", rootfs.display())))?;
        let Unpacked {
            diff_id: actual,
            size,
            blob_digest: actual_blob,
            ..
        } = unpack_layer_expecting(blob, &rootfs, self.store.preserve_owner, blob_digest)?;
        if let Some(expected) = blob_digest {
            if expected != actual_blob {
                return Err(ImageError::DigestMismatch {
                    what: format!("layer blob {expected}"),
                    expected: expected.to_string(),
                    actual: actual_blob,
                });
            }
        }
        if actual != diff_id {
            return Err(ImageError::DigestMismatch {
                what: format!("layer {diff_id} (uncompressed)"),
                expected: diff_id.to_string(),
                actual,
            });
        }
        let info = LayerInfo {
            diff_id: diff_id.to_string(),
            size,
            path: final_dir.join("rootfs"),
        };
        let meta = serde_json::to_vec(&info).map_err(json_err("layer metadata"))?;
        let meta_path = tmp.0.join("layer.json");
        fs::write(&meta_path, meta).map_err(io_err(format!("writing {}", meta_path.display())))?;
        let dir = File::open(&tmp.0).map_err(io_err(format!("opening {}", tmp.0.display())))?;
        nix::unistd::syncfs(&dir).map_err(|e| ImageError::Io {
            what: format!("syncing {}", tmp.0.display()),
            source: io::Error::from(e),
        })?;
        match fs::rename(&tmp.0, &final_dir) {
            Ok(()) => {
                tmp.keep();
                sync_dir(&self.store.root.join("layers"))?;
                Ok((info, false))
            }
            // Another import finished the same layer first.
            Err(_) if final_dir.join("layer.json").exists() => Ok((info, true)),
            Err(e) => Err(io_err(format!("moving layer into {}", final_dir.display()))(e)),
        }
    }

    /// Points `reference` at an image whose blobs and layers are all in the store.
    pub fn tag(&self, reference: &Reference, mut record: ImageRecord) -> Result<(), ImageError> {
        if record.stored_at.is_none() {
            record.stored_at = Some(jiff::Timestamp::now().as_second());
        }
        for d in [&record.manifest, &record.config] {
            if !self.store.has_blob(d) {
                return Err(ImageError::invalid(
                    format!("image {reference}"),
                    format!("blob {d} is not in the store"),
                ));
            }
        }
        for l in &record.layers {
            if self.store.layer(l).is_none() {
                return Err(ImageError::invalid(
                    format!("image {reference}"),
                    format!("layer {l} is not in the store"),
                ));
            }
        }
        self.store.update_refs(|refs| {
            refs.images.insert(reference.to_string(), record);
            Ok(())
        })
    }
}

/// A directory in `tmp/`, removed on drop unless kept.
pub(crate) struct TempDir(pub PathBuf);

impl TempDir {
    pub(crate) fn new(tmp: &Path, prefix: &str) -> Result<TempDir, ImageError> {
        let p = tmp.join(format!("{prefix}-{:016x}", rand::random::<u64>()));
        fs::create_dir(&p).map_err(io_err(format!("creating {}", p.display())))?;
        Ok(TempDir(p))
    }

    fn keep(mut self) {
        self.0 = PathBuf::new();
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.0.as_os_str().is_empty() {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

fn remove_any(p: &Path) -> Result<(), ImageError> {
    let r = match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    };
    r.map_err(io_err(format!("removing {}", p.display())))
}

/// Writes `dest` as a whole: a synced temp file in `tmp`, renamed over it.
pub(crate) fn write_atomic(tmp: &Path, dest: &Path, bytes: &[u8]) -> Result<(), ImageError> {
    let t = tmp.join(format!("file-{:016x}", rand::random::<u64>()));
    let res = (|| {
        let mut f = File::create(&t)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&t, dest)
    })();
    if let Err(e) = res {
        let _ = fs::remove_file(&t);
        return Err(io_err(format!("writing {}", dest.display()))(e));
    }
    if let Some(parent) = dest.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), ImageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(format!("syncing {}", dir.display())))
}
