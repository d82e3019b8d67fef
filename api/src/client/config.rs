//! Where a client connects and how it proves who it is: the server URL, the CA
//! that signs the server's certificate and the [`Credentials`], read from the
//! current context of a kubeconfig file. Parsing is pure ([`Config::from_kubeconfig_yaml`]);
//! only [`Config::from_kubeconfig`] and the `*-file` fields of a kubeconfig read files.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;

/// How the client authenticates to the API server.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// A client certificate and its private key, both PEM.
    ClientCert { cert_pem: String, key_pem: String },
    /// A bearer token sent in `Authorization`.
    Token(String),
}

impl std::fmt::Debug for Credentials {
    /// Never prints the key or the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::ClientCert { .. } => f.write_str("ClientCert { .. }"),
            Credentials::Token(_) => f.write_str("Token(..)"),
        }
    }
}

/// Everything needed to build a [`super::Client`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// `https://host:port`, possibly with a path prefix.
    pub server: String,
    /// PEM of the CA(s) that sign the server certificate.
    pub ca_pem: String,
    pub credentials: Credentials,
}

/// Why a kubeconfig could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("kubeconfig is not valid YAML")]
    Yaml(#[source] serde_yaml_ng::Error),
    #[error("kubeconfig has no current-context")]
    NoCurrentContext,
    #[error("kubeconfig has no {what} named {name:?}")]
    Missing { what: &'static str, name: String },
    #[error("field {field} of the kubeconfig is not valid base64")]
    Base64 {
        field: &'static str,
        #[source]
        source: base64::DecodeError,
    },
    #[error("field {field} of the kubeconfig is not UTF-8 text")]
    NotText { field: &'static str },
    #[error("cluster {cluster:?} has no certificate-authority-data or certificate-authority")]
    NoCa { cluster: String },
    #[error("user {user:?} has neither a client certificate and key nor a token")]
    NoCredentials { user: String },
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawKubeconfig {
    #[serde(default)]
    clusters: Vec<Named<RawCluster>>,
    #[serde(default)]
    users: Vec<Named<RawUser>>,
    #[serde(default)]
    contexts: Vec<Named<RawContext>>,
    #[serde(default)]
    current_context: Option<String>,
}

#[derive(Deserialize)]
struct Named<T> {
    name: String,
    #[serde(alias = "cluster", alias = "user", alias = "context")]
    item: T,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawCluster {
    server: String,
    certificate_authority_data: Option<String>,
    certificate_authority: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
struct RawUser {
    client_certificate_data: Option<String>,
    client_key_data: Option<String>,
    client_certificate: Option<PathBuf>,
    client_key: Option<PathBuf>,
    token: Option<String>,
    #[serde(rename = "tokenFile")]
    token_file: Option<PathBuf>,
}

#[derive(Deserialize)]
struct RawContext {
    cluster: String,
    user: String,
}

impl Config {
    /// Reads the kubeconfig at `path` and resolves its current context. Relative
    /// file references in it are relative to the file's directory, as kubectl does.
    pub fn from_kubeconfig(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::from_kubeconfig_yaml(&text, base)
    }

    /// Parses kubeconfig text and resolves its current context; `base` is where
    /// relative file references point.
    pub fn from_kubeconfig_yaml(text: &str, base: &Path) -> Result<Config, ConfigError> {
        let raw: RawKubeconfig = serde_yaml_ng::from_str(text).map_err(ConfigError::Yaml)?;
        let current = raw
            .current_context
            .filter(|c| !c.is_empty())
            .ok_or(ConfigError::NoCurrentContext)?;
        let context = find(raw.contexts, "context", &current)?;
        let cluster = find(raw.clusters, "cluster", &context.cluster)?;
        let user = find(raw.users, "user", &context.user)?;

        let ca_pem = match (
            &cluster.certificate_authority_data,
            &cluster.certificate_authority,
        ) {
            (Some(data), _) => decode("certificate-authority-data", data)?,
            (None, Some(file)) => read_text(base, file)?,
            (None, None) => {
                return Err(ConfigError::NoCa {
                    cluster: context.cluster,
                })
            }
        };
        let cert = match (&user.client_certificate_data, &user.client_certificate) {
            (Some(data), _) => Some(decode("client-certificate-data", data)?),
            (None, Some(file)) => Some(read_text(base, file)?),
            (None, None) => None,
        };
        let key = match (&user.client_key_data, &user.client_key) {
            (Some(data), _) => Some(decode("client-key-data", data)?),
            (None, Some(file)) => Some(read_text(base, file)?),
            (None, None) => None,
        };
        let token = match (&user.token, &user.token_file) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(file)) => Some(read_text(base, file)?.trim().to_string()),
            (None, None) => None,
        };
        let credentials = match (cert, key, token) {
            (Some(cert_pem), Some(key_pem), _) => Credentials::ClientCert { cert_pem, key_pem },
            (_, _, Some(token)) if !token.is_empty() => Credentials::Token(token),
            _ => {
                return Err(ConfigError::NoCredentials { user: context.user });
            }
        };
        Ok(Config {
            server: cluster.server,
            ca_pem,
            credentials,
        })
    }
}

fn find<T>(items: Vec<Named<T>>, what: &'static str, name: &str) -> Result<T, ConfigError> {
    items
        .into_iter()
        .find(|n| n.name == name)
        .map(|n| n.item)
        .ok_or_else(|| ConfigError::Missing {
            what,
            name: name.to_string(),
        })
}

fn decode(field: &'static str, data: &str) -> Result<String, ConfigError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|source| ConfigError::Base64 { field, source })?;
    String::from_utf8(bytes).map_err(|_| ConfigError::NotText { field })
}

fn read_text(base: &Path, file: &Path) -> Result<String, ConfigError> {
    let path = base.join(file);
    std::fs::read_to_string(&path).map_err(|source| ConfigError::Read { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn cert_config(current: &str) -> String {
        format!(
            "apiVersion: v1
kind: Config
clusters:
- name: other
  cluster:
    server: https://10.0.0.1:6443
    certificate-authority-data: {other_ca}
- name: bosun
  cluster:
    server: https://127.0.0.1:6443
    certificate-authority-data: {ca}
users:
- name: admin
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
- name: robot
  user:
    token: abc.def
contexts:
- name: bosun
  context:
    cluster: bosun
    user: admin
- name: robot
  context:
    cluster: bosun
    user: robot
current-context: {current}
",
            other_ca = b64("OTHER CA"),
            ca = b64("CA PEM"),
            cert = b64("CERT PEM"),
            key = b64("KEY PEM"),
        )
    }

    #[test]
    fn current_context_with_client_certificate() {
        let c = Config::from_kubeconfig_yaml(&cert_config("bosun"), Path::new("/")).unwrap();
        assert_eq!(c.server, "https://127.0.0.1:6443");
        assert_eq!(c.ca_pem, "CA PEM");
        assert_eq!(
            c.credentials,
            Credentials::ClientCert {
                cert_pem: "CERT PEM".into(),
                key_pem: "KEY PEM".into()
            }
        );
    }

    #[test]
    fn current_context_with_token() {
        let c = Config::from_kubeconfig_yaml(&cert_config("robot"), Path::new("/")).unwrap();
        assert_eq!(c.credentials, Credentials::Token("abc.def".into()));
        assert_eq!(format!("{:?}", c.credentials), "Token(..)");
    }

    #[test]
    fn errors_name_what_is_missing() {
        let err = Config::from_kubeconfig_yaml(&cert_config("nope"), Path::new("/")).unwrap_err();
        assert_eq!(err.to_string(), "kubeconfig has no context named \"nope\"");
        let err = Config::from_kubeconfig_yaml(&cert_config(""), Path::new("/")).unwrap_err();
        assert!(matches!(err, ConfigError::NoCurrentContext), "{err}");
        let bad = cert_config("bosun").replace(&b64("CA PEM"), "not*base64");
        let err = Config::from_kubeconfig_yaml(&bad, Path::new("/")).unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Base64 {
                field: "certificate-authority-data",
                ..
            }
        ));
        let err = Config::from_kubeconfig_yaml("clusters: [", Path::new("/")).unwrap_err();
        assert!(matches!(err, ConfigError::Yaml(_)));
    }

    #[test]
    fn user_without_credentials_is_refused() {
        let text = cert_config("robot").replace("    token: abc.def\n", "    {}\n");
        let text = text.replace("  user:\n    {}\n", "  user: {}\n");
        let err = Config::from_kubeconfig_yaml(&text, Path::new("/")).unwrap_err();
        assert!(
            matches!(err, ConfigError::NoCredentials { ref user } if user == "robot"),
            "{err}"
        );
    }

    #[test]
    fn file_references_are_relative_to_the_kubeconfig() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.crt"), "FILE CA").unwrap();
        std::fs::write(dir.path().join("token"), "tok\n").unwrap();
        let text = "clusters:
- name: c
  cluster: {server: 'https://[::1]:6443', certificate-authority: ca.crt}
users:
- name: u
  user: {tokenFile: token}
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
";
        let path = dir.path().join("config");
        std::fs::write(&path, text).unwrap();
        let c = Config::from_kubeconfig(&path).unwrap();
        assert_eq!(c.server, "https://[::1]:6443");
        assert_eq!(c.ca_pem, "FILE CA");
        assert_eq!(c.credentials, Credentials::Token("tok".into()));
    }
}
