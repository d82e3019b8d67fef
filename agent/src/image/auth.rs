//! Registry credentials: what a user gives (a username and password, or an
//! identity token) and where they come from — a pod's imagePullSecrets
//! (`kubernetes.io/dockerconfigjson`, or the older `kubernetes.io/dockercfg`)
//! matched to an image's registry the way docker and the kubelet match them.
//! Pure parsing, no I/O.

use base64::Engine;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

use super::reference::DEFAULT_REGISTRY;

/// What to present to a registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    Basic {
        username: String,
        password: String,
    },
    /// An identity (refresh) token or a registry token, sent as a bearer token.
    Token(String),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Basic { username, .. } => write!(f, "Basic({username:?}, <redacted>)"),
            Credentials::Token(_) => write!(f, "Token(<redacted>)"),
        }
    }
}

/// Why a docker config could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("docker config is not valid JSON: {0}")]
    Json(String),
    #[error("docker config entry for {0:?}: the auth field is not base64 of user:password")]
    BadAuth(String),
}

/// One entry of a docker config's `auths`.
#[derive(Debug, Default, Deserialize)]
pub struct AuthEntry {
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// base64 of `user:password`.
    #[serde(default)]
    pub auth: Option<String>,
    #[serde(default, alias = "identitytoken")]
    pub identity_token: Option<String>,
    #[serde(default, alias = "registrytoken")]
    pub registry_token: Option<String>,
}

impl AuthEntry {
    /// The credentials this entry gives, if any. `what` names it in errors.
    pub fn credentials(&self, what: &str) -> Result<Option<Credentials>, AuthError> {
        if let Some(t) = self.registry_token.as_ref().filter(|t| !t.is_empty()) {
            return Ok(Some(Credentials::Token(t.clone())));
        }
        if let (Some(u), Some(p)) = (&self.username, &self.password) {
            if !u.is_empty() {
                return Ok(Some(Credentials::Basic {
                    username: u.clone(),
                    password: p.clone(),
                }));
            }
        }
        if let Some(a) = self.auth.as_ref().filter(|a| !a.is_empty()) {
            let bad = || AuthError::BadAuth(what.to_string());
            let raw = base64::engine::general_purpose::STANDARD
                .decode(a.trim())
                .map_err(|_| bad())?;
            let text = String::from_utf8(raw).map_err(|_| bad())?;
            let (u, p) = text.split_once(':').ok_or_else(bad)?;
            return Ok(Some(Credentials::Basic {
                username: u.to_string(),
                password: p.to_string(),
            }));
        }
        if let Some(t) = self.identity_token.as_ref().filter(|t| !t.is_empty()) {
            return Ok(Some(Credentials::Token(t.clone())));
        }
        Ok(None)
    }
}

/// The registry host a docker config key names: `https://index.docker.io/v1/`
/// → `docker.io`, `https://host:5000/v2` → `host:5000`.
pub fn normalize_host(key: &str) -> String {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = k.split('/').next().unwrap_or(k).to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            DEFAULT_REGISTRY.to_string()
        }
        _ => host,
    }
}

/// The credentials a docker config (`.dockerconfigjson` with `auths`, or a
/// `.dockercfg` map) holds for `registry` (a normalised registry host such as
/// `docker.io` or `10.0.0.1:5000`); `None` when it has no entry for it.
pub fn from_docker_config(json: &[u8], registry: &str) -> Result<Option<Credentials>, AuthError> {
    let value: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| AuthError::Json(e.to_string()))?;
    let map = match value.get("auths") {
        Some(a) => a.clone(),
        None => value,
    };
    let entries: BTreeMap<String, AuthEntry> =
        serde_json::from_value(map).map_err(|e| AuthError::Json(e.to_string()))?;
    let wanted = normalize_host(registry);
    for (key, entry) in &entries {
        if normalize_host(key) == wanted {
            if let Some(c) = entry.credentials(key)? {
                return Ok(Some(c));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(u: &str, p: &str) -> Credentials {
        Credentials::Basic {
            username: u.into(),
            password: p.into(),
        }
    }

    #[test]
    fn dockerconfigjson_entries_match_their_registry() {
        let auth = base64::engine::general_purpose::STANDARD.encode("bob:s3cret:x");
        let json = format!(
            r#"{{"auths": {{
                "https://index.docker.io/v1/": {{"auth": "{auth}"}},
                "10.0.0.1:5000": {{"username": "alice", "password": "pw"}},
                "https://quay.io": {{"identitytoken": "tok"}}
            }}}}"#
        );
        let get = |r: &str| from_docker_config(json.as_bytes(), r).unwrap();
        assert_eq!(get("docker.io"), Some(basic("bob", "s3cret:x")));
        assert_eq!(get("10.0.0.1:5000"), Some(basic("alice", "pw")));
        assert_eq!(get("quay.io"), Some(Credentials::Token("tok".into())));
        assert_eq!(get("10.0.0.1:5001"), None);
        assert_eq!(get("ghcr.io"), None);
    }

    #[test]
    fn the_old_dockercfg_shape_works_too() {
        let json = r#"{"host:5000": {"username": "u", "password": "p", "email": "x@y"}}"#;
        assert_eq!(
            from_docker_config(json.as_bytes(), "host:5000").unwrap(),
            Some(basic("u", "p"))
        );
    }

    #[test]
    fn broken_configs_are_errors() {
        assert!(matches!(
            from_docker_config(b"{", "x"),
            Err(AuthError::Json(_))
        ));
        let json = r#"{"auths": {"h": {"auth": "%%%"}}}"#;
        assert_eq!(
            from_docker_config(json.as_bytes(), "h"),
            Err(AuthError::BadAuth("h".into()))
        );
        let no_colon = base64::engine::general_purpose::STANDARD.encode("nocolon");
        let json = format!(r#"{{"auths": {{"h": {{"auth": "{no_colon}"}}}}}}"#);
        assert!(from_docker_config(json.as_bytes(), "h").is_err());
    }

    #[test]
    fn hosts_are_normalised() {
        assert_eq!(
            normalize_host("https://registry-1.docker.io/v2/"),
            "docker.io"
        );
        assert_eq!(normalize_host("http://Host:5000/path"), "host:5000");
        assert_eq!(normalize_host("host"), "host");
    }

    #[test]
    fn debug_hides_secrets() {
        let s = format!("{:?}", basic("u", "hunter2"));
        assert!(!s.contains("hunter2"));
        assert!(!format!("{:?}", Credentials::Token("t0k".into())).contains("t0k"));
    }
}
