//! The kubelet's [`Cri`] made real: the container runtime ([`crate::runtime`]),
//! the image store ([`crate::image`]) and the pod network ([`crate::network`])
//! of this host. It turns a pod into a sandbox spec (hostname, /etc/hosts,
//! resolv.conf, cgroup limits) wired to an address of the node's podCIDR, and a
//! container into an OCI spec on the image's layers.

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

use crate::image::{ImageError, ImageStore};
use crate::kubelet::cri::{Cri, FoundContainer, FoundPod, StartFailure, StartRequest};
use crate::kubelet::model::{Instance, RunState};
use crate::network::Network;
use crate::runtime::spec::{self, SpecInput, VolumeMountSpec};
use crate::runtime::{ContainerSpec, ContainerState, Runtime, RuntimeError, SandboxSpec};

/// This host's runtime and images, as the kubelet sees them.
pub struct Machine {
    pub runtime: Runtime,
    pub images: ImageStore,
    pub network: Network,
    /// The host's resolv.conf, given to pods (there is no cluster DNS yet).
    pub resolv_conf: PathBuf,
}

/// The pod's hostname: spec.hostname, else its name, cut to 63 characters.
pub fn pod_hostname(pod: &Pod) -> String {
    let name = pod
        .spec
        .as_ref()
        .and_then(|s| s.hostname.clone())
        .or_else(|| pod.metadata.name.clone())
        .unwrap_or_default();
    name.chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches(['-', '.'])
        .to_string()
}

/// /etc/hosts as the kubelet writes it for a pod.
pub fn hosts_file(pod: &Pod, hostname: &str, pod_ip: Option<&str>) -> String {
    let mut out = String::from(
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
    );
    if let Some(ip) = pod_ip {
        let fqdn = pod
            .spec
            .as_ref()
            .and_then(|s| s.subdomain.as_ref())
            .map(|sub| {
                let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
                format!("{hostname}.{sub}.{ns}.svc.cluster.local\t")
            })
            .unwrap_or_default();
        out.push_str(&format!("{ip}\t{fqdn}{hostname}\n"));
    }
    for alias in pod
        .spec
        .iter()
        .flat_map(|s| s.host_aliases.iter().flatten())
    {
        let names = alias.hostnames.clone().unwrap_or_default().join("\t");
        out.push_str(&format!("{}\t{names}\n", alias.ip));
    }
    out
}

/// resolv.conf for a pod: the host's, with the pod's dnsConfig added.
pub fn resolv_conf(pod: &Pod, host: &str) -> String {
    let Some(cfg) = pod.spec.as_ref().and_then(|s| s.dns_config.as_ref()) else {
        return host.to_string();
    };
    let policy_none = pod.spec.as_ref().and_then(|s| s.dns_policy.as_deref()) == Some("None");
    let mut nameservers: Vec<String> = Vec::new();
    let mut searches: Vec<String> = Vec::new();
    let mut options: Vec<String> = Vec::new();
    if !policy_none {
        for line in host.lines() {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => nameservers.extend(words.map(String::from)),
                Some("search") => searches.extend(words.map(String::from)),
                Some("options") => options.extend(words.map(String::from)),
                _ => {}
            }
        }
    }
    nameservers.extend(cfg.nameservers.iter().flatten().cloned());
    searches.extend(cfg.searches.iter().flatten().cloned());
    for o in cfg.options.iter().flatten() {
        match &o.value {
            Some(v) => options.push(format!("{}:{v}", o.name.clone().unwrap_or_default())),
            None => options.push(o.name.clone().unwrap_or_default()),
        }
    }
    let mut out = String::new();
    for ns in nameservers.iter().take(3) {
        out.push_str(&format!("nameserver {ns}\n"));
    }
    if !searches.is_empty() {
        out.push_str(&format!("search {}\n", searches.join(" ")));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

fn run_state(state: ContainerState) -> RunState {
    match state {
        ContainerState::Running { started_at, .. } => RunState::Running { started_at },
        ContainerState::Exited {
            exit_code,
            signal,
            oom_killed,
            started_at,
            finished_at,
            message,
        } => RunState::Exited {
            exit_code,
            signal,
            reason: oom_killed.then(|| "OOMKilled".to_string()),
            message,
            started_at: Some(started_at),
            finished_at,
        },
        ContainerState::Unknown => RunState::lost(),
    }
}

impl Cri for Machine {
    fn create_sandbox(&self, pod: &Pod) -> Result<(), String> {
        let spec = pod.spec.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let host_network = spec.host_network.unwrap_or(false);
        let chain = |e: &dyn std::error::Error| crate::error_chain(e);
        let ip = if host_network {
            None
        } else {
            Some(self.network.allocate(&uid).map_err(|e| chain(&e))?)
        };
        let hostname = pod_hostname(pod);
        let host_resolv = std::fs::read_to_string(&self.resolv_conf).unwrap_or_default();
        let sandbox = SandboxSpec {
            uid: uid.clone(),
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            hosts_file: hosts_file(pod, &hostname, ip.map(|ip| ip.to_string()).as_deref()),
            hostname,
            host_network,
            host_ipc: spec.host_ipc.unwrap_or(false),
            host_pid: spec.host_pid.unwrap_or(false),
            share_process_namespace: spec.share_process_namespace.unwrap_or(false),
            resolv_conf: resolv_conf(pod, &host_resolv),
            resources: spec::pod_resources(&spec),
        };
        self.runtime
            .create_sandbox(&sandbox)
            .map_err(|e| chain(&e))?;
        let Some(ip) = ip else {
            return Ok(());
        };
        let paths = self.runtime.sandbox_paths(&uid).map_err(|e| chain(&e))?;
        let netns = paths
            .net
            .ok_or_else(|| format!("pod {uid} has no network namespace of its own"))?;
        self.network.attach(&uid, &netns, ip).map_err(|e| chain(&e))
    }

    fn pod_ip(&self, uid: &str) -> Option<String> {
        self.network.address_of(uid).map(|ip| ip.to_string())
    }

    fn start_container(&self, req: &StartRequest<'_>) -> Result<Instance, StartFailure> {
        let uid = req.pod.metadata.uid.clone().unwrap_or_default();
        let wanted = req.container.image.clone().unwrap_or_default();
        let image = match self.images.resolve(&wanted) {
            Ok(i) => i,
            Err(ImageError::NotFound(_)) => {
                return Err(StartFailure::ImageMissing(format!(
                    "image {wanted:?} is not present on this node: pull it (imagePullPolicy IfNotPresent or Always) or import it with `bosun image import`"
                )))
            }
            Err(e) => return Err(StartFailure::ImageBroken(crate::error_chain(&e))),
        };
        let sandbox = self
            .runtime
            .sandbox_paths(&uid)
            .map_err(|e| StartFailure::Create(crate::error_chain(&e)))?;
        let mounts: Vec<VolumeMountSpec> = req
            .mounts
            .iter()
            .map(|m| VolumeMountSpec {
                host_path: m.host_path.clone(),
                container_path: PathBuf::from(&m.container_path),
                read_only: m.read_only,
            })
            .collect();
        let oci = spec::build(&SpecInput {
            pod: req.pod,
            container: req.container,
            image: Some(&image.config),
            env: &req.env,
            volume_mounts: &mounts,
            sandbox: &sandbox,
        })
        .map_err(|e| StartFailure::Create(crate::error_chain(&e)))?;
        let image_id = image
            .repo_digest
            .clone()
            .unwrap_or_else(|| image.id.clone());
        let info = self
            .runtime
            .start_container(
                &uid,
                &ContainerSpec {
                    name: req.container.name.clone(),
                    attempt: req.attempt,
                    image_ref: image.reference.clone(),
                    image_id: image_id.clone(),
                    layers: image.layers.clone(),
                    oci,
                },
            )
            .map_err(|e| match e {
                RuntimeError::Start(m) => StartFailure::Start(m),
                other => StartFailure::Create(crate::error_chain(&other)),
            })?;
        Ok(Instance {
            id: info.id,
            attempt: req.attempt,
            image: image.reference,
            image_id,
            state: RunState::Running {
                started_at: info.started_at,
            },
        })
    }

    fn container_state(&self, uid: &str, id: &str) -> Option<RunState> {
        self.runtime.container_state(uid, id).ok().map(run_state)
    }

    fn exit_fd(&self, uid: &str, id: &str) -> Option<OwnedFd> {
        self.runtime.exit_fd(uid, id).ok().flatten()
    }

    fn terminate_container(&self, uid: &str, id: &str) -> Result<(), String> {
        self.runtime
            .terminate_container(uid, id)
            .map_err(|e| crate::error_chain(&e))
    }

    fn stop_container(&self, uid: &str, id: &str, grace: Duration) -> Result<(), String> {
        self.runtime
            .stop_container(uid, id, grace)
            .map_err(|e| crate::error_chain(&e))
    }

    fn remove_container(&self, uid: &str, id: &str) -> Result<(), String> {
        self.runtime
            .remove_container(uid, id)
            .map_err(|e| crate::error_chain(&e))
    }

    fn remove_sandbox(&self, uid: &str) -> Result<(), String> {
        self.runtime
            .remove_sandbox(uid)
            .map_err(|e| crate::error_chain(&e))?;
        // The pod's veth pair went with its network namespace; its address
        // is free once nothing can use it any more.
        self.network
            .release(uid)
            .map_err(|e| crate::error_chain(&e))
    }

    fn list(&self) -> Result<Vec<FoundPod>, String> {
        let records = self.runtime.list().map_err(|e| crate::error_chain(&e))?;
        Ok(records
            .into_iter()
            .map(|r| FoundPod {
                uid: r.uid,
                namespace: r.namespace,
                name: r.name,
                containers: r
                    .containers
                    .into_iter()
                    .map(|c| FoundContainer {
                        name: c.name,
                        instance: Instance {
                            id: c.id,
                            attempt: c.attempt,
                            image: c.image_ref,
                            image_id: c.image_id,
                            state: run_state(c.state),
                        },
                    })
                    .collect(),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web-0", "namespace": "prod", "uid": "u1"},
            "spec": spec,
        }))
        .unwrap()
    }

    #[test]
    fn hostnames_and_hosts_files_follow_the_kubelet() {
        let p = pod(json!({"containers": [], "hostname": "h", "subdomain": "s",
            "hostAliases": [{"ip": "10.1.1.1", "hostnames": ["a", "b"]}]}));
        assert_eq!(pod_hostname(&p), "h");
        let hosts = hosts_file(&p, "h", Some("10.244.0.5"));
        assert!(hosts.contains("127.0.0.1\tlocalhost\n"));
        assert!(hosts.contains("10.244.0.5\th.s.prod.svc.cluster.local\th\n"));
        assert!(hosts.contains("10.1.1.1\ta\tb\n"));
        let long = pod(json!({"containers": []}));
        assert_eq!(pod_hostname(&long), "web-0");
    }

    #[test]
    fn dns_config_adds_to_the_host_resolv_conf() {
        let host = "nameserver 10.0.0.1\nsearch example.com\n";
        let plain = pod(json!({"containers": []}));
        assert_eq!(resolv_conf(&plain, host), host);
        let p = pod(json!({"containers": [], "dnsConfig": {
            "nameservers": ["1.1.1.1"], "searches": ["x.local"],
            "options": [{"name": "ndots", "value": "2"}]}}));
        assert_eq!(
            resolv_conf(&p, host),
            "nameserver 10.0.0.1\nnameserver 1.1.1.1\nsearch example.com x.local\noptions ndots:2\n"
        );
        let none = pod(
            json!({"containers": [], "dnsPolicy": "None", "dnsConfig": {"nameservers": ["1.1.1.1"]}}),
        );
        assert_eq!(resolv_conf(&none, host), "nameserver 1.1.1.1\n");
    }
}
