//! Pulling images from OCI / Docker registries into the store, with the
//! `oci-client` crate for the distribution API (auth challenges, bearer
//! tokens, manifests, blob streams).
//!
//! - The reference's registry is tried through its mirrors first, then itself
//!   ([`Registries::endpoints`]); a mirror that fails hands over to the next.
//! - An index (OCI index or Docker manifest list) is resolved to linux/<this
//!   arch>; Docker schema 2 and OCI manifests are read alike.
//! - Layers the store has (by diffID) are not fetched. The others are streamed
//!   from the registry straight into [`StoreWriter::put_layer`] on a blocking
//!   thread through a small bounded channel, a few at a time: nothing holds a
//!   whole layer in memory, and the blob digest and the diffID are both checked
//!   before the unpacked layer is moved into the store. A blob that does not
//!   match, or a connection that breaks halfway, leaves only garbage in `tmp/`.
//! - Concurrent pulls of one reference share one pull.
//!
//! Not here: when to pull (the kubelet's pull policy) and credentials from
//! secrets (the caller passes them).

use std::collections::HashMap;
use std::io::{self, Read};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use oci_client::client::{
    BlobResponse, Certificate, CertificateEncoding, ClientConfig, ClientProtocol,
};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_spec::image::{Arch, ImageIndex, ImageManifest, Os};
use tokio::sync::{mpsc, watch};

use super::auth::Credentials;
use super::digest::sha256_of;
use super::platform;
use super::reference::Reference;
use super::registries::{Endpoint, Registries};
use super::store::{ImageRecord, ImageStore};

/// Media types we accept for manifests, best first.
const ACCEPT: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];
/// Manifests and configs above this are refused (they are a few KiB).
const MAX_SMALL: i64 = 16 << 20;
/// Layers fetched at once.
const PARALLEL_LAYERS: usize = 3;
/// Chunks in flight between the network and an unpacking thread.
const CHANNEL_CHUNKS: usize = 4;

/// Why a pull failed. Messages carry what the registry said; they are shown
/// to users as the ErrImagePull message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PullError {
    #[error("pulling {image} from {registry}: {message}")]
    Registry {
        image: String,
        registry: String,
        message: String,
    },
    #[error("pulling {image} from {registry}: unauthorized: {message}")]
    Unauthorized {
        image: String,
        registry: String,
        message: String,
    },
    #[error("pulling {image} from {registry}: not found: {message}")]
    NotFound {
        image: String,
        registry: String,
        message: String,
    },
    #[error("pulling {image}: {what} does not match its digest: {message}")]
    Digest {
        image: String,
        what: String,
        message: String,
    },
    #[error("pulling {image}: {message}")]
    Unsupported { image: String, message: String },
    #[error("storing {image}: {message}")]
    Store { image: String, message: String },
}

/// A finished pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    /// The normalised reference it is stored under.
    pub reference: String,
    /// `sha256:<config digest>`
    pub id: String,
    /// `registry/repo@sha256:…` of what the reference pointed at (the index for
    /// a multi-arch image).
    pub repo_digest: String,
    /// Uncompressed size of all layers.
    pub size: u64,
    pub layers: usize,
    /// Layers fetched (the rest were in the store).
    pub fetched_layers: usize,
    /// Compressed bytes fetched.
    pub fetched_bytes: u64,
}

/// Progress of one pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullEvent {
    /// The manifest is known.
    Resolved {
        digest: String,
        layers: usize,
        /// Layers and compressed bytes still to fetch.
        to_fetch: usize,
        bytes: u64,
    },
    /// The store had this layer.
    LayerReused { index: usize, digest: String },
    /// `n` more bytes of layer `index` arrived.
    Bytes { index: usize, n: u64 },
    /// Layer `index` is verified, unpacked and stored.
    LayerDone { index: usize, digest: String },
}

/// Where pull progress goes.
pub type Progress = Arc<dyn Fn(&PullEvent) + Send + Sync>;

/// A progress sink that drops everything.
pub fn no_progress() -> Progress {
    Arc::new(|_| {})
}

type Outcome = Option<Result<Pulled, PullError>>;

/// Pulls images into one store; cheap to share (`Arc`), one per process.
pub struct Puller {
    store: ImageStore,
    registries: Registries,
    clients: Mutex<HashMap<String, oci_client::Client>>,
    inflight: Mutex<HashMap<String, watch::Receiver<Outcome>>>,
}

impl Puller {
    pub fn new(store: ImageStore, registries: Registries) -> Puller {
        // reqwest is built without a crypto provider; ours is ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Puller {
            store,
            registries,
            clients: Mutex::new(HashMap::new()),
            inflight: Mutex::new(HashMap::new()),
        }
    }

    pub fn store(&self) -> &ImageStore {
        &self.store
    }

    /// Pulls `reference` into the store and tags it. `secrets` are credentials
    /// for the reference's own registry (from imagePullSecrets); endpoints with
    /// credentials in the registries file use those. A pull of the same
    /// reference already under way is joined instead of started again (its
    /// progress goes to the first caller).
    pub async fn pull(
        &self,
        reference: &Reference,
        secrets: &[Credentials],
        progress: Progress,
    ) -> Result<Pulled, PullError> {
        // Pulls with other credentials may have another outcome: not shared.
        let key = format!("{reference} {}", fingerprint(secrets.first()));
        loop {
            let (tx, joined) = {
                let mut map = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
                match map.get(&key) {
                    Some(rx) => (None, Some(rx.clone())),
                    None => {
                        let (tx, rx) = watch::channel(None);
                        map.insert(key.clone(), rx);
                        (Some(tx), None)
                    }
                }
            };
            if let Some(mut rx) = joined {
                match rx.wait_for(Option::is_some).await {
                    Ok(v) => {
                        if let Some(r) = v.clone() {
                            return r;
                        }
                    }
                    // The leader was cancelled: try again (perhaps as leader).
                    Err(_) => continue,
                }
                continue;
            }
            let Some(tx) = tx else { continue };
            let _slot = Slot {
                map: &self.inflight,
                key: key.clone(),
            };
            let result = self.pull_now(reference, secrets, &progress).await;
            let _ = tx.send(Some(result.clone()));
            return result;
        }
    }

    async fn pull_now(
        &self,
        r: &Reference,
        secrets: &[Credentials],
        progress: &Progress,
    ) -> Result<Pulled, PullError> {
        let endpoints = self.registries.endpoints(&r.registry);
        let mut last = None;
        for ep in &endpoints {
            match self.pull_from(ep, r, secrets, progress).await {
                Ok(p) => return Ok(p),
                Err(e) if ep.mirror => {
                    tracing::warn!(image = %r, mirror = %ep.host, error = %e, "mirror failed; trying the next endpoint");
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| PullError::Unsupported {
            image: r.to_string(),
            message: "no endpoint to pull from".into(),
        }))
    }

    /// A client for `ep` used with `creds` (oci-client keeps the first
    /// credentials and tokens it sees per registry, so each set has its own).
    fn client(
        &self,
        ep: &Endpoint,
        creds: Option<&Credentials>,
        image: &str,
    ) -> Result<oci_client::Client, PullError> {
        let key = format!("{} {}", ep.host, fingerprint(creds));
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let mut extra = Vec::new();
        if let Some(ca) = &ep.ca_file {
            let data = std::fs::read(ca).map_err(|e| PullError::Unsupported {
                image: image.to_string(),
                message: format!("reading ca_file {} for {}: {e}", ca.display(), ep.host),
            })?;
            extra.push(Certificate {
                encoding: CertificateEncoding::Pem,
                data,
            });
        }
        let config = ClientConfig {
            protocol: if ep.plain_http {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            accept_invalid_certificates: ep.skip_verify,
            extra_root_certificates: extra,
            platform_resolver: None,
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(60)),
            user_agent: concat!("bosun/", env!("CARGO_PKG_VERSION")),
            ..ClientConfig::default()
        };
        let client = oci_client::Client::try_from(config).map_err(|e| PullError::Unsupported {
            image: image.to_string(),
            message: format!("making a client for {}: {e}", ep.host),
        })?;
        clients.insert(key, client.clone());
        Ok(client)
    }

    async fn pull_from(
        &self,
        ep: &Endpoint,
        r: &Reference,
        secrets: &[Credentials],
        progress: &Progress,
    ) -> Result<Pulled, PullError> {
        let image = r.to_string();
        let creds = ep.credentials.clone().or_else(|| {
            (ep.host == r.registry)
                .then(|| secrets.first().cloned())
                .flatten()
        });
        let client = self.client(ep, creds.as_ref(), &image)?;
        let auth = match creds {
            Some(Credentials::Basic { username, password }) => {
                RegistryAuth::Basic(username, password)
            }
            Some(Credentials::Token(t)) => RegistryAuth::Bearer(t),
            None => RegistryAuth::Anonymous,
        };
        let fail = Fail {
            image: &image,
            registry: &ep.host,
        };
        let oref = match (&r.digest, &r.tag) {
            (Some(d), _) => {
                oci_client::Reference::with_digest(ep.host.clone(), r.repository.clone(), d.clone())
            }
            (None, Some(t)) => {
                oci_client::Reference::with_tag(ep.host.clone(), r.repository.clone(), t.clone())
            }
            (None, None) => {
                return Err(fail.unsupported("the reference has neither tag nor digest".into()))
            }
        };

        // The manifest (through an index when there is one).
        let (body, _) = client
            .pull_manifest_raw(&oref, &auth, ACCEPT)
            .await
            .map_err(|e| fail.oci("reading the manifest", e))?;
        let top_digest = sha256_of(&body);
        if let Some(d) = &r.digest {
            if *d != top_digest {
                return Err(PullError::Digest {
                    image: image.clone(),
                    what: "the manifest".into(),
                    message: format!("expected {d}, got {top_digest}"),
                });
            }
        }
        let mut manifest_bytes = body.to_vec();
        for _ in 0..3 {
            match manifest_kind(&manifest_bytes).map_err(|m| fail.unsupported(m))? {
                Kind::Manifest => break,
                Kind::Index => {
                    let index: ImageIndex = serde_json::from_slice(&manifest_bytes)
                        .map_err(|e| fail.unsupported(format!("invalid image index: {e}")))?;
                    let arch = Arch::default();
                    let chosen = platform::select(&index, &Os::Linux, &arch)
                        .ok_or_else(|| fail.unsupported(format!("no image for linux/{arch}")))?;
                    let digest = chosen.digest().to_string();
                    let (body, _) = client
                        .pull_manifest_raw(&oref.clone_with_digest(digest.clone()), &auth, ACCEPT)
                        .await
                        .map_err(|e| fail.oci("reading the platform manifest", e))?;
                    let actual = sha256_of(&body);
                    if actual != digest {
                        return Err(PullError::Digest {
                            image: image.clone(),
                            what: format!("manifest {digest}"),
                            message: format!("got {actual}"),
                        });
                    }
                    manifest_bytes = body.to_vec();
                }
            }
        }
        let manifest: ImageManifest = serde_json::from_slice(&manifest_bytes)
            .map_err(|e| fail.unsupported(format!("invalid image manifest: {e}")))?;
        let manifest_digest = sha256_of(&manifest_bytes);

        // The config, verified, then parsed.
        let config_desc = manifest.config();
        let config_digest = config_desc.digest().to_string();
        if config_desc.size() > MAX_SMALL as u64 {
            return Err(fail.unsupported(format!(
                "config {config_digest} is {} bytes",
                config_desc.size()
            )));
        }
        let mut config_bytes: Vec<u8> = Vec::with_capacity(config_desc.size() as usize);
        client
            .pull_blob(&oref, config_digest.as_str(), &mut config_bytes)
            .await
            .map_err(|e| fail.oci(&format!("reading config {config_digest}"), e))?;
        let actual = sha256_of(&config_bytes);
        if actual != config_digest {
            return Err(PullError::Digest {
                image: image.clone(),
                what: format!("config {config_digest}"),
                message: format!("got {actual}"),
            });
        }
        let config = super::import::parse_config(&config_bytes, &format!("config {config_digest}"))
            .map_err(|e| fail.unsupported(crate::error_chain(&e)))?;
        let diff_ids = config.rootfs().diff_ids().clone();
        if diff_ids.len() != manifest.layers().len() {
            return Err(fail.unsupported(format!(
                "manifest has {} layers, config {}",
                manifest.layers().len(),
                diff_ids.len()
            )));
        }

        // Layers: garbage collection waits until the image is tagged.
        let store = self.store.clone();
        let _gc = tokio::task::spawn_blocking(move || store.gc_guard())
            .await
            .map_err(|e| fail.store(e.to_string()))?
            .map_err(|e| fail.store(crate::error_chain(&e)))?;
        let mut wanted = Vec::new();
        let mut present = Vec::new();
        for (i, (desc, diff_id)) in manifest.layers().iter().zip(&diff_ids).enumerate() {
            let digest = desc.digest().to_string();
            if self.store.layer(diff_id).is_some() {
                present.push(PullEvent::LayerReused { index: i, digest });
            } else {
                wanted.push((i, digest, desc.size(), diff_id.clone()));
            }
        }
        let to_fetch: u64 = wanted.iter().map(|w| w.2).sum();
        progress(&PullEvent::Resolved {
            digest: manifest_digest.clone(),
            layers: diff_ids.len(),
            to_fetch: wanted.len(),
            bytes: to_fetch,
        });
        for e in &present {
            progress(e);
        }
        let fetched_layers = wanted.len();
        let fetched: Vec<u64> = futures_util::stream::iter(wanted)
            .map(|(index, digest, size, diff_id)| {
                let client = client.clone();
                let oref = oref.clone();
                let fail = fail.owned();
                async move {
                    self.fetch_layer(&client, &oref, index, digest, size, diff_id, progress)
                        .await
                        .map_err(|f| f.into_error(&fail))
                }
            })
            .buffer_unordered(PARALLEL_LAYERS)
            .try_collect()
            .await?;

        // Tag it.
        let mut size = 0;
        for d in &diff_ids {
            size += self
                .store
                .layer(d)
                .map(|l| l.size)
                .ok_or_else(|| fail.store(format!("layer {d} vanished from the store")))?;
        }
        let record = ImageRecord {
            manifest: manifest_digest,
            config: config_digest.clone(),
            repo_digest: Some(r.with_digest(&top_digest)),
            layers: diff_ids.clone(),
            size,
            created: config.created().clone(),
            stored_at: None,
        };
        let store = self.store.clone();
        let name = r.clone();
        tokio::task::spawn_blocking(move || -> Result<(), super::ImageError> {
            let w = store.writer()?;
            w.put_blob(&record.manifest, &manifest_bytes)?;
            w.put_blob(&record.config, &config_bytes)?;
            w.tag(&name, record)
        })
        .await
        .map_err(|e| fail.store(e.to_string()))?
        .map_err(|e| fail.store(crate::error_chain(&e)))?;
        Ok(Pulled {
            reference: image.clone(),
            id: config_digest,
            repo_digest: r.with_digest(&top_digest),
            size,
            layers: diff_ids.len(),
            fetched_layers,
            fetched_bytes: fetched.iter().sum(),
        })
    }

    /// Streams one layer blob into the store; returns the bytes fetched.
    #[allow(clippy::too_many_arguments)]
    async fn fetch_layer(
        &self,
        client: &oci_client::Client,
        oref: &oci_client::Reference,
        index: usize,
        digest: String,
        size: u64,
        diff_id: String,
        progress: &Progress,
    ) -> Result<u64, LayerFailure> {
        // Unverified by oci-client (a range from 0): put_layer checks the
        // digest itself while it unpacks, before the layer is kept, so the
        // blob is hashed once. A registry without ranges answers the whole
        // blob, which oci-client verifies too.
        let mut stream = match client
            .pull_blob_stream_partial(oref, digest.as_str(), 0, None)
            .await
            .map_err(|e| LayerFailure::Oci(format!("fetching layer {digest}"), e))?
        {
            BlobResponse::Full(s) | BlobResponse::Partial(s) => s,
        };
        let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(CHANNEL_CHUNKS);
        let store = self.store.clone();
        let (d, id) = (digest.clone(), diff_id.clone());
        let unpack = tokio::task::spawn_blocking(move || {
            let mut reader = ChannelReader {
                rx,
                cur: Bytes::new(),
            };
            let res = store
                .writer()
                .and_then(|w| w.put_layer(&mut reader, &id, Some(&d)).map(|_| ()));
            if res.is_err() {
                // Let the download finish (its end is awaited below).
                reader.drain();
            }
            res
        });
        let mut got = 0u64;
        let mut net_error = None;
        while let Some(item) = stream.next().await {
            match item {
                Ok(chunk) => {
                    got += chunk.len() as u64;
                    progress(&PullEvent::Bytes {
                        index,
                        n: chunk.len() as u64,
                    });
                    if tx.send(Ok(chunk)).await.is_err() {
                        break;
                    }
                }
                Err(e) => {
                    let _ = tx
                        .send(Err(io::Error::other("the download was cut off")))
                        .await;
                    net_error = Some(e);
                    break;
                }
            }
        }
        drop(tx);
        let unpacked = unpack
            .await
            .map_err(|e| LayerFailure::Store(e.to_string()))?;
        if let Some(e) = net_error {
            let text = crate::error_chain(&e);
            return Err(if text.contains("Invalid digest") {
                LayerFailure::Digest(format!("layer {digest}"), text)
            } else {
                LayerFailure::Network(format!("downloading layer {digest}: {text}"))
            });
        }
        match unpacked {
            Ok(()) => {}
            Err(super::ImageError::DigestMismatch {
                what,
                expected,
                actual,
            }) => {
                return Err(LayerFailure::Digest(
                    what,
                    format!("expected {expected}, got {actual}"),
                ))
            }
            Err(e) => return Err(LayerFailure::Store(crate::error_chain(&e))),
        }
        if got != size {
            return Err(LayerFailure::Digest(
                format!("layer {digest}"),
                format!("{got} bytes, the manifest says {size}"),
            ));
        }
        progress(&PullEvent::LayerDone { index, digest });
        Ok(got)
    }
}

/// Tells credentials apart without keeping them: a digest of them.
fn fingerprint(creds: Option<&Credentials>) -> String {
    match creds {
        None => "anonymous".into(),
        Some(Credentials::Basic { username, password }) => {
            sha256_of(format!("basic\0{username}\0{password}").as_bytes())
        }
        Some(Credentials::Token(t)) => sha256_of(format!("token\0{t}").as_bytes()),
    }
}

/// Removes the in-flight entry of a pull when its leader finishes or is dropped.
struct Slot<'a> {
    map: &'a Mutex<HashMap<String, watch::Receiver<Outcome>>>,
    key: String,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&self.key);
    }
}

/// Blob bytes handed from the network task to an unpacking thread.
struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    cur: Bytes,
}

impl ChannelReader {
    fn drain(&mut self) {
        while let Some(Ok(_)) = self.rx.blocking_recv() {}
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        Ok(n)
    }
}

/// Whether a manifest body is an index or an image manifest.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Index,
    Manifest,
}

/// Tells an index from a manifest (by mediaType, or by shape when it has
/// none); refuses schema 1 and unknown media types.
fn manifest_kind(body: &[u8]) -> Result<Kind, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the manifest is not JSON: {e}"))?;
    match v.get("schemaVersion").and_then(serde_json::Value::as_i64) {
        Some(2) => {}
        Some(1) => return Err(
            "Docker schema 1 manifests are not supported; push the image again with a current tool"
                .into(),
        ),
        other => return Err(format!("unsupported manifest schemaVersion {other:?}")),
    }
    match v.get("mediaType").and_then(serde_json::Value::as_str) {
        Some(
            "application/vnd.oci.image.index.v1+json"
            | "application/vnd.docker.distribution.manifest.list.v2+json",
        ) => Ok(Kind::Index),
        Some(
            "application/vnd.oci.image.manifest.v1+json"
            | "application/vnd.docker.distribution.manifest.v2+json",
        ) => Ok(Kind::Manifest),
        Some(other) => Err(format!("unsupported manifest media type {other}")),
        None if v.get("manifests").is_some() => Ok(Kind::Index),
        None if v.get("layers").is_some() => Ok(Kind::Manifest),
        None => Err("the manifest is neither an image manifest nor an index".into()),
    }
}

/// Names the image and registry in errors.
#[derive(Clone, Copy)]
struct Fail<'a> {
    image: &'a str,
    registry: &'a str,
}

struct FailOwned {
    image: String,
    registry: String,
}

impl Fail<'_> {
    fn owned(&self) -> FailOwned {
        FailOwned {
            image: self.image.to_string(),
            registry: self.registry.to_string(),
        }
    }

    fn unsupported(&self, message: String) -> PullError {
        PullError::Unsupported {
            image: self.image.to_string(),
            message,
        }
    }

    fn store(&self, message: String) -> PullError {
        PullError::Store {
            image: self.image.to_string(),
            message,
        }
    }

    fn oci(&self, doing: &str, e: OciDistributionError) -> PullError {
        classify(self.image, self.registry, doing, e)
    }
}

/// Sorts an oci-client error into a [`PullError`], keeping the registry's words.
fn classify(image: &str, registry: &str, doing: &str, e: OciDistributionError) -> PullError {
    let image = image.to_string();
    let registry = registry.to_string();
    match e {
        OciDistributionError::UnauthorizedError { url } => PullError::Unauthorized {
            image,
            registry,
            message: format!(
                "{doing}: the registry answered 401 Unauthorized to {url}; check the credentials (imagePullSecrets or the registries file)"
            ),
        },
        OciDistributionError::AuthenticationFailure(reason) => PullError::Unauthorized {
            image,
            registry,
            message: format!("{doing}: the token service refused: {}", reason.trim()),
        },
        OciDistributionError::RegistryError { envelope, .. } => {
            let said: Vec<String> = envelope
                .errors
                .iter()
                .map(|e| format!("{:?}: {}", e.code, e.message))
                .collect();
            let message = format!("{doing}: {}", said.join("; "));
            let code = envelope.errors.first().map(|e| &e.code);
            match code {
                Some(
                    OciErrorCode::ManifestUnknown
                    | OciErrorCode::NameUnknown
                    | OciErrorCode::BlobUnknown
                    | OciErrorCode::NotFound,
                ) => PullError::NotFound {
                    image,
                    registry,
                    message,
                },
                Some(OciErrorCode::Unauthorized | OciErrorCode::Denied) => {
                    PullError::Unauthorized {
                        image,
                        registry,
                        message,
                    }
                }
                _ => PullError::Registry {
                    image,
                    registry,
                    message,
                },
            }
        }
        OciDistributionError::ServerError { code, message, .. } => {
            let message = format!("{doing}: HTTP {code}: {}", message.trim());
            if code == 404 {
                PullError::NotFound {
                    image,
                    registry,
                    message,
                }
            } else {
                PullError::Registry {
                    image,
                    registry,
                    message,
                }
            }
        }
        OciDistributionError::DigestError(d) => PullError::Digest {
            image,
            what: doing.to_string(),
            message: d.to_string(),
        },
        other => PullError::Registry {
            image,
            registry,
            message: format!("{doing}: {}", crate::error_chain(&other)),
        },
    }
}

/// How fetching one layer failed, before it is named.
enum LayerFailure {
    Oci(String, OciDistributionError),
    Network(String),
    Digest(String, String),
    Store(String),
}

impl LayerFailure {
    fn into_error(self, f: &FailOwned) -> PullError {
        let image = f.image.clone();
        match self {
            LayerFailure::Oci(doing, e) => classify(&f.image, &f.registry, &doing, e),
            LayerFailure::Network(message) => PullError::Registry {
                image,
                registry: f.registry.clone(),
                message,
            },
            LayerFailure::Digest(what, message) => PullError::Digest {
                image,
                what,
                message,
            },
            LayerFailure::Store(message) => PullError::Store { image, message },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_and_indexes_are_told_apart() {
        let k = |s: &str| manifest_kind(s.as_bytes());
        assert_eq!(
            k(
                r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[]}"#
            ),
            Ok(Kind::Index)
        );
        assert_eq!(k(r#"{"schemaVersion":2,"manifests":[]}"#), Ok(Kind::Index));
        assert_eq!(
            k(
                r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","layers":[]}"#
            ),
            Ok(Kind::Manifest)
        );
        assert_eq!(k(r#"{"schemaVersion":2,"layers":[]}"#), Ok(Kind::Manifest));
        assert!(k(r#"{"schemaVersion":1,"fsLayers":[]}"#)
            .unwrap_err()
            .contains("schema 1"));
        assert!(k(r#"{"schemaVersion":2,"mediaType":"text/plain"}"#).is_err());
        assert!(k("nope").is_err());
    }

    #[test]
    fn registry_errors_keep_the_registry_words() {
        let e = classify(
            "r/x:1",
            "r",
            "reading the manifest",
            OciDistributionError::AuthenticationFailure("bad password\n".into()),
        );
        assert_eq!(
            e.to_string(),
            "pulling r/x:1 from r: unauthorized: reading the manifest: the token service refused: bad password"
        );
        let e = classify(
            "r/x:1",
            "r",
            "reading the manifest",
            OciDistributionError::ServerError {
                code: 404,
                url: "u".into(),
                message: "gone".into(),
            },
        );
        assert!(matches!(e, PullError::NotFound { .. }), "{e:?}");
        let e = classify(
            "r/x:1",
            "r",
            "x",
            OciDistributionError::ServerError {
                code: 503,
                url: "u".into(),
                message: "busy".into(),
            },
        );
        assert_eq!(e.to_string(), "pulling r/x:1 from r: x: HTTP 503: busy");
    }

    #[test]
    fn the_channel_reader_yields_chunks_then_eof_or_the_error() {
        let (tx, rx) = mpsc::channel(4);
        tx.try_send(Ok(Bytes::from_static(b"hel"))).unwrap();
        tx.try_send(Ok(Bytes::from_static(b"lo"))).unwrap();
        drop(tx);
        let mut r = ChannelReader {
            rx,
            cur: Bytes::new(),
        };
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        assert_eq!(s, "hello");
        let (tx, rx) = mpsc::channel(4);
        tx.try_send(Ok(Bytes::from_static(b"a"))).unwrap();
        tx.try_send(Err(io::Error::other("cut"))).unwrap();
        let mut r = ChannelReader {
            rx,
            cur: Bytes::new(),
        };
        let mut v = Vec::new();
        assert!(r.read_to_end(&mut v).is_err());
    }
}
