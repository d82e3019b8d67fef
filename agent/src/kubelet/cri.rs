//! The seam between the kubelet and the machine: what it asks of the container
//! runtime and the image store, as one blocking trait. The agent implements it
//! with [`crate::runtime`] and [`crate::image`]; the kubelet's tests with a fake.

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};

use super::model::{Instance, RunState};

/// A host path mounted into a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountRequest {
    pub host_path: PathBuf,
    pub container_path: String,
    pub read_only: bool,
}

/// Everything needed to start one run of a container.
pub struct StartRequest<'a> {
    pub pod: &'a Pod,
    pub container: &'a Container,
    pub attempt: u32,
    /// The environment, resolved and in order.
    pub env: Vec<(String, String)>,
    pub mounts: Vec<MountRequest>,
}

/// Why a container could not be started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartFailure {
    /// The image is not on this node (`ErrImageNeverPull` / `ErrImagePull`).
    ImageMissing(String),
    /// The image exists but cannot be used (`InvalidImageName`, a broken store).
    ImageBroken(String),
    /// Making the container failed before its process existed (`CreateContainerError`).
    Create(String),
    /// The process could not be started (`StartError`, exit code 128), e.g. its
    /// command does not exist: this counts as a run that failed.
    Start(String),
}

/// One container run found on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundContainer {
    pub name: String,
    pub instance: Instance,
}

/// One pod found on disk, for re-adoption after an agent restart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundPod {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub containers: Vec<FoundContainer>,
}

/// The container runtime and image store, as the kubelet uses them. Every
/// method blocks; the kubelet calls them off the async threads.
pub trait Cri: Send + Sync + 'static {
    /// Makes the pod's sandbox (namespaces, cgroup, etc files); idempotent.
    fn create_sandbox(&self, pod: &Pod) -> Result<(), String>;
    /// The pod's address on the pod network (`None` for host-network pods and
    /// pods without a sandbox).
    fn pod_ip(&self, uid: &str) -> Option<String>;
    /// Starts one run of a container; returns it running.
    fn start_container(&self, req: &StartRequest<'_>) -> Result<Instance, StartFailure>;
    /// How a run stands now (`None`: the runtime has no record of it).
    fn container_state(&self, uid: &str, id: &str) -> Option<RunState>;
    /// A descriptor that becomes readable when the run has ended (`None`: it has).
    fn exit_fd(&self, uid: &str, id: &str) -> Option<OwnedFd>;
    /// Sends a run SIGTERM and returns at once.
    fn terminate_container(&self, uid: &str, id: &str) -> Result<(), String>;
    /// Stops a run: SIGTERM, `grace`, SIGKILL; returns when it has exited.
    fn stop_container(&self, uid: &str, id: &str, grace: Duration) -> Result<(), String>;
    /// Forgets an old run (its state and cgroup; its log stays until the pod goes).
    fn remove_container(&self, uid: &str, id: &str) -> Result<(), String>;
    /// Removes everything the pod had on this host; idempotent.
    fn remove_sandbox(&self, uid: &str) -> Result<(), String>;
    /// Every pod on disk with its container runs.
    fn list(&self) -> Result<Vec<FoundPod>, String>;
}
