//! A pod's volumes made ready on the host before its containers start: emptyDir
//! (a directory in the pod's dir), hostPath (checked or created by its type),
//! configMap, secret and downwardAPI (files written from their data), and the
//! same sources inside `projected`. Then each container's `volumeMounts` become
//! host-path mounts (with `subPath`). Plain file I/O, no mounts of its own: the
//! runtime bind-mounts the results.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, KeyToPath, Pod, Volume};

use super::cri::MountRequest;
use super::env::{field_value, Context};

/// ConfigMap and Secret data fetched for a pod (`None`: does not exist).
#[derive(Clone, Debug, Default)]
pub struct Fetched {
    pub config_maps: HashMap<String, Option<BTreeMap<String, Vec<u8>>>>,
    pub secrets: HashMap<String, Option<BTreeMap<String, Vec<u8>>>>,
}

impl super::env::Sources for Fetched {
    fn config_map(&self, name: &str) -> Option<BTreeMap<String, String>> {
        text(self.config_maps.get(name)?.as_ref()?)
    }
    fn secret(&self, name: &str) -> Option<BTreeMap<String, String>> {
        text(self.secrets.get(name)?.as_ref()?)
    }
}

fn text(data: &BTreeMap<String, Vec<u8>>) -> Option<BTreeMap<String, String>> {
    Some(
        data.iter()
            .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
            .collect(),
    )
}

/// Which ConfigMaps and Secrets a pod needs (env, envFrom, volumes).
pub fn referenced(pod: &Pod) -> (Vec<String>, Vec<String>) {
    let mut cms = Vec::new();
    let mut secrets = Vec::new();
    let Some(spec) = &pod.spec else {
        return (cms, secrets);
    };
    for c in spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
    {
        for from in c.env_from.iter().flatten() {
            cms.extend(from.config_map_ref.as_ref().map(|r| r.name.clone()));
            secrets.extend(from.secret_ref.as_ref().map(|r| r.name.clone()));
        }
        for var in c.env.iter().flatten() {
            if let Some(src) = &var.value_from {
                cms.extend(src.config_map_key_ref.as_ref().map(|r| r.name.clone()));
                secrets.extend(src.secret_key_ref.as_ref().map(|r| r.name.clone()));
            }
        }
    }
    for v in spec.volumes.iter().flatten() {
        cms.extend(v.config_map.as_ref().map(|c| c.name.clone()));
        secrets.extend(v.secret.as_ref().and_then(|s| s.secret_name.clone()));
        for s in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            cms.extend(s.config_map.as_ref().map(|c| c.name.clone()));
            secrets.extend(s.secret.as_ref().map(|c| c.name.clone()));
        }
    }
    cms.sort();
    cms.dedup();
    secrets.sort();
    secrets.dedup();
    (cms, secrets)
}

/// Why a volume could not be made ready.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("volume {volume:?}: {message}")]
    Invalid { volume: String, message: String },
    #[error("volume {volume:?}: writing {path}")]
    Io {
        volume: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("container {container:?} mounts volume {volume:?}, which the pod does not have")]
    NoSuchVolume { container: String, volume: String },
    #[error("subPath {sub_path:?} of volume {volume:?} must be a relative path inside the volume")]
    BadSubPath { volume: String, sub_path: String },
}

/// Makes every volume of `pod` ready under `pod_dir/volumes/` and returns the
/// host path of each by name.
pub fn prepare(
    pod: &Pod,
    pod_dir: &Path,
    fetched: &Fetched,
    ctx: &Context<'_>,
) -> Result<HashMap<String, PathBuf>, VolumeError> {
    let mut out = HashMap::new();
    for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let path = prepare_one(v, &pod_dir.join("volumes").join(&v.name), fetched, ctx)?;
        out.insert(v.name.clone(), path);
    }
    Ok(out)
}

fn prepare_one(
    v: &Volume,
    dir: &Path,
    fetched: &Fetched,
    ctx: &Context<'_>,
) -> Result<PathBuf, VolumeError> {
    let invalid = |message: String| VolumeError::Invalid {
        volume: v.name.clone(),
        message,
    };
    let io = |path: &Path| {
        let volume = v.name.clone();
        let path = path.to_path_buf();
        move |source| VolumeError::Io {
            volume,
            path,
            source,
        }
    };
    if let Some(hp) = &v.host_path {
        let path = PathBuf::from(&hp.path);
        let kind = hp.type_.as_deref().unwrap_or("");
        match kind {
            "DirectoryOrCreate" => std::fs::create_dir_all(&path).map_err(io(&path))?,
            "FileOrCreate" if !path.exists() => {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(io(parent))?;
                }
                std::fs::File::create(&path).map_err(io(&path))?;
            }
            "Directory" if !path.is_dir() => {
                return Err(invalid(format!(
                    "hostPath type check failed: {} is not a directory",
                    hp.path
                )))
            }
            "File" if !path.is_file() => {
                return Err(invalid(format!(
                    "hostPath type check failed: {} is not a file",
                    hp.path
                )))
            }
            "Socket" | "CharDevice" | "BlockDevice" if !path.exists() => {
                return Err(invalid(format!(
                    "hostPath type check failed: {} does not exist",
                    hp.path
                )))
            }
            _ => {}
        }
        return Ok(path);
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut files: Vec<File> = Vec::new();
    let mode;
    if v.empty_dir.is_some() {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).map_err(io(dir))?;
        return Ok(dir.to_path_buf());
    } else if let Some(cm) = &v.config_map {
        mode = cm.default_mode.unwrap_or(0o644);
        let data =
            lookup(&fetched.config_maps, &cm.name, cm.optional, "configmap").map_err(invalid)?;
        files.extend(project(&data, cm.items.as_deref(), cm.optional).map_err(invalid)?);
    } else if let Some(sec) = &v.secret {
        mode = sec.default_mode.unwrap_or(0o644);
        let name = sec.secret_name.clone().unwrap_or_default();
        let data = lookup(&fetched.secrets, &name, sec.optional, "secret").map_err(invalid)?;
        files.extend(project(&data, sec.items.as_deref(), sec.optional).map_err(invalid)?);
    } else if let Some(d) = &v.downward_api {
        mode = d.default_mode.unwrap_or(0o644);
        for item in d.items.iter().flatten() {
            let value = match &item.field_ref {
                Some(f) => field_value(ctx, &f.field_path).map_err(|e| invalid(e.to_string()))?,
                None => String::new(),
            };
            files.push((item.path.clone(), value.into_bytes(), item.mode));
        }
    } else if let Some(p) = &v.projected {
        mode = p.default_mode.unwrap_or(0o644);
        for s in p.sources.iter().flatten() {
            if let Some(cm) = &s.config_map {
                let data = lookup(&fetched.config_maps, &cm.name, cm.optional, "configmap")
                    .map_err(invalid)?;
                files.extend(project(&data, cm.items.as_deref(), cm.optional).map_err(invalid)?);
            } else if let Some(sec) = &s.secret {
                let data =
                    lookup(&fetched.secrets, &sec.name, sec.optional, "secret").map_err(invalid)?;
                files.extend(project(&data, sec.items.as_deref(), sec.optional).map_err(invalid)?);
            } else if let Some(d) = &s.downward_api {
                for item in d.items.iter().flatten() {
                    let value = match &item.field_ref {
                        Some(f) => {
                            field_value(ctx, &f.field_path).map_err(|e| invalid(e.to_string()))?
                        }
                        None => String::new(),
                    };
                    files.push((item.path.clone(), value.into_bytes(), item.mode));
                }
            } else if s.service_account_token.is_some() {
                return Err(invalid(
                    "serviceAccountToken projections are not supported by this agent".into(),
                ));
            }
        }
    } else {
        return Err(invalid(
            "this volume type is not supported by this agent".into(),
        ));
    }
    for (rel, data, file_mode) in files {
        let rel_path =
            safe_relative(&rel).ok_or_else(|| invalid(format!("bad item path {rel:?}")))?;
        let path = dir.join(rel_path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        write_atomic(&path, &data, file_mode.unwrap_or(mode) as u32).map_err(io(&path))?;
    }
    Ok(dir.to_path_buf())
}

/// A file of a volume: path inside it, contents, mode (default: the volume's).
type File = (String, Vec<u8>, Option<i32>);

fn lookup(
    map: &HashMap<String, Option<BTreeMap<String, Vec<u8>>>>,
    name: &str,
    optional: Option<bool>,
    kind: &str,
) -> Result<BTreeMap<String, Vec<u8>>, String> {
    match map.get(name).cloned().flatten() {
        Some(d) => Ok(d),
        None if optional == Some(true) => Ok(BTreeMap::new()),
        None => Err(format!("{kind} \"{name}\" not found")),
    }
}

fn project(
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    optional: Option<bool>,
) -> Result<Vec<File>, String> {
    match items {
        None => Ok(data
            .iter()
            .map(|(k, v)| (k.clone(), v.clone(), None))
            .collect()),
        Some(items) => {
            let mut out = Vec::new();
            for item in items {
                match data.get(&item.key) {
                    Some(v) => out.push((item.path.clone(), v.clone(), item.mode)),
                    None if optional == Some(true) => {}
                    None => return Err(format!("couldn't find key {}", item.key)),
                }
            }
            Ok(out)
        }
    }
}

/// `rel` as a path that stays inside its base (no `..`, not absolute).
fn safe_relative(rel: &str) -> Option<PathBuf> {
    let p = Path::new(rel);
    let ok = !rel.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)));
    ok.then(|| p.to_path_buf())
}

fn write_atomic(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    let tmp = path.with_extension("bosun-tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)?;
    f.write_all(data)?;
    f.set_permissions(std::fs::Permissions::from_mode(mode))?;
    drop(f);
    std::fs::rename(tmp, path)
}

/// The host-path mounts of `container` given the pod's prepared volumes.
pub fn mounts(
    container: &Container,
    volumes: &HashMap<String, PathBuf>,
) -> Result<Vec<MountRequest>, VolumeError> {
    let mut out = Vec::new();
    for m in container.volume_mounts.iter().flatten() {
        let base = volumes
            .get(&m.name)
            .ok_or_else(|| VolumeError::NoSuchVolume {
                container: container.name.clone(),
                volume: m.name.clone(),
            })?;
        let host_path = match m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            None => base.clone(),
            Some(sub) => {
                let rel = safe_relative(sub).ok_or_else(|| VolumeError::BadSubPath {
                    volume: m.name.clone(),
                    sub_path: sub.to_string(),
                })?;
                let p = base.join(rel);
                if !p.exists() {
                    std::fs::create_dir_all(&p).map_err(|source| VolumeError::Io {
                        volume: m.name.clone(),
                        path: p.clone(),
                        source,
                    })?;
                }
                p
            }
        };
        out.push(MountRequest {
            host_path,
            container_path: m.mount_path.clone(),
            read_only: m.read_only == Some(true),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(volumes: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "prod", "uid": "u1", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "a", "volumeMounts": [
                {"name": "cfg", "mountPath": "/etc/cfg", "readOnly": true},
                {"name": "scratch", "mountPath": "/data", "subPath": "a"}
            ]}], "volumes": volumes}
        }))
        .unwrap()
    }

    #[test]
    fn config_maps_and_downward_api_become_files_and_mounts() {
        let dir = tempfile::tempdir().unwrap();
        let p = pod(json!([
            {"name": "cfg", "configMap": {"name": "app", "items": [{"key": "k", "path": "sub/k.txt"}]}},
            {"name": "scratch", "emptyDir": {}},
            {"name": "info", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels['app']"}}]}}
        ]));
        let fetched = Fetched {
            config_maps: HashMap::from([(
                "app".to_string(),
                Some(BTreeMap::from([("k".to_string(), b"v1".to_vec())])),
            )]),
            ..Fetched::default()
        };
        let ctx = Context {
            pod: &p,
            host_ip: "",
            pod_ip: "",
        };
        let vols = prepare(&p, dir.path(), &fetched, &ctx).unwrap();
        assert_eq!(std::fs::read(vols["cfg"].join("sub/k.txt")).unwrap(), b"v1");
        assert_eq!(
            std::fs::read_to_string(vols["info"].join("labels")).unwrap(),
            "web"
        );
        let c = &p.spec.as_ref().unwrap().containers[0];
        let m = mounts(c, &vols).unwrap();
        assert_eq!(m[0].container_path, "/etc/cfg");
        assert!(m[0].read_only);
        assert_eq!(m[1].host_path, vols["scratch"].join("a"));
        assert!(m[1].host_path.is_dir());
    }

    #[test]
    fn a_missing_config_map_is_an_error_unless_optional() {
        let dir = tempfile::tempdir().unwrap();
        let p = pod(json!([{"name": "cfg", "configMap": {"name": "nope"}}]));
        let ctx = Context {
            pod: &p,
            host_ip: "",
            pod_ip: "",
        };
        let err = prepare(&p, dir.path(), &Fetched::default(), &ctx).unwrap_err();
        assert_eq!(
            err.to_string(),
            "volume \"cfg\": configmap \"nope\" not found"
        );
        let p = pod(json!([{"name": "cfg", "configMap": {"name": "nope", "optional": true}}]));
        assert!(prepare(&p, dir.path(), &Fetched::default(), &ctx).is_ok());
    }

    #[test]
    fn paths_cannot_escape_their_volume() {
        assert!(safe_relative("../etc/passwd").is_none());
        assert!(safe_relative("/etc/passwd").is_none());
        assert!(safe_relative("a/b").is_some());
        let dir = tempfile::tempdir().unwrap();
        let c: Container = serde_json::from_value(json!({"name": "a", "volumeMounts": [
            {"name": "v", "mountPath": "/x", "subPath": "../../"}]}))
        .unwrap();
        let vols = HashMap::from([("v".to_string(), dir.path().to_path_buf())]);
        assert!(matches!(
            mounts(&c, &vols),
            Err(VolumeError::BadSubPath { .. })
        ));
        let referenced_pod = pod(json!([{"name": "s", "secret": {"secretName": "tls"}}]));
        assert_eq!(referenced(&referenced_pod).1, vec!["tls"]);
    }
}
