//! Image references, normalised the way docker and containerd do it:
//! `busybox` → `docker.io/library/busybox:latest`, `host:5000/x` keeps its registry,
//! `name@sha256:…` keeps its digest. Pure parsing, no I/O; registry pulls reuse it.

use std::fmt;

/// The registry of names without one.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// The tag of names without a tag or digest.
pub const DEFAULT_TAG: &str = "latest";
const MAX_NAME_LEN: usize = 255;

/// Why a string is not an image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("image reference is empty")]
    Empty,
    #[error("invalid image reference {0:?}: repository names must be lowercase")]
    Uppercase(String),
    #[error("invalid image reference {0:?}: {1}")]
    Invalid(String, &'static str),
}

/// A normalised image reference: `registry/repository[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    /// e.g. `docker.io`, `localhost:5000`.
    pub registry: String,
    /// e.g. `library/busybox`.
    pub repository: String,
    /// e.g. `latest`; `None` only when a digest is given without a tag.
    pub tag: Option<String>,
    /// e.g. `sha256:<64 hex>`.
    pub digest: Option<String>,
}

impl Reference {
    /// Parses and normalises `s` like `docker pull` does.
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let bad = |why: &'static str| ReferenceError::Invalid(s.to_string(), why);
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                check_digest(d).map_err(bad)?;
                (r, Some(d.to_string()))
            }
            None => (s, None),
        };
        // A tag is after the last ':' that follows the last '/'.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let (n, t) = rest.split_at(last_slash + i);
                (n, Some(&t[1..]))
            }
            None => (rest, None),
        };
        if let Some(t) = tag {
            check_tag(t).map_err(bad)?;
        }
        if name.is_empty() {
            return Err(bad("no repository name"));
        }
        if name.len() > MAX_NAME_LEN {
            return Err(bad("name longer than 255 characters"));
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, path))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), path.to_string())
            }
            _ => (DEFAULT_REGISTRY.to_string(), name.to_string()),
        };
        let registry = if registry == "index.docker.io" {
            DEFAULT_REGISTRY.to_string()
        } else {
            registry
        };
        check_registry(&registry).map_err(bad)?;
        if path.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(ReferenceError::Uppercase(s.to_string()));
        }
        for component in path.split('/') {
            check_path_component(component).map_err(bad)?;
        }
        if registry == DEFAULT_REGISTRY
            && !path.contains('/')
            && path.len() == 64
            && path.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(bad("a 64-character hex string is an image id, not a name"));
        }
        let repository = if registry == DEFAULT_REGISTRY && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, None) => Some(DEFAULT_TAG.to_string()),
            (None, Some(_)) => None,
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// `registry/repository`, the IMAGE column of `bosun image ls`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same image named by digest: `registry/repository@digest`.
    pub fn with_digest(&self, digest: &str) -> String {
        format!("{}@{digest}", self.name())
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn check_path_component(c: &str) -> Result<(), &'static str> {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() {
        return Err("empty path component");
    }
    if !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return Err("path components must start and end with a letter or digit");
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return Err("invalid separator in repository name");
        }
    }
    Ok(())
}

/// A host name or IP, with an optional port.
fn check_registry(r: &str) -> Result<(), &'static str> {
    let (host, port) = if let Some(inner) = r.strip_prefix('[') {
        match inner.split_once(']') {
            Some((h, rest)) => (h, rest.strip_prefix(':')),
            None => return Err("unclosed '[' in registry"),
        }
    } else {
        match r.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (r, None),
        }
    };
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b':')
    {
        return Err("invalid registry host");
    }
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.parse::<u16>().is_err() {
            return Err("invalid registry port");
        }
    }
    Ok(())
}

/// `[\w][\w.-]{0,127}`
fn check_tag(t: &str) -> Result<(), &'static str> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let b = t.as_bytes();
    if b.is_empty() || b.len() > 128 {
        return Err("tags are 1 to 128 characters");
    }
    if !word(b[0]) || !b.iter().all(|&x| word(x) || x == b'.' || x == b'-') {
        return Err("invalid tag");
    }
    Ok(())
}

/// `algorithm:encoded`; sha256 and sha512 must be lowercase hex of the right length.
fn check_digest(d: &str) -> Result<(), &'static str> {
    let Some((alg, hex)) = d.split_once(':') else {
        return Err("digest lacks an algorithm");
    };
    let len = match alg {
        "sha256" => 64,
        "sha512" => 128,
        _ => return Err("unsupported digest algorithm"),
    };
    if hex.len() != len
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err("malformed digest");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        Reference::parse(s).unwrap().to_string()
    }

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn short_names_get_docker_hub_library_and_latest() {
        assert_eq!(norm("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(norm("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(norm("user/app"), "docker.io/user/app:latest");
        assert_eq!(
            norm("docker.io/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            norm("index.docker.io/library/busybox"),
            "docker.io/library/busybox:latest"
        );
    }

    #[test]
    fn registries_with_dots_ports_or_localhost_stay() {
        assert_eq!(norm("host:5000/x"), "host:5000/x:latest");
        assert_eq!(norm("localhost/x:1"), "localhost/x:1");
        assert_eq!(norm("quay.io/a/b/c:v2"), "quay.io/a/b/c:v2");
        assert_eq!(norm("[::1]:5000/x"), "[::1]:5000/x:latest");
        let r = Reference::parse("10.0.0.1:5000/team/app:v1").unwrap();
        assert_eq!(r.registry, "10.0.0.1:5000");
        assert_eq!(r.repository, "team/app");
        assert_eq!(r.tag.as_deref(), Some("v1"));
        assert_eq!(r.name(), "10.0.0.1:5000/team/app");
    }

    #[test]
    fn digests_are_kept_and_add_no_tag() {
        assert_eq!(
            norm(&format!("busybox@{D}")),
            format!("docker.io/library/busybox@{D}")
        );
        assert_eq!(
            norm(&format!("busybox:1@{D}")),
            format!("docker.io/library/busybox:1@{D}")
        );
        assert_eq!(
            norm(&format!("host:5000/x@{D}")),
            format!("host:5000/x@{D}")
        );
        let r = Reference::parse(&format!("busybox@{D}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.with_digest(D), format!("docker.io/library/busybox@{D}"));
    }

    #[test]
    fn bad_references_are_refused() {
        assert_eq!(Reference::parse(""), Err(ReferenceError::Empty));
        assert!(matches!(
            Reference::parse("BusyBox"),
            Err(ReferenceError::Uppercase(_))
        ));
        for bad in [
            "busybox:",
            "busybox:-x",
            "a//b",
            "-a",
            "a-",
            "a..b",
            "a b",
            "busybox@sha256:12",
            "busybox@md5:0123",
            "host:port/x",
            ":tag",
            "/x",
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad} should be refused");
        }
        assert!(Reference::parse(&"a".repeat(256)).is_err());
    }

    #[test]
    fn separators_follow_the_distribution_grammar() {
        assert!(Reference::parse("a_b").is_ok());
        assert!(Reference::parse("a__b").is_ok());
        assert!(Reference::parse("a---b").is_ok());
        assert!(Reference::parse("a.b").is_ok());
        assert!(Reference::parse("a___b").is_err());
        assert!(Reference::parse("a.-b").is_err());
    }

    #[test]
    fn display_round_trips() {
        for s in ["docker.io/library/busybox:latest", "host:5000/x:1"] {
            assert_eq!(norm(&norm(s)), s);
        }
    }
}
