//! Image pulls for the kubelet: the pull policy (Always / IfNotPresent /
//! Never), the back-off between failed pulls (ErrImagePull, then
//! ImagePullBackOff, 10 s doubling to 5 min like crash loops), credentials
//! from the pod's imagePullSecrets, and the Pulling / Pulled / Failed /
//! BackOff events. The decisions are pure functions; [`ensure_image`] does the
//! I/O with the agent's [`Puller`].

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use k8s_openapi::api::core::v1::{Container, Pod};
use serde_json::{json, Value};

use super::backoff;
use super::Shared;
use crate::hollow::requests::{not_found, Attempts};
use crate::image::auth::{self, Credentials};
use crate::image::pull::no_progress;
use crate::image::{Puller, Reference};

/// How long ErrImagePull shows before ImagePullBackOff.
const ERR_IMAGE_PULL_SHOWN: Duration = Duration::from_secs(2);

/// A container's imagePullPolicy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    /// The policy a container has, with the API server's default when unset:
    /// Always for `:latest` or no tag, IfNotPresent otherwise.
    pub fn of(container: &Container) -> PullPolicy {
        match container.image_pull_policy.as_deref() {
            Some("Always") => PullPolicy::Always,
            Some("IfNotPresent") => PullPolicy::IfNotPresent,
            Some("Never") => PullPolicy::Never,
            _ => {
                let image = container.image.as_deref().unwrap_or_default();
                match Reference::parse(image) {
                    Ok(r) if r.digest.is_none() && r.tag.as_deref() == Some("latest") => {
                        PullPolicy::Always
                    }
                    _ => PullPolicy::IfNotPresent,
                }
            }
        }
    }
}

/// What to do about a container's image before starting it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Start it with what the store has.
    UseLocal,
    /// Pull it first.
    Pull,
    /// A pull failed recently: wait until then (ImagePullBackOff).
    BackOff { until: SystemTime },
}

/// Failed pulls of one container's image, for the back-off.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PullFailures {
    pub count: u32,
    pub last: Option<SystemTime>,
    /// The last pull's error, as the registry gave it.
    pub message: String,
}

/// Decides for one start: `present` says whether the store has the image.
pub fn step(policy: PullPolicy, present: bool, failures: &PullFailures, now: SystemTime) -> Step {
    match policy {
        PullPolicy::Never => return Step::UseLocal,
        PullPolicy::IfNotPresent if present => return Step::UseLocal,
        _ => {}
    }
    if let Some(last) = failures.last {
        let left = backoff::remaining(failures.count, last, now);
        if !left.is_zero() {
            return Step::BackOff { until: now + left };
        }
    }
    Step::Pull
}

/// `Successfully pulled image "x" in 1.2s. Image size: N bytes.`
pub fn pulled_message(image: &str, took: Duration, size: u64) -> String {
    format!(
        "Successfully pulled image {image:?} in {:.3}s. Image size: {size} bytes.",
        took.as_secs_f64()
    )
}

/// The message of ImagePullBackOff.
pub fn backoff_message(image: &str, failures: &PullFailures) -> String {
    format!("Back-off pulling image {image:?}: {}", failures.message)
}

/// The registry host a container image is pulled from (for matching secrets).
pub fn registry_of(image: &str) -> Option<String> {
    Reference::parse(image).ok().map(|r| r.registry)
}

/// Credentials for `registry` in the given secrets' data (name → key → bytes):
/// `.dockerconfigjson` or `.dockercfg`, in the order the pod lists them.
pub fn secret_credentials(secrets: &[(String, Value)], registry: &str) -> Vec<Credentials> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut out = Vec::new();
    for (name, secret) in secrets {
        for key in [".dockerconfigjson", ".dockercfg"] {
            let Some(data) = secret.pointer(&format!("/data/{}", key.replace('/', "~1"))) else {
                continue;
            };
            let Some(bytes) = data.as_str().and_then(|s| b64.decode(s).ok()) else {
                tracing::warn!(secret = %name, "imagePullSecret data is not base64");
                continue;
            };
            match auth::from_docker_config(&bytes, registry) {
                Ok(Some(c)) => out.push(c),
                Ok(None) => {}
                Err(e) => tracing::warn!(secret = %name, error = %e, "reading an imagePullSecret"),
            }
        }
    }
    out
}

/// The outcome of [`ensure_image`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ensured {
    /// Go ahead and start the container.
    Ready,
    /// Wait: (reason, message, retry at).
    Waiting(&'static str, String, SystemTime),
}

/// Makes sure the container's image is in the store as its pull policy wants,
/// posting events; `failures` is the container's pull back-off state.
pub async fn ensure_image(
    shared: &Arc<Shared>,
    puller: &Arc<Puller>,
    pod: &Pod,
    container: &Container,
    failures: &mut PullFailures,
) -> Ensured {
    let image = container.image.clone().unwrap_or_default();
    let policy = PullPolicy::of(container);
    let reference = match Reference::parse(&image) {
        Ok(r) => r,
        Err(e) => {
            return Ensured::Waiting(
                "InvalidImageName",
                format!("Failed to apply default image tag {image:?}: {e}"),
                SystemTime::now() + Duration::from_secs(10),
            )
        }
    };
    // Only IfNotPresent cares whether the store has it.
    let present = policy == PullPolicy::IfNotPresent && {
        let store = puller.store().clone();
        let wanted = reference.to_string();
        tokio::task::spawn_blocking(move || store.resolve(&wanted).is_ok())
            .await
            .unwrap_or(false)
    };
    let now = SystemTime::now();
    match step(policy, present, failures, now) {
        Step::UseLocal => {
            if present && policy == PullPolicy::IfNotPresent {
                event(
                    shared,
                    pod,
                    container,
                    "Normal",
                    "Pulled",
                    &format!("Container image {image:?} already present on machine"),
                );
            }
            Ensured::Ready
        }
        Step::BackOff { until } => {
            event(
                shared,
                pod,
                container,
                "Normal",
                "BackOff",
                &format!("Back-off pulling image {image:?}"),
            );
            Ensured::Waiting("ImagePullBackOff", backoff_message(&image, failures), until)
        }
        Step::Pull => {
            let secrets = pull_secrets(shared, pod, &reference.registry).await;
            event(
                shared,
                pod,
                container,
                "Normal",
                "Pulling",
                &format!("Pulling image {image:?}"),
            );
            let began = Instant::now();
            match puller.pull(&reference, &secrets, no_progress()).await {
                Ok(p) => {
                    *failures = PullFailures::default();
                    let msg = pulled_message(&image, began.elapsed(), p.size);
                    event(shared, pod, container, "Normal", "Pulled", &msg);
                    Ensured::Ready
                }
                Err(e) => {
                    let message = e.to_string();
                    failures.count += 1;
                    failures.last = Some(SystemTime::now());
                    failures.message = message.clone();
                    tracing::warn!(image = %image, error = %message, "pulling an image");
                    event(
                        shared,
                        pod,
                        container,
                        "Warning",
                        "Failed",
                        &format!("Failed to pull image {image:?}: {message}"),
                    );
                    // ErrImagePull until the next look, which finds the back-off.
                    Ensured::Waiting(
                        "ErrImagePull",
                        message,
                        SystemTime::now() + ERR_IMAGE_PULL_SHOWN,
                    )
                }
            }
        }
    }
}

/// Credentials from the pod's imagePullSecrets for `registry`.
async fn pull_secrets(shared: &Shared, pod: &Pod, registry: &str) -> Vec<Credentials> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let names: Vec<String> = pod
        .spec
        .iter()
        .flat_map(|s| s.image_pull_secrets.iter().flatten())
        .map(|r| r.name.clone())
        .filter(|n| !n.is_empty())
        .collect();
    let mut secrets = Vec::new();
    for name in names {
        let path = format!("/api/v1/namespaces/{ns}/secrets/{name}");
        match shared.api.get(&path, Attempts(3)).await {
            Ok(v) => secrets.push((name, v)),
            Err(e) if not_found(&e) => {
                tracing::warn!(pod = %pod.metadata.name.clone().unwrap_or_default(), secret = %name, "imagePullSecret not found")
            }
            Err(e) => tracing::warn!(secret = %name, error = %e, "reading an imagePullSecret"),
        }
    }
    secret_credentials(&secrets, registry)
}

/// Posts a core/v1 Event about the container to the API server, in the
/// background (best effort: a container start never waits for it).
fn event(
    shared: &Shared,
    pod: &Pod,
    container: &Container,
    type_: &str,
    reason: &str,
    message: &str,
) {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let now = jiff::Timestamp::now().to_string();
    let ev = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": format!("{name}.{:016x}", rand::random::<u64>()), "namespace": ns},
        "involvedObject": {
            "apiVersion": "v1", "kind": "Pod", "name": name, "namespace": ns,
            "uid": pod.metadata.uid,
            "fieldPath": format!("spec.containers{{{}}}", container.name),
        },
        "reason": reason,
        "message": message,
        "type": type_,
        "source": {"component": "kubelet", "host": shared.node_name},
        "reportingComponent": "kubelet",
        "reportingInstance": shared.node_name,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    });
    let path = format!("/api/v1/namespaces/{ns}/events");
    let api = shared.api.clone();
    let reason = reason.to_string();
    tokio::spawn(async move {
        if let Err(e) = api.create(&path, &ev, Attempts(2)).await {
            tracing::debug!(error = %e, reason, "posting an event");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(image: &str, policy: Option<&str>) -> Container {
        Container {
            name: "c".into(),
            image: Some(image.into()),
            image_pull_policy: policy.map(String::from),
            ..Container::default()
        }
    }

    #[test]
    fn policies_default_by_tag() {
        assert_eq!(
            PullPolicy::of(&container("busybox", None)),
            PullPolicy::Always
        );
        assert_eq!(
            PullPolicy::of(&container("busybox:latest", None)),
            PullPolicy::Always
        );
        assert_eq!(
            PullPolicy::of(&container("busybox:1.36", None)),
            PullPolicy::IfNotPresent
        );
        let d = format!("busybox@sha256:{}", "a".repeat(64));
        assert_eq!(
            PullPolicy::of(&container(&d, None)),
            PullPolicy::IfNotPresent
        );
        assert_eq!(
            PullPolicy::of(&container("busybox:1", Some("Never"))),
            PullPolicy::Never
        );
        assert_eq!(
            PullPolicy::of(&container("busybox", Some("IfNotPresent"))),
            PullPolicy::IfNotPresent
        );
    }

    #[test]
    fn the_policy_decides_whether_to_pull() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let none = PullFailures::default();
        assert_eq!(step(PullPolicy::Never, false, &none, t0), Step::UseLocal);
        assert_eq!(
            step(PullPolicy::IfNotPresent, true, &none, t0),
            Step::UseLocal
        );
        assert_eq!(step(PullPolicy::IfNotPresent, false, &none, t0), Step::Pull);
        assert_eq!(step(PullPolicy::Always, true, &none, t0), Step::Pull);
    }

    #[test]
    fn failed_pulls_back_off_ten_seconds_doubling() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut f = PullFailures {
            count: 1,
            last: Some(t0),
            message: "connection refused".into(),
        };
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(
            step(PullPolicy::Always, false, &f, at(3)),
            Step::BackOff { until: at(10) }
        );
        assert_eq!(step(PullPolicy::Always, false, &f, at(10)), Step::Pull);
        f.count = 3;
        assert_eq!(
            step(PullPolicy::IfNotPresent, false, &f, at(30)),
            Step::BackOff { until: at(40) }
        );
        // A present image needs no pull whatever happened before.
        assert_eq!(
            step(PullPolicy::IfNotPresent, true, &f, at(1)),
            Step::UseLocal
        );
        assert_eq!(
            backoff_message("x", &f),
            "Back-off pulling image \"x\": connection refused"
        );
    }

    #[test]
    fn pulled_messages_say_time_and_size() {
        assert_eq!(
            pulled_message("busybox", Duration::from_millis(1234), 42),
            "Successfully pulled image \"busybox\" in 1.234s. Image size: 42 bytes."
        );
    }

    #[test]
    fn pull_secrets_match_the_registry() {
        let b64 = base64::engine::general_purpose::STANDARD;
        let cfg = b64.encode(r#"{"auths":{"10.0.0.1:5000":{"username":"u","password":"p"}}}"#);
        let secrets = vec![
            (
                "s1".to_string(),
                json!({"data": {".dockerconfigjson": cfg}}),
            ),
            ("s2".to_string(), json!({"data": {"other": "eA=="}})),
        ];
        assert_eq!(
            secret_credentials(&secrets, "10.0.0.1:5000"),
            vec![Credentials::Basic {
                username: "u".into(),
                password: "p".into()
            }]
        );
        assert!(secret_credentials(&secrets, "docker.io").is_empty());
        assert_eq!(registry_of("busybox").as_deref(), Some("docker.io"));
    }
}
