//! Request paths and query strings: which resource, namespace, name and subresource a
//! request is about, and the query parameters a Kubernetes client sends.

use api::resources::{self, Resource, Scope};
use std::collections::HashMap;

/// What a path names.
#[derive(Debug, PartialEq)]
pub enum Route {
    Version,
    Healthz(&'static str),
    Metrics,
    OpenApiV2,
    OpenApiV3,
    /// `/api`
    CoreVersions,
    /// `/apis`
    Groups,
    /// `/apis/{group}`
    Group(String),
    /// `/api/v1`, `/apis/{group}/{version}`
    ResourceList {
        group: String,
        version: String,
    },
    /// A resource collection or object.
    Resource(Target),
    NotFound,
}

/// A resource request.
#[derive(Debug, PartialEq)]
pub struct Target {
    pub res: &'static Resource,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
    /// The legacy `/watch/` path prefix was used.
    pub watch_prefix: bool,
}

/// Parses a request path.
pub fn parse(path: &str) -> Route {
    let path = path.trim_end_matches('/');
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        ["version"] => Route::Version,
        ["healthz"] => Route::Healthz("healthz"),
        ["readyz"] => Route::Healthz("readyz"),
        ["livez"] => Route::Healthz("livez"),
        ["healthz", _] | ["readyz", _] | ["livez", _] => Route::Healthz("ok"),
        ["metrics"] => Route::Metrics,
        ["openapi", "v2"] => Route::OpenApiV2,
        ["openapi", "v3", ..] => Route::OpenApiV3,
        ["api"] => Route::CoreVersions,
        ["apis"] => Route::Groups,
        ["api", version] => group_version("", version),
        ["apis", group] => {
            if resources::GROUPS.iter().any(|(g, _)| g == group) {
                Route::Group(group.to_string())
            } else {
                Route::NotFound
            }
        }
        ["apis", group, version] => group_version(group, version),
        ["api", version, rest @ ..] => resource("", version, rest),
        ["apis", group, version, rest @ ..] => resource(group, version, rest),
        _ => Route::NotFound,
    }
}

fn group_version(group: &str, version: &str) -> Route {
    if resources::of_group_version(group, version).next().is_some() {
        Route::ResourceList {
            group: group.to_string(),
            version: version.to_string(),
        }
    } else {
        Route::NotFound
    }
}

fn resource(group: &str, version: &str, rest: &[&str]) -> Route {
    let (watch_prefix, rest) = match rest {
        ["watch", tail @ ..] => (true, tail),
        _ => (false, rest),
    };
    let find = |plural: &str| resources::find(group, version, plural);
    let target =
        |res: &'static Resource, ns: Option<&str>, name: Option<&str>, sub: Option<&str>| {
            Route::Resource(Target {
                res,
                namespace: ns.map(str::to_string),
                name: name.map(str::to_string),
                subresource: sub.map(str::to_string),
                watch_prefix,
            })
        };
    // `/namespaces/{ns}/{plural}...` names a namespaced resource; `/namespaces/{name}`
    // and `/namespaces/{name}/{status|finalize}` name the namespace object itself.
    if let ["namespaces", ns, plural, tail @ ..] = rest {
        if let Some(res) = find(plural).filter(|r| r.scope == Scope::Namespaced) {
            return match tail {
                [] => target(res, Some(ns), None, None),
                [name] => target(res, Some(ns), Some(name), None),
                [name, sub] => target(res, Some(ns), Some(name), Some(sub)),
                _ => Route::NotFound,
            };
        }
    }
    match rest {
        [plural] => match find(plural) {
            Some(res) => target(res, None, None, None),
            None => Route::NotFound,
        },
        [plural, name] => match find(plural) {
            Some(res) if res.scope == Scope::Cluster => target(res, None, Some(name), None),
            _ => Route::NotFound,
        },
        [plural, name, sub] => match find(plural) {
            Some(res) if res.scope == Scope::Cluster => target(res, None, Some(name), Some(sub)),
            _ => Route::NotFound,
        },
        _ => Route::NotFound,
    }
}

/// Decodes `%XX` escapes and `+` in a query component.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The query parameters of a request, decoded. A repeated key keeps every value.
#[derive(Clone, Debug, Default)]
pub struct Query {
    params: HashMap<String, Vec<String>>,
}

impl Query {
    pub fn parse(query: Option<&str>) -> Self {
        let mut params: HashMap<String, Vec<String>> = HashMap::new();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            params
                .entry(percent_decode(k))
                .or_default()
                .push(percent_decode(v));
        }
        Self { params }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.params
            .get(key)
            .and_then(|v| v.first())
            .map(String::as_str)
    }

    pub fn all(&self, key: &str) -> &[String] {
        self.params.get(key).map(Vec::as_slice).unwrap_or(&[])
    }

    /// A boolean parameter as upstream reads one: present and neither `0` nor
    /// `false` (any case) means true, so `true`, `True` (older Python clients),
    /// `1` and an empty value all count.
    pub fn flag(&self, key: &str) -> bool {
        self.get(key)
            .is_some_and(|v| v != "0" && !v.eq_ignore_ascii_case("false"))
    }

    pub fn non_empty(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|v| !v.is_empty())
    }

    /// A copy with `term` added to the field selector (a watch of one named object).
    pub fn with_field_selector(&self, term: &str) -> Self {
        let mut params = self.params.clone();
        let merged = match self.non_empty("fieldSelector") {
            Some(existing) => format!("{existing},{term}"),
            None => term.to_string(),
        };
        params.insert("fieldSelector".into(), vec![merged]);
        Self { params }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(path: &str) -> Target {
        match parse(path) {
            Route::Resource(t) => t,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn resource_paths() {
        let t = target("/api/v1/namespaces/default/pods/web/status");
        assert_eq!(t.res.plural, "pods");
        assert_eq!(t.namespace.as_deref(), Some("default"));
        assert_eq!(t.name.as_deref(), Some("web"));
        assert_eq!(t.subresource.as_deref(), Some("status"));
        let t = target("/api/v1/namespaces/kube-system");
        assert_eq!(t.res.plural, "namespaces");
        assert_eq!(t.name.as_deref(), Some("kube-system"));
        let t = target("/api/v1/namespaces/kube-system/finalize");
        assert_eq!(t.subresource.as_deref(), Some("finalize"));
        let t = target("/api/v1/pods");
        assert!(t.namespace.is_none() && t.name.is_none());
        let t = target("/apis/apps/v1/namespaces/d/deployments/x/scale");
        assert_eq!(t.subresource.as_deref(), Some("scale"));
        let t = target("/api/v1/watch/namespaces/d/pods");
        assert!(t.watch_prefix);
        assert_eq!(t.res.plural, "pods");
        assert_eq!(target("/api/v1/nodes/n1").name.as_deref(), Some("n1"));
    }

    #[test]
    fn unknown_paths_are_not_found() {
        assert_eq!(parse("/api/v1/widgets"), Route::NotFound);
        assert_eq!(parse("/apis/nope/v1"), Route::NotFound);
        assert_eq!(parse("/api/v1/pods/x"), Route::NotFound);
        assert_eq!(parse("/api/v1/namespaces/d/pods/x/y/z"), Route::NotFound);
        assert_eq!(parse("/version/"), Route::Version);
    }

    #[test]
    fn query_decoding() {
        let q = Query::parse(Some(
            "labelSelector=app%3Dweb%2Ctier+in+(a)&watch=1&limit=5",
        ));
        assert_eq!(q.get("labelSelector"), Some("app=web,tier in (a)"));
        assert!(q.flag("watch"));
        assert_eq!(q.get("limit"), Some("5"));
        assert!(!q.flag("follow"));
        let q = Query::parse(Some("watch=True&a=FALSE&b=0&c=&d=false&e=TRUE"));
        assert!(q.flag("watch") && q.flag("c") && q.flag("e"));
        assert!(!q.flag("a") && !q.flag("b") && !q.flag("d"));
    }
}
