//! Kubeconfig files that kubectl and the client libraries use as they are:
//! one cluster `bosun` (CA embedded), one user with an embedded client
//! certificate and key, one context `bosun`, made current. Serialised with
//! serde_yaml_ng from the structs below; written only when the content changes.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::files::{self, PRIVATE};
use super::AuthError;

/// File name of the admin kubeconfig under the data dir.
pub const ADMIN_KUBECONFIG: &str = "admin.kubeconfig";
/// Name of the cluster and of the context.
pub const CLUSTER_NAME: &str = "bosun";

/// A kubeconfig (`apiVersion: v1`, `kind: Config`), the fields bosun writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Kubeconfig {
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    pub kind: String,
    pub clusters: Vec<NamedCluster>,
    pub users: Vec<NamedUser>,
    pub contexts: Vec<NamedContext>,
    pub current_context: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedCluster {
    pub name: String,
    pub cluster: Cluster,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Cluster {
    pub server: String,
    pub certificate_authority_data: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedUser {
    pub name: String,
    pub user: User,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct User {
    pub client_certificate_data: String,
    pub client_key_data: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedContext {
    pub name: String,
    pub context: Context,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Context {
    pub cluster: String,
    pub user: String,
}

impl Kubeconfig {
    /// A kubeconfig for `user` with an embedded client certificate, talking to
    /// `server_url` and trusting `ca_pem`.
    pub fn new(server_url: &str, ca_pem: &str, user: &str, cert_pem: &str, key_pem: &str) -> Self {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
        Kubeconfig {
            api_version: "v1".to_string(),
            kind: "Config".to_string(),
            clusters: vec![NamedCluster {
                name: CLUSTER_NAME.to_string(),
                cluster: Cluster {
                    server: server_url.to_string(),
                    certificate_authority_data: b64(ca_pem),
                },
            }],
            users: vec![NamedUser {
                name: user.to_string(),
                user: User {
                    client_certificate_data: b64(cert_pem),
                    client_key_data: b64(key_pem),
                },
            }],
            contexts: vec![NamedContext {
                name: CLUSTER_NAME.to_string(),
                context: Context {
                    cluster: CLUSTER_NAME.to_string(),
                    user: user.to_string(),
                },
            }],
            current_context: CLUSTER_NAME.to_string(),
        }
    }
}

/// `https://HOST:PORT`, with an IPv6 host in brackets.
pub fn server_url(host: IpAddr, port: u16) -> String {
    format!("https://{}", SocketAddr::new(host, port))
}

/// The URL clients should use for a master listening on `listen`: the advertise
/// address if given, else the listen address, else (wildcard) 127.0.0.1.
pub fn server_url_for(listen: SocketAddr, advertise: Option<IpAddr>) -> String {
    let host = advertise.unwrap_or(listen.ip());
    let host = if host.is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        host
    };
    server_url(host, listen.port())
}

/// Writes a kubeconfig (mode 0600) to `path` for `user`, unless the file already
/// holds exactly that content. Returns whether it was written.
pub fn write_kubeconfig(
    path: &Path,
    server_url: &str,
    ca_pem: &str,
    client_cert_pem: &str,
    client_key_pem: &str,
    user: &str,
) -> Result<bool, AuthError> {
    let config = Kubeconfig::new(server_url, ca_pem, user, client_cert_pem, client_key_pem);
    let yaml = serde_yaml_ng::to_string(&config).map_err(|source| AuthError::Kubeconfig {
        path: path.to_path_buf(),
        source,
    })?;
    if files::read_optional(path)?.as_deref() == Some(yaml.as_bytes()) {
        files::tighten_mode(path)?;
        return Ok(false);
    }
    files::write_atomic(path, yaml.as_bytes(), PRIVATE)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            server_url("fd00::1".parse().unwrap(), 6443),
            "https://[fd00::1]:6443"
        );
        assert_eq!(
            server_url_for("0.0.0.0:6443".parse().unwrap(), None),
            "https://127.0.0.1:6443"
        );
        assert_eq!(
            server_url_for("[::]:7000".parse().unwrap(), None),
            "https://127.0.0.1:7000"
        );
        assert_eq!(
            server_url_for(
                "0.0.0.0:6443".parse().unwrap(),
                Some("10.1.1.1".parse().unwrap())
            ),
            "https://10.1.1.1:6443"
        );
        assert_eq!(
            server_url_for("10.2.2.2:6443".parse().unwrap(), None),
            "https://10.2.2.2:6443"
        );
    }

    #[test]
    fn yaml_has_kubectl_field_names_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        assert!(
            write_kubeconfig(&path, "https://[::1]:6443", "CA", "CERT", "KEY", "admin").unwrap()
        );
        assert!(
            !write_kubeconfig(&path, "https://[::1]:6443", "CA", "CERT", "KEY", "admin").unwrap()
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(value["apiVersion"].as_str(), Some("v1"));
        assert_eq!(value["kind"].as_str(), Some("Config"));
        assert_eq!(value["current-context"].as_str(), Some("bosun"));
        let cluster = &value["clusters"][0];
        assert_eq!(cluster["name"].as_str(), Some("bosun"));
        assert_eq!(
            cluster["cluster"]["server"].as_str(),
            Some("https://[::1]:6443")
        );
        assert_eq!(
            cluster["cluster"]["certificate-authority-data"].as_str(),
            Some("Q0E=")
        );
        let user = &value["users"][0];
        assert_eq!(user["name"].as_str(), Some("admin"));
        assert_eq!(
            user["user"]["client-certificate-data"].as_str(),
            Some("Q0VSVA==")
        );
        assert_eq!(user["user"]["client-key-data"].as_str(), Some("S0VZ"));
        assert_eq!(
            value["contexts"][0]["context"]["user"].as_str(),
            Some("admin")
        );
        assert_eq!(
            value["contexts"][0]["context"]["cluster"].as_str(),
            Some("bosun")
        );

        assert!(
            write_kubeconfig(&path, "https://10.0.0.1:6443", "CA", "CERT", "KEY", "admin").unwrap()
        );
        let back: Kubeconfig =
            serde_yaml_ng::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(back.clusters[0].cluster.server, "https://10.0.0.1:6443");
    }
}
