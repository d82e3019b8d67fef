//! Importing images into the store: an OCI image layout tar (`skopeo copy …
//! oci-archive:`, `umoci`, `docker save` of docker ≥ 25), a classic `docker save`
//! tar (`manifest.json`), or a root filesystem directory made into a one-layer
//! image (like `docker import`). Every blob is checked against its digest and every
//! layer against its diffID before a reference points at it.

use super::archive::Archive;
use super::digest::{sha256_hex, sha256_of, HashingReader};
use super::error::{io_err, json_err, ImageError};
use super::platform;
use super::reference::Reference;
use super::store::{ImageRecord, ImageStore, StoreWriter, TempDir};
use super::unpack::{sniff, Compression};
use oci_spec::image::{
    Arch, ConfigBuilder, Descriptor, HistoryBuilder, ImageConfiguration, ImageIndex, ImageManifest,
    ImageManifestBuilder, MediaType, Os, RootFsBuilder,
};
use serde::Deserialize;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

/// Progress of an import, one event per layer and per reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportEvent {
    Layer {
        /// 1-based position in the image, and the image's layer count.
        index: usize,
        count: usize,
        diff_id: String,
        size: u64,
        /// The store had it already.
        reused: bool,
    },
    Tagged {
        reference: String,
        id: String,
    },
}

/// One reference an import created or moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedImage {
    pub reference: String,
    /// `sha256:<config digest>`
    pub id: String,
}

const OCI_NAME: &str = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME: &str = "io.containerd.image.name";
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl ImageStore {
    /// Imports every image of the archive at `path`; `tag` names the image when the
    /// archive holds exactly one (and overrides the names inside).
    pub fn import_archive(
        &self,
        path: &Path,
        tag: Option<&str>,
    ) -> Result<Vec<ImportedImage>, ImageError> {
        self.import_archive_with(path, tag, &mut |_| {})
    }

    /// [`ImageStore::import_archive`], reporting progress to `progress`.
    pub fn import_archive_with(
        &self,
        path: &Path,
        tag: Option<&str>,
        progress: &mut dyn FnMut(&ImportEvent),
    ) -> Result<Vec<ImportedImage>, ImageError> {
        let tag = tag.map(Reference::parse).transpose()?;
        let writer = self.writer()?;
        // A compressed archive (`docker save | gzip`) is decompressed to tmp/ first.
        let _plain;
        let archive_path = match compression_of(path)? {
            Compression::None => path.to_path_buf(),
            c => {
                _plain = TempDir::new(&self.root().join("tmp"), "archive")?;
                let out = _plain.0.join("archive.tar");
                decompress_to(path, c, &out)?;
                out
            }
        };
        let archive = Archive::open(&archive_path)?;
        if archive.contains("index.json") && archive.contains("oci-layout") {
            import_oci(&writer, &archive, path, tag.as_ref(), progress)
        } else if archive.contains("manifest.json") {
            import_docker(&writer, &archive, path, tag.as_ref(), progress)
        } else {
            Err(ImageError::Usage(format!(
                "{} is neither an OCI image layout tar (index.json, oci-layout) nor a docker save tar (manifest.json)",
                path.display()
            )))
        }
    }

    /// Makes a one-layer image of the directory `rootfs` and names it `reference`.
    pub fn import_rootfs(
        &self,
        rootfs: &Path,
        reference: &str,
    ) -> Result<ImportedImage, ImageError> {
        self.import_rootfs_with(rootfs, reference, &mut |_| {})
    }

    /// [`ImageStore::import_rootfs`], reporting progress to `progress`.
    pub fn import_rootfs_with(
        &self,
        rootfs: &Path,
        reference: &str,
        progress: &mut dyn FnMut(&ImportEvent),
    ) -> Result<ImportedImage, ImageError> {
        let reference = Reference::parse(reference)?;
        if !rootfs.is_dir() {
            return Err(ImageError::Usage(format!(
                "--rootfs {} is not a directory",
                rootfs.display()
            )));
        }
        let writer = self.writer()?;
        let tmp = TempDir::new(&self.root().join("tmp"), "rootfs")?;
        let tar_path = tmp.0.join("layer.tar");
        let what = || format!("making a layer of {}", rootfs.display());
        {
            let mut b = tar::Builder::new(io::BufWriter::new(
                File::create(&tar_path).map_err(io_err(what()))?,
            ));
            b.follow_symlinks(false);
            b.mode(tar::HeaderMode::Complete);
            b.append_dir_all(".", rootfs).map_err(io_err(what()))?;
            let mut w = b.into_inner().map_err(io_err(what()))?;
            io::Write::flush(&mut w).map_err(io_err(what()))?;
        }
        let mut hashing = HashingReader::new(File::open(&tar_path).map_err(io_err(what()))?);
        hashing.drain().map_err(io_err(what()))?;
        let (diff_id, tar_size) = hashing.finish();
        let file = File::open(&tar_path).map_err(io_err(what()))?;
        let (layer, reused) = writer.put_layer(file, &diff_id, None)?;
        progress(&ImportEvent::Layer {
            index: 1,
            count: 1,
            diff_id: diff_id.clone(),
            size: layer.size,
            reused,
        });
        let now = jiff::Timestamp::now().to_string();
        let mut config = ImageConfiguration::default();
        config.set_created(Some(now.clone()));
        config.set_os(Os::Linux);
        config.set_architecture(Arch::default());
        config.set_config(Some(
            ConfigBuilder::default()
                .env(vec![DEFAULT_PATH.to_string()])
                .build()
                .map_err(|e| ImageError::invalid("image config", e.to_string()))?,
        ));
        config.set_rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(vec![diff_id.clone()])
                .build()
                .map_err(|e| ImageError::invalid("image config", e.to_string()))?,
        );
        config.set_history(Some(vec![HistoryBuilder::default()
            .created(now.clone())
            .created_by(format!("bosun image import --rootfs {}", rootfs.display()))
            .build()
            .map_err(|e| ImageError::invalid("image config", e.to_string()))?]));
        let config_bytes = serde_json::to_vec(&config).map_err(json_err("image config"))?;
        let config_digest = sha256_of(&config_bytes);
        writer.put_blob(&config_digest, &config_bytes)?;
        let layers = vec![Descriptor::new(
            MediaType::ImageLayer,
            tar_size,
            digest(&diff_id)?,
        )];
        let manifest = build_manifest(&config_digest, config_bytes.len() as u64, layers)?;
        let imported = commit(
            &writer,
            &[reference],
            &config,
            &config_digest,
            &manifest,
            false,
            progress,
        )?;
        imported
            .into_iter()
            .next()
            .ok_or_else(|| ImageError::invalid("rootfs import", "no image was tagged"))
    }
}

fn compression_of(path: &Path) -> Result<Compression, ImageError> {
    let f = File::open(path).map_err(io_err(format!("opening {}", path.display())))?;
    let mut r = BufReader::new(f);
    let head = r
        .fill_buf()
        .map_err(io_err(format!("reading {}", path.display())))?;
    Ok(sniff(head))
}

fn decompress_to(path: &Path, c: Compression, out: &Path) -> Result<(), ImageError> {
    let what = || format!("decompressing {}", path.display());
    let f = BufReader::new(File::open(path).map_err(io_err(what()))?);
    let mut reader: Box<dyn Read> = match c {
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(f)),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::with_buffer(f).map_err(io_err(what()))?)
        }
        Compression::None => Box::new(f),
    };
    let mut o = File::create(out).map_err(io_err(what()))?;
    io::copy(&mut reader, &mut o).map_err(io_err(what()))?;
    Ok(())
}

fn digest(s: &str) -> Result<oci_spec::image::Digest, ImageError> {
    s.parse().map_err(|e: oci_spec::OciSpecError| {
        ImageError::invalid(format!("digest {s:?}"), e.to_string())
    })
}

fn build_manifest(
    config_digest: &str,
    config_size: u64,
    layers: Vec<Descriptor>,
) -> Result<Vec<u8>, ImageError> {
    let m = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(Descriptor::new(
            MediaType::ImageConfig,
            config_size,
            digest(config_digest)?,
        ))
        .layers(layers)
        .build()
        .map_err(|e| ImageError::invalid("image manifest", e.to_string()))?;
    serde_json::to_vec(&m).map_err(json_err("image manifest"))
}

/// Stores `manifest` and tags `names` with it; its config blob and layers must be
/// stored already. `from_registry` says whether the manifest digest is a real repo
/// digest (it is not when bosun made the manifest).
fn commit(
    writer: &StoreWriter<'_>,
    names: &[Reference],
    config: &ImageConfiguration,
    config_digest: &str,
    manifest: &[u8],
    from_registry: bool,
    progress: &mut dyn FnMut(&ImportEvent),
) -> Result<Vec<ImportedImage>, ImageError> {
    let manifest_digest = sha256_of(manifest);
    writer.put_blob(&manifest_digest, manifest)?;
    let layers: Vec<String> = config.rootfs().diff_ids().clone();
    let mut size = 0;
    for l in &layers {
        size += writer
            .store()
            .layer(l)
            .map(|i| i.size)
            .ok_or_else(|| ImageError::invalid(format!("layer {l}"), "not in the store"))?;
    }
    let mut out = Vec::new();
    for name in names {
        let record = ImageRecord {
            manifest: manifest_digest.clone(),
            config: config_digest.to_string(),
            repo_digest: from_registry.then(|| name.with_digest(&manifest_digest)),
            layers: layers.clone(),
            size,
            created: config.created().clone(),
            stored_at: None,
        };
        writer.tag(name, record)?;
        let reference = name.to_string();
        progress(&ImportEvent::Tagged {
            reference: reference.clone(),
            id: config_digest.to_string(),
        });
        out.push(ImportedImage {
            reference,
            id: config_digest.to_string(),
        });
    }
    Ok(out)
}

pub(super) fn parse_config(bytes: &[u8], what: &str) -> Result<ImageConfiguration, ImageError> {
    let c = ImageConfiguration::from_reader(bytes)
        .map_err(|e| ImageError::invalid(what, e.to_string()))?;
    if c.rootfs()
        .diff_ids()
        .iter()
        .any(|d| sha256_hex(d).is_none())
    {
        return Err(ImageError::invalid(what, "a diffID is not a sha256 digest"));
    }
    Ok(c)
}

/// Reads a blob of an OCI layout and checks its digest.
fn oci_blob(archive: &Archive, d: &Descriptor) -> Result<Vec<u8>, ImageError> {
    let digest = d.digest().to_string();
    let hex = sha256_hex(&digest).ok_or_else(|| {
        ImageError::invalid(
            format!("blob {digest}"),
            "only sha256 digests are supported",
        )
    })?;
    let bytes = archive.read_small(&format!("blobs/sha256/{hex}"))?;
    let actual = sha256_of(&bytes);
    if actual != digest {
        return Err(ImageError::DigestMismatch {
            what: format!("blob {digest} in {}", archive.path().display()),
            expected: digest,
            actual,
        });
    }
    Ok(bytes)
}

/// The name an OCI layout gives a manifest, if it gives a whole reference
/// (`org.opencontainers.image.ref.name` is often only a tag, which names nothing).
fn oci_name(d: &Descriptor) -> Option<Reference> {
    let ann = d.annotations().as_ref()?;
    if let Some(n) = ann.get(CONTAINERD_NAME) {
        return Reference::parse(n).ok();
    }
    let n = ann.get(OCI_NAME)?;
    if n.contains(':') || n.contains('/') || n.contains('@') {
        Reference::parse(n).ok()
    } else {
        None
    }
}

fn import_oci(
    writer: &StoreWriter<'_>,
    archive: &Archive,
    shown: &Path,
    tag: Option<&Reference>,
    progress: &mut dyn FnMut(&ImportEvent),
) -> Result<Vec<ImportedImage>, ImageError> {
    let index_bytes = archive.read_small("index.json")?;
    let index: ImageIndex = serde_json::from_slice(&index_bytes)
        .map_err(json_err(format!("index.json in {}", shown.display())))?;
    // (names, manifest descriptor), platform chosen where the entry is an index.
    let mut images = Vec::new();
    for d in index.manifests() {
        let name = oci_name(d);
        let mut desc = d.clone();
        for _ in 0..4 {
            if !platform::is_index(desc.media_type()) {
                break;
            }
            let inner: ImageIndex = serde_json::from_slice(&oci_blob(archive, &desc)?)
                .map_err(json_err(format!("index {}", desc.digest())))?;
            desc = platform::select(&inner, &Os::Linux, &Arch::default())
                .cloned()
                .ok_or_else(|| {
                    ImageError::invalid(
                        format!("index {}", desc.digest()),
                        format!("no image for linux/{}", Arch::default()),
                    )
                })?;
        }
        images.push((name, desc));
    }
    check_count(shown, "index.json", images.len(), tag.is_some())?;
    let mut out = Vec::new();
    for (name, desc) in images {
        let name = match (tag, name) {
            (Some(t), _) => t.clone(),
            (None, Some(n)) => n,
            (None, None) => {
                return Err(ImageError::Usage(format!(
                    "image {} in {} has no name; give one with --tag",
                    desc.digest(),
                    shown.display()
                )))
            }
        };
        let manifest_bytes = oci_blob(archive, &desc)?;
        let manifest: ImageManifest = serde_json::from_slice(&manifest_bytes)
            .map_err(json_err(format!("manifest {}", desc.digest())))?;
        let config_digest = manifest.config().digest().to_string();
        let config_bytes = oci_blob(archive, manifest.config())?;
        let config = parse_config(&config_bytes, &format!("config {config_digest}"))?;
        let diff_ids = config.rootfs().diff_ids();
        if diff_ids.len() != manifest.layers().len() {
            return Err(ImageError::invalid(
                format!("image {name}"),
                format!(
                    "manifest has {} layers, config {}",
                    manifest.layers().len(),
                    diff_ids.len()
                ),
            ));
        }
        for (i, (layer, diff_id)) in manifest.layers().iter().zip(diff_ids).enumerate() {
            let blob_digest = layer.digest().to_string();
            let (info, reused) = match writer.store().layer(diff_id) {
                Some(info) => (info, true),
                None => {
                    let hex = sha256_hex(&blob_digest).ok_or_else(|| {
                        ImageError::invalid(
                            format!("layer {blob_digest}"),
                            "only sha256 digests are supported",
                        )
                    })?;
                    let member = archive.open_member(&format!("blobs/sha256/{hex}"))?;
                    writer.put_layer(member, diff_id, Some(&blob_digest))?
                }
            };
            progress(&ImportEvent::Layer {
                index: i + 1,
                count: diff_ids.len(),
                diff_id: diff_id.clone(),
                size: info.size,
                reused,
            });
        }
        writer.put_blob(&config_digest, &config_bytes)?;
        out.extend(commit(
            writer,
            &[name],
            &config,
            &config_digest,
            &manifest_bytes,
            true,
            progress,
        )?);
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

fn import_docker(
    writer: &StoreWriter<'_>,
    archive: &Archive,
    shown: &Path,
    tag: Option<&Reference>,
    progress: &mut dyn FnMut(&ImportEvent),
) -> Result<Vec<ImportedImage>, ImageError> {
    let entries: Vec<DockerManifestEntry> =
        serde_json::from_slice(&archive.read_small("manifest.json")?)
            .map_err(json_err(format!("manifest.json in {}", shown.display())))?;
    check_count(shown, "manifest.json", entries.len(), tag.is_some())?;
    let mut out = Vec::new();
    for e in entries {
        let names: Vec<Reference> = match tag {
            Some(t) => vec![t.clone()],
            None => e
                .repo_tags
                .unwrap_or_default()
                .iter()
                .map(|t| Reference::parse(t))
                .collect::<Result<_, _>>()?,
        };
        if names.is_empty() {
            return Err(ImageError::Usage(format!(
                "image {} in {} has no name; give one with --tag",
                e.config,
                shown.display()
            )));
        }
        let config_bytes = archive.read_small(&e.config)?;
        let config_digest = sha256_of(&config_bytes);
        // The member is named after its digest (`<hex>.json`, `blobs/sha256/<hex>`).
        let stem = Path::new(&e.config)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("");
        let stem = stem.strip_suffix(".json").unwrap_or(stem);
        if stem.len() == 64 && format!("sha256:{stem}") != config_digest {
            return Err(ImageError::DigestMismatch {
                what: format!("config {} in {}", e.config, shown.display()),
                expected: format!("sha256:{stem}"),
                actual: config_digest,
            });
        }
        let config = parse_config(&config_bytes, &format!("config {}", e.config))?;
        let diff_ids = config.rootfs().diff_ids();
        if diff_ids.len() != e.layers.len() {
            return Err(ImageError::invalid(
                format!("config {}", e.config),
                format!(
                    "it lists {} layers, manifest.json {}",
                    diff_ids.len(),
                    e.layers.len()
                ),
            ));
        }
        let mut descriptors = Vec::new();
        for (i, (member, diff_id)) in e.layers.iter().zip(diff_ids).enumerate() {
            let (info, reused) = match writer.store().layer(diff_id) {
                Some(info) => (info, true),
                None => writer.put_layer(archive.open_member(member)?, diff_id, None)?,
            };
            progress(&ImportEvent::Layer {
                index: i + 1,
                count: diff_ids.len(),
                diff_id: diff_id.clone(),
                size: info.size,
                reused,
            });
            descriptors.push(Descriptor::new(
                MediaType::ImageLayer,
                info.size,
                digest(diff_id)?,
            ));
        }
        writer.put_blob(&config_digest, &config_bytes)?;
        let manifest = build_manifest(&config_digest, config_bytes.len() as u64, descriptors)?;
        out.extend(commit(
            writer,
            &names,
            &config,
            &config_digest,
            &manifest,
            false,
            progress,
        )?);
    }
    Ok(out)
}

/// An archive must hold an image, and exactly one when `--tag` names it.
fn check_count(shown: &Path, listing: &str, n: usize, tagged: bool) -> Result<(), ImageError> {
    if n == 0 {
        return Err(ImageError::invalid(
            format!("archive {}", shown.display()),
            format!("{listing} lists no image"),
        ));
    }
    if tagged && n > 1 {
        return Err(ImageError::Usage(format!(
            "{} holds {n} images; --tag names exactly one",
            shown.display()
        )));
    }
    Ok(())
}
