//! Discovery documents, all derived from the resource table: legacy (`APIVersions`,
//! `APIGroupList`, `APIResourceList`) and aggregated (`APIGroupDiscoveryList`, which
//! kubectl 1.26+ asks for by Accept header), plus `/version`.

use api::resources::{self, Resource};
use serde_json::{json, Value};

/// The Kubernetes version bosun answers to (its API surface follows this release).
pub const KUBE_MAJOR: &str = "1";
pub const KUBE_MINOR: &str = "32";

/// The Content-Type of an aggregated discovery answer.
pub const AGGREGATED_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Whether the Accept header asks for aggregated discovery (v2 or v2beta1).
pub fn wants_aggregated(accept: &str) -> Option<&'static str> {
    for part in accept.split(',') {
        let p: String = part.chars().filter(|c| !c.is_whitespace()).collect();
        if p.contains("as=APIGroupDiscoveryList") && p.contains("g=apidiscovery.k8s.io") {
            if p.contains("v=v2beta1") {
                return Some("v2beta1");
            }
            if p.contains("v=v2") {
                return Some("v2");
            }
        }
    }
    None
}

pub fn version(bosun_version: &str) -> Value {
    json!({
        "major": KUBE_MAJOR,
        "minor": KUBE_MINOR,
        "gitVersion": format!("v{KUBE_MAJOR}.{KUBE_MINOR}.0+bosun.{bosun_version}"),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "2026-11-26T00:00:00Z",
        "goVersion": "go1.23.0",
        "compiler": "rustc",
        "platform": format!("linux/{}", go_arch()),
    })
}

/// The Go name of this machine's architecture, as Kubernetes reports it.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{ "clientCIDR": "0.0.0.0/0", "serverAddress": server_address }],
    })
}

fn group_json(group: &str, version: &str) -> Value {
    let gv = format!("{group}/{version}");
    json!({
        "name": group,
        "versions": [{ "groupVersion": gv, "version": version }],
        "preferredVersion": { "groupVersion": gv, "version": version },
    })
}

pub fn group_list() -> Value {
    let groups: Vec<Value> = resources::GROUPS
        .iter()
        .map(|(g, v)| group_json(g, v))
        .collect();
    json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups })
}

pub fn group(name: &str) -> Option<Value> {
    let (g, v) = resources::GROUPS.iter().find(|(g, _)| *g == name)?;
    let mut doc = group_json(g, v);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

/// The kind a subresource answers with: (group, version, kind).
fn subresource_kind(res: &Resource, sub: &str) -> (&'static str, &'static str, &'static str) {
    match sub {
        "scale" => ("autoscaling", "v1", "Scale"),
        "binding" => ("", "v1", "Binding"),
        "eviction" => ("policy", "v1", "Eviction"),
        "exec" => ("", "v1", "PodExecOptions"),
        "log" => ("", "v1", "Pod"),
        "proxy" => (
            "",
            "v1",
            if res.kind == "Node" {
                "NodeProxyOptions"
            } else {
                "ServiceProxyOptions"
            },
        ),
        "token" => ("authentication.k8s.io", "v1", "TokenRequest"),
        _ => (res.group, res.version, res.kind),
    }
}

fn subresource_verbs(sub: &str) -> &'static [&'static str] {
    match sub {
        "status" | "scale" => &["get", "patch", "update"],
        "binding" | "eviction" | "token" => &["create"],
        "exec" => &["create", "get"],
        "log" => &["get"],
        "finalize" => &["update"],
        _ => &["create", "delete", "get", "patch", "update"],
    }
}

fn verbs(res: &Resource) -> &'static [&'static str] {
    if res.plural == "bindings" {
        &["create"]
    } else {
        res.verbs
    }
}

pub fn resource_list(group: &str, version: &str) -> Value {
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    let mut list = Vec::new();
    for res in resources::of_group_version(group, version) {
        let mut entry = json!({
            "name": res.plural,
            "singularName": res.singular,
            "namespaced": res.namespaced(),
            "kind": res.kind,
            "verbs": verbs(res),
        });
        if !res.short_names.is_empty() {
            entry["shortNames"] = json!(res.short_names);
        }
        if !res.categories.is_empty() {
            entry["categories"] = json!(res.categories);
        }
        list.push(entry);
        for sub in res.subresources {
            let (g, v, k) = subresource_kind(res, sub);
            let mut e = json!({
                "name": format!("{}/{}", res.plural, sub),
                "singularName": "",
                "namespaced": res.namespaced(),
                "kind": k,
                "verbs": subresource_verbs(sub),
            });
            if (g, v) != (res.group, res.version) {
                e["group"] = json!(g);
                e["version"] = json!(v);
            }
            list.push(e);
        }
    }
    json!({ "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": list })
}

fn discovery_resources(group: &str, version: &str) -> Vec<Value> {
    resources::of_group_version(group, version)
        .map(|res| {
            let subs: Vec<Value> = res
                .subresources
                .iter()
                .map(|sub| {
                    let (g, v, k) = subresource_kind(res, sub);
                    json!({
                        "subresource": sub,
                        "responseKind": { "group": g, "version": v, "kind": k },
                        "verbs": subresource_verbs(sub),
                    })
                })
                .collect();
            let mut entry = json!({
                "resource": res.plural,
                "responseKind": { "group": res.group, "version": res.version, "kind": res.kind },
                "scope": if res.namespaced() { "Namespaced" } else { "Cluster" },
                "singularResource": res.singular,
                "verbs": verbs(res),
            });
            if !res.short_names.is_empty() {
                entry["shortNames"] = json!(res.short_names);
            }
            if !res.categories.is_empty() {
                entry["categories"] = json!(res.categories);
            }
            if !subs.is_empty() {
                entry["subresources"] = json!(subs);
            }
            entry
        })
        .collect()
}

fn discovery_group(group: &str, version: &str) -> Value {
    json!({
        "metadata": { "name": group, "creationTimestamp": null },
        "versions": [{
            "version": version,
            "resources": discovery_resources(group, version),
            "freshness": "Current",
        }],
    })
}

/// The aggregated discovery document of `/api` (core) or `/apis` (every group).
pub fn aggregated(core: bool, discovery_version: &str) -> Value {
    let items: Vec<Value> = if core {
        vec![discovery_group("", "v1")]
    } else {
        resources::GROUPS
            .iter()
            .map(|(g, v)| discovery_group(g, v))
            .collect()
    };
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{discovery_version}"),
        "metadata": {},
        "items": items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_accept_header_selects_aggregated() {
        let accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(wants_aggregated(accept), Some("v2"));
        assert_eq!(wants_aggregated("application/json"), None);
    }

    #[test]
    fn aggregated_core_has_pods_with_subresources() {
        let doc = aggregated(true, "v2");
        let res = &doc["items"][0]["versions"][0]["resources"];
        let pods = res
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "pods")
            .unwrap();
        assert_eq!(pods["responseKind"]["kind"], "Pod");
        assert_eq!(pods["shortNames"][0], "po");
        assert!(pods["subresources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["subresource"] == "status"));
        assert_eq!(doc["items"][0]["metadata"]["name"], "");
    }

    #[test]
    fn legacy_lists_subresources_and_scale_kind() {
        let doc = resource_list("apps", "v1");
        let scale = doc["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "deployments/scale")
            .unwrap();
        assert_eq!(scale["kind"], "Scale");
        assert_eq!(scale["group"], "autoscaling");
    }

    #[test]
    fn version_parses_as_semver() {
        let v = version("0.1.0");
        let git = v["gitVersion"].as_str().unwrap();
        assert!(git.starts_with("v1.32.0"));
    }
}
