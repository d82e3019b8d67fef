//! Where to pull a registry's images from, and how: the agent's registries file
//! (k3s's `registries.yaml` shape — `mirrors` with endpoint lists, `configs`
//! with `auth` and `tls` per host) and `--insecure-registry HOST:PORT` (plain
//! HTTP). Pure: reading the file is one function, the rest is decisions.
//!
//! ```yaml
//! mirrors:
//!   docker.io:
//!     endpoint: ["https://mirror.example:5000"]
//! configs:
//!   mirror.example:5000:
//!     auth: {username: u, password: p}
//!     tls: {insecure_skip_verify: true, ca_file: /etc/ssl/mirror.pem}
//! ```

use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::auth::{normalize_host, AuthEntry, Credentials};

/// Why the registries file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RegistriesError {
    #[error("reading registries file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("registries file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// The registries file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistriesFile {
    #[serde(default)]
    pub mirrors: BTreeMap<String, Mirror>,
    #[serde(default)]
    pub configs: BTreeMap<String, HostConfig>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Mirror {
    /// `https://host[:port]` or `http://host[:port]`, tried in order before the
    /// registry itself.
    #[serde(default)]
    pub endpoint: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct HostConfig {
    #[serde(default)]
    pub auth: Option<AuthEntry>,
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

#[derive(Debug, Default, Deserialize)]
pub struct TlsConfig {
    #[serde(default)]
    pub insecure_skip_verify: bool,
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

/// One place to try for an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host[:port]` as used in URLs.
    pub host: String,
    /// Plain HTTP instead of HTTPS.
    pub plain_http: bool,
    pub skip_verify: bool,
    pub ca_file: Option<PathBuf>,
    /// From the registries file's `configs`.
    pub credentials: Option<Credentials>,
    /// A mirror rather than the registry itself.
    pub mirror: bool,
}

/// The registries file and the insecure registries, ready to answer
/// [`Registries::endpoints`].
#[derive(Debug, Clone, Default)]
pub struct Registries {
    mirrors: BTreeMap<String, Vec<String>>,
    configs: BTreeMap<String, (Option<Credentials>, bool, Option<PathBuf>)>,
    insecure: BTreeSet<String>,
}

impl Registries {
    /// From the text of a registries file (`shown` names it in errors) and the
    /// `--insecure-registry` hosts.
    pub fn parse(text: &str, shown: &Path, insecure: &[String]) -> Result<Self, RegistriesError> {
        let invalid = |message: String| RegistriesError::Invalid {
            path: shown.to_path_buf(),
            message,
        };
        let file: RegistriesFile = if text.trim().is_empty() {
            RegistriesFile::default()
        } else {
            serde_yaml_ng::from_str(text).map_err(|e| invalid(e.to_string()))?
        };
        let mut mirrors = BTreeMap::new();
        for (name, m) in file.mirrors {
            for e in &m.endpoint {
                split_endpoint(e)
                    .map_err(|why| invalid(format!("mirror {name:?}: endpoint {e:?}: {why}")))?;
            }
            mirrors.insert(registry_key(&name), m.endpoint);
        }
        let mut configs = BTreeMap::new();
        for (host, c) in file.configs {
            let creds = match &c.auth {
                Some(a) => a
                    .credentials(&host)
                    .map_err(|e| invalid(format!("configs {host:?}: {e}")))?,
                None => None,
            };
            let tls = c.tls.unwrap_or_default();
            configs.insert(
                normalize_host(&host),
                (creds, tls.insecure_skip_verify, tls.ca_file),
            );
        }
        let mut set = BTreeSet::new();
        for h in insecure {
            if h.is_empty() || h.contains('/') {
                return Err(invalid(format!(
                    "--insecure-registry {h:?} must be HOST or HOST:PORT"
                )));
            }
            set.insert(h.to_ascii_lowercase());
        }
        Ok(Registries {
            mirrors,
            configs,
            insecure: set,
        })
    }

    /// Reads `path`; a missing file means no mirrors and no configs.
    pub fn load(path: &Path, insecure: &[String]) -> Result<Self, RegistriesError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text, path, insecure),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::parse("", path, insecure),
            Err(source) => Err(RegistriesError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Where to pull images of `registry` (a normalised registry such as
    /// `docker.io`): its mirrors in order (or those of `"*"`), then the
    /// registry itself.
    pub fn endpoints(&self, registry: &str) -> Vec<Endpoint> {
        let key = registry_key(registry);
        let mut out = Vec::new();
        let mirrors = self.mirrors.get(&key).or_else(|| self.mirrors.get("*"));
        for e in mirrors.into_iter().flatten() {
            if let Ok((host, http)) = split_endpoint(e) {
                out.push(self.endpoint(&host, http, true));
            }
        }
        if !out.iter().any(|e| e.host == key) {
            out.push(self.endpoint(&key, false, false));
        }
        out
    }

    fn endpoint(&self, host: &str, http: bool, mirror: bool) -> Endpoint {
        let (credentials, skip_verify, ca_file) = self
            .configs
            .get(host)
            .cloned()
            .unwrap_or((None, false, None));
        Endpoint {
            host: host.to_string(),
            plain_http: http || self.insecure.contains(host),
            skip_verify,
            ca_file,
            credentials,
            mirror,
        }
    }
}

/// `docker.io` for every spelling of Docker Hub; hosts lowercased.
fn registry_key(name: &str) -> String {
    if name == "*" {
        return name.to_string();
    }
    normalize_host(name)
}

/// `http://host:port/…` → (`host:port`, true); a bare host means HTTPS.
fn split_endpoint(e: &str) -> Result<(String, bool), &'static str> {
    let (rest, http) = if let Some(r) = e.strip_prefix("http://") {
        (r, true)
    } else if let Some(r) = e.strip_prefix("https://") {
        (r, false)
    } else if e.contains("://") {
        return Err("only http:// and https:// endpoints are supported");
    } else {
        (e, false)
    };
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() {
        return Err("no host");
    }
    if rest.len() > host.len() && rest[host.len()..].trim_matches('/') != "v2" {
        return Err("endpoints with a path are not supported");
    }
    Ok((normalize_host(host), http))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
mirrors:
  docker.io:
    endpoint:
      - "http://mirror.local:5000"
      - "https://mirror2.local"
  "*":
    endpoint: ["https://catchall.local"]
configs:
  "mirror2.local":
    auth:
      username: u
      password: p
    tls:
      insecure_skip_verify: true
  "10.0.0.9:5000":
    auth:
      auth: dTI6cDI=
"#;

    fn regs(text: &str, insecure: &[&str]) -> Registries {
        let insecure: Vec<String> = insecure.iter().map(|s| s.to_string()).collect();
        Registries::parse(text, Path::new("registries.yaml"), &insecure).unwrap()
    }

    #[test]
    fn mirrors_come_first_then_the_registry() {
        let r = regs(FILE, &[]);
        let eps = r.endpoints("docker.io");
        let hosts: Vec<&str> = eps.iter().map(|e| e.host.as_str()).collect();
        assert_eq!(hosts, ["mirror.local:5000", "mirror2.local", "docker.io"]);
        assert!(eps[0].plain_http && eps[0].mirror && eps[0].credentials.is_none());
        assert!(!eps[1].plain_http && eps[1].skip_verify);
        assert_eq!(
            eps[1].credentials,
            Some(Credentials::Basic {
                username: "u".into(),
                password: "p".into()
            })
        );
        assert!(!eps[2].mirror && !eps[2].plain_http);
    }

    #[test]
    fn the_wildcard_mirror_serves_other_registries() {
        let r = regs(FILE, &[]);
        let hosts: Vec<String> = r.endpoints("quay.io").into_iter().map(|e| e.host).collect();
        assert_eq!(hosts, ["catchall.local", "quay.io"]);
    }

    #[test]
    fn configs_and_insecure_registries_apply_to_the_registry_itself() {
        let r = regs(FILE, &["10.0.0.9:5000"]);
        let eps = r.endpoints("10.0.0.9:5000");
        assert_eq!(eps.len(), 2, "{eps:?}");
        let own = eps.last().unwrap();
        assert_eq!(own.host, "10.0.0.9:5000");
        assert!(own.plain_http);
        assert_eq!(
            own.credentials,
            Some(Credentials::Basic {
                username: "u2".into(),
                password: "p2".into()
            })
        );
        let plain = regs("", &[]);
        assert_eq!(plain.endpoints("x.io").len(), 1);
        assert!(!plain.endpoints("x.io")[0].plain_http);
    }

    #[test]
    fn bad_files_name_the_problem() {
        let bad = |text: &str| {
            Registries::parse(text, Path::new("r.yaml"), &[])
                .unwrap_err()
                .to_string()
        };
        assert!(bad("mirrors: [1, 2]").starts_with("registries file r.yaml:"));
        assert!(bad("mirrorz: {}").contains("mirrorz"));
        assert!(bad("mirrors:\n  docker.io:\n    endpoint: [\"ftp://x\"]\n").contains("ftp://x"));
        assert!(Registries::parse("", Path::new("r"), &["a/b".into()]).is_err());
    }

    #[test]
    fn a_missing_file_is_no_configuration() {
        let r = Registries::load(Path::new("/nonexistent/registries.yaml"), &[]).unwrap();
        assert_eq!(r.endpoints("docker.io").len(), 1);
    }
}
