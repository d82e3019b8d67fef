//! Pure: which pods a Service's endpoints hold and how (upstream's
//! `ShouldPodBeInEndpoints`, `FindPort`, `RepackSubsets` and the 1000-address
//! truncation of the endpoints controller), and the pod helpers the EndpointSlice
//! controller shares.

use crate::controllers::lite::Pod;
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Service, ServicePort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;
use std::sync::Arc;

/// At most this many addresses in one Endpoints object, as upstream.
pub const MAX_CAPACITY: usize = 1000;
/// Set on Endpoints whose addresses were cut to `MAX_CAPACITY`.
pub const OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";
/// Set on Endpoints (and slices) of headless services.
pub const HEADLESS: &str = "service.kubernetes.io/headless";

/// The service's selector, when it has a non-empty one (else the user manages
/// its endpoints).
pub fn selector(svc: &Service) -> Option<&BTreeMap<String, String>> {
    svc.spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .filter(|s| !s.is_empty())
}

/// Whether `labels` carry every pair of `selector`.
pub fn selects(
    selector: &BTreeMap<String, String>,
    labels: Option<&BTreeMap<String, String>>,
) -> bool {
    selector
        .iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

pub fn headless(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None")
}

pub fn publish_not_ready(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false)
}

/// The pod's Ready condition is True.
pub fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The pod's (first) IP.
pub fn pod_ip(pod: &Pod) -> Option<&str> {
    let status = pod.status.as_ref()?;
    status
        .pod_ip
        .as_deref()
        .filter(|ip| !ip.is_empty())
        .or_else(|| status.pod_ips.as_ref()?.first().map(|p| p.ip.as_str()))
}

pub fn terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// Upstream's `ShouldPodBeInEndpoints`: not terminal, has an IP, and not
/// terminating unless `include_terminating`.
pub fn should_be_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded" | "Failed")) {
        return false;
    }
    pod_ip(pod).is_some() && (include_terminating || !terminating(pod))
}

/// The pod's `spec.hostname`, when the pod names this service as its subdomain.
pub fn hostname_for(pod: &Pod, svc: &Service) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let hostname = spec.hostname.as_deref().filter(|h| !h.is_empty())?;
    (spec.subdomain.as_deref() == svc.metadata.name.as_deref()
        && pod.metadata.namespace.as_deref() == svc.metadata.namespace.as_deref())
    .then(|| hostname.to_string())
}

fn protocol(p: Option<&str>) -> &str {
    p.unwrap_or("TCP")
}

/// Upstream's `FindPort`: the pod port a service port targets — a number as is, a
/// name looked up among the pod's container ports of the same protocol.
pub fn find_port(pod: &Pod, port: &ServicePort) -> Option<i32> {
    match &port.target_port {
        None => Some(port.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            if let Ok(n) = name.parse::<i32>() {
                return Some(n);
            }
            let spec = pod.spec.as_ref()?;
            spec.containers
                .iter()
                .chain(spec.init_containers.as_deref().into_iter().flatten())
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| {
                    p.name.as_deref() == Some(name.as_str())
                        && protocol(p.protocol.as_deref()) == protocol(port.protocol.as_deref())
                })
                .map(|p| p.container_port)
        }
    }
}

/// A reference to `pod` as endpoints hold it.
pub fn pod_ref(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: pod.metadata.namespace.as_deref().map(str::to_string),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        ..Default::default()
    }
}

/// An endpoint port: orderable, so port sets can key maps.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct PortKey {
    name: Option<String>,
    port: i32,
    protocol: String,
    app_protocol: Option<String>,
}

impl PortKey {
    fn to_port(&self) -> EndpointPort {
        EndpointPort {
            name: self.name.clone(),
            port: self.port,
            protocol: Some(self.protocol.clone()),
            app_protocol: self.app_protocol.clone(),
        }
    }
}

/// One address: (ip, pod uid) identify it; ready says in which list it goes.
type AddrKey = (String, String);

/// The subsets of a service's Endpoints for `pods` (those its selector selects).
pub fn subsets(svc: &Service, pods: &[Arc<Pod>]) -> Vec<EndpointSubset> {
    let publish = publish_not_ready(svc);
    let ports: &[ServicePort] = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_deref())
        .unwrap_or(&[]);
    if ports.is_empty() && !headless(svc) {
        return Vec::new();
    }
    let mut addrs: BTreeMap<AddrKey, (EndpointAddress, bool)> = BTreeMap::new();
    // Port (None: the no-port sentinel of headless services) → addresses.
    let mut by_port: BTreeMap<Option<PortKey>, Vec<(AddrKey, bool)>> = BTreeMap::new();
    for pod in pods {
        if !should_be_in_endpoints(pod, publish) {
            continue;
        }
        let Some(ip) = pod_ip(pod) else { continue };
        let key: AddrKey = (ip.to_string(), pod.metadata.uid.clone().unwrap_or_default());
        let ready = publish || pod_ready(pod);
        let addr = EndpointAddress {
            ip: ip.to_string(),
            hostname: hostname_for(pod, svc),
            node_name: pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .filter(|n| !n.is_empty()),
            target_ref: Some(pod_ref(pod)),
        };
        let mut any = false;
        if ports.is_empty() {
            by_port.entry(None).or_default().push((key.clone(), ready));
            any = true;
        }
        for sp in ports {
            let Some(port) = find_port(pod, sp) else {
                continue;
            };
            let pk = PortKey {
                name: sp.name.clone().filter(|n| !n.is_empty()),
                port,
                protocol: protocol(sp.protocol.as_deref()).to_string(),
                app_protocol: sp.app_protocol.clone(),
            };
            by_port
                .entry(Some(pk))
                .or_default()
                .push((key.clone(), ready));
            any = true;
        }
        if any {
            addrs.insert(key, (addr, ready));
        }
    }
    // Ports served by the same set of addresses share a subset (RepackSubsets).
    let mut by_addrs: BTreeMap<Vec<(AddrKey, bool)>, Vec<PortKey>> = BTreeMap::new();
    for (port, mut set) in by_port {
        set.sort();
        set.dedup();
        let entry = by_addrs.entry(set).or_default();
        if let Some(p) = port {
            entry.push(p);
        }
    }
    by_addrs
        .into_iter()
        .map(|(set, ports)| {
            let pick = |want: bool| -> Option<Vec<EndpointAddress>> {
                let v: Vec<EndpointAddress> = set
                    .iter()
                    .filter(|(_, r)| *r == want)
                    .filter_map(|(k, _)| addrs.get(k).map(|(a, _)| a.clone()))
                    .collect();
                (!v.is_empty()).then_some(v)
            };
            EndpointSubset {
                addresses: pick(true),
                not_ready_addresses: pick(false),
                ports: (!ports.is_empty()).then(|| ports.iter().map(PortKey::to_port).collect()),
            }
        })
        .collect()
}

/// Cuts the addresses to `MAX_CAPACITY` as upstream's `truncateEndpoints`: ready
/// ones first, each subset keeping its share. True when something was cut.
pub fn truncate(subsets: &mut [EndpointSubset]) -> bool {
    let len = |v: &Option<Vec<EndpointAddress>>| v.as_ref().map_or(0, Vec::len);
    let ready: usize = subsets.iter().map(|s| len(&s.addresses)).sum();
    let not_ready: usize = subsets.iter().map(|s| len(&s.not_ready_addresses)).sum();
    if ready + not_ready <= MAX_CAPACITY {
        return false;
    }
    let truncate_ready = ready > MAX_CAPACITY;
    let (max, total) = if truncate_ready {
        (MAX_CAPACITY, ready)
    } else {
        (MAX_CAPACITY - ready, not_ready)
    };
    let mut room = max;
    for s in subsets.iter_mut() {
        let n = if truncate_ready {
            len(&s.addresses)
        } else {
            len(&s.not_ready_addresses)
        };
        let share = ((n * max).div_ceil(total.max(1))).min(room);
        let list = if truncate_ready {
            s.not_ready_addresses = None;
            &mut s.addresses
        } else {
            &mut s.not_ready_addresses
        };
        if let Some(v) = list.as_mut() {
            v.truncate(share);
            room -= v.len();
            if v.is_empty() {
                *list = None;
            }
        }
    }
    true
}

/// The Endpoints object `svc` should have for `pods`, without resourceVersion:
/// the service's labels (plus the headless label), the subsets, and the
/// over-capacity annotation when truncated.
pub fn desired(svc: &Service, pods: &[Arc<Pod>]) -> Endpoints {
    let mut subsets = subsets(svc, pods);
    let truncated = truncate(&mut subsets);
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    if headless(svc) {
        labels.insert(HEADLESS.into(), String::new());
    } else {
        labels.remove(HEADLESS);
    }
    Endpoints {
        metadata: ObjectMeta {
            name: svc.metadata.name.clone(),
            namespace: svc.metadata.namespace.clone(),
            labels: (!labels.is_empty()).then_some(labels),
            annotations: truncated
                .then(|| BTreeMap::from([(OVER_CAPACITY.to_string(), "truncated".to_string())])),
            ..Default::default()
        },
        subsets: (!subsets.is_empty()).then_some(subsets),
    }
}

/// Whether `current` already says what `want` says (subsets, labels, the
/// over-capacity annotation); other annotations are the user's.
pub fn up_to_date(current: &Endpoints, want: &Endpoints) -> bool {
    let empty = |s: &Option<Vec<EndpointSubset>>| s.as_ref().is_none_or(Vec::is_empty);
    let same_subsets =
        (empty(&current.subsets) && empty(&want.subsets)) || current.subsets == want.subsets;
    let labels = |m: &ObjectMeta| m.labels.clone().unwrap_or_default();
    let over = |m: &ObjectMeta| {
        m.annotations
            .as_ref()
            .and_then(|a| a.get(OVER_CAPACITY).cloned())
    };
    same_subsets
        && labels(&current.metadata) == labels(&want.metadata)
        && over(&current.metadata) == over(&want.metadata)
}

/// `current` with what `want` says, ready to be written back (keeps its
/// resourceVersion and the user's annotations).
pub fn merged(current: &Endpoints, want: &Endpoints) -> Endpoints {
    let mut out = current.clone();
    out.subsets = want.subsets.clone();
    out.metadata.labels = want.metadata.labels.clone();
    let mut ann = current.metadata.annotations.clone().unwrap_or_default();
    ann.remove(OVER_CAPACITY);
    ann.extend(want.metadata.annotations.clone().unwrap_or_default());
    out.metadata.annotations = (!ann.is_empty()).then_some(ann);
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn pod(
        name: &str,
        ip: Option<&str>,
        ready: bool,
        ports: serde_json::Value,
    ) -> Arc<Pod> {
        let mut status = json!({"phase": "Running", "conditions": [
            {"type": "Ready", "status": if ready { "True" } else { "False" }}]});
        if let Some(ip) = ip {
            status["podIP"] = json!(ip);
        }
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                             "labels": {"app": "web"}},
                "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "x", "ports": ports}]},
                "status": status,
            }))
            .unwrap(),
        )
    }

    pub(crate) fn service(ports: serde_json::Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "labels": {"tier": "front"}},
            "spec": {"selector": {"app": "web"}, "clusterIP": "10.96.0.10", "ports": ports},
        }))
        .unwrap()
    }

    fn ips(v: &Option<Vec<EndpointAddress>>) -> Vec<&str> {
        v.iter().flatten().map(|a| a.ip.as_str()).collect()
    }

    #[test]
    fn ready_and_not_ready_pods_go_to_their_lists() {
        let svc = service(json!([{"port": 80, "targetPort": 8080, "protocol": "TCP"}]));
        let pods = vec![
            pod("a", Some("10.244.0.2"), true, json!([])),
            pod("b", Some("10.244.0.3"), false, json!([])),
            pod("no-ip", None, true, json!([])),
        ];
        let s = subsets(&svc, &pods);
        assert_eq!(s.len(), 1);
        assert_eq!(ips(&s[0].addresses), ["10.244.0.2"]);
        assert_eq!(ips(&s[0].not_ready_addresses), ["10.244.0.3"]);
        assert_eq!(s[0].ports.as_ref().unwrap()[0].port, 8080);
        let a = &s[0].addresses.as_ref().unwrap()[0];
        assert_eq!(a.node_name.as_deref(), Some("n1"));
        let r = a.target_ref.as_ref().unwrap();
        assert_eq!(
            (r.kind.as_deref(), r.name.as_deref(), r.uid.as_deref()),
            (Some("Pod"), Some("a"), Some("uid-a"))
        );
    }

    #[test]
    fn named_target_ports_resolve_per_pod_and_split_subsets() {
        let svc = service(json!([
            {"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"},
            {"name": "metrics", "port": 9090, "targetPort": 9090, "protocol": "TCP"}]));
        let pods = vec![
            pod(
                "a",
                Some("10.244.0.2"),
                true,
                json!([{"name": "web", "containerPort": 8080}]),
            ),
            pod(
                "b",
                Some("10.244.0.3"),
                true,
                json!([{"name": "web", "containerPort": 8081}]),
            ),
            pod(
                "c",
                Some("10.244.0.4"),
                true,
                json!([{"name": "other", "containerPort": 1}]),
            ),
        ];
        let s = subsets(&svc, &pods);
        type Seen<'a> = (Vec<&'a str>, Vec<(Option<&'a str>, i32)>);
        let mut seen: Vec<Seen> = s
            .iter()
            .map(|s| {
                (
                    ips(&s.addresses),
                    s.ports
                        .iter()
                        .flatten()
                        .map(|p| (p.name.as_deref(), p.port))
                        .collect(),
                )
            })
            .collect();
        seen.sort();
        assert_eq!(
            seen,
            vec![
                (vec!["10.244.0.2"], vec![(Some("http"), 8080)]),
                (
                    vec!["10.244.0.2", "10.244.0.3", "10.244.0.4"],
                    vec![(Some("metrics"), 9090)]
                ),
                (vec!["10.244.0.3"], vec![(Some("http"), 8081)]),
            ]
        );
    }

    #[test]
    fn ports_with_the_same_addresses_share_a_subset() {
        let svc = service(json!([
            {"name": "a", "port": 80, "targetPort": 80},
            {"name": "b", "port": 81, "targetPort": 81}]));
        let pods = vec![pod("a", Some("10.0.0.1"), true, json!([]))];
        let s = subsets(&svc, &pods);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].ports.as_ref().unwrap().len(), 2);
    }

    #[test]
    fn terminating_and_terminal_pods_are_left_out_unless_published() {
        let svc = service(json!([{"port": 80}]));
        let mut t = (*pod("t", Some("10.0.0.1"), true, json!([]))).clone();
        t.metadata.deletion_timestamp =
            Some(serde_json::from_value(json!("2024-01-01T00:00:00Z")).unwrap());
        let mut done = (*pod("d", Some("10.0.0.2"), true, json!([]))).clone();
        done.status.as_mut().unwrap().phase = Some("Succeeded".into());
        let pods = vec![
            Arc::new(t),
            Arc::new(done),
            pod("n", Some("10.0.0.3"), false, json!([])),
        ];
        assert_eq!(ips(&subsets(&svc, &pods)[0].addresses), Vec::<&str>::new());
        let mut published = svc.clone();
        published.spec.as_mut().unwrap().publish_not_ready_addresses = Some(true);
        let s = subsets(&published, &pods);
        assert_eq!(ips(&s[0].addresses), ["10.0.0.1", "10.0.0.3"]);
        assert!(s[0].not_ready_addresses.is_none());
    }

    #[test]
    fn headless_services_without_ports_list_addresses() {
        let mut svc = service(json!([]));
        svc.spec.as_mut().unwrap().cluster_ip = Some("None".into());
        let s = subsets(&svc, &[pod("a", Some("10.0.0.1"), true, json!([]))]);
        assert_eq!(ips(&s[0].addresses), ["10.0.0.1"]);
        assert!(s[0].ports.is_none());
        let want = desired(&svc, &[]);
        assert_eq!(
            want.metadata
                .labels
                .unwrap()
                .get(HEADLESS)
                .map(String::as_str),
            Some("")
        );
        // A service with a cluster IP and no ports has no endpoints.
        assert!(subsets(
            &service(json!([])),
            &[pod("a", Some("10.0.0.1"), true, json!([]))]
        )
        .is_empty());
    }

    #[test]
    fn more_than_a_thousand_addresses_are_truncated_ready_first() {
        let svc = service(json!([{"port": 80}]));
        let pods: Vec<Arc<Pod>> = (0..1200)
            .map(|i| {
                pod(
                    &format!("p{i}"),
                    Some(&format!("10.1.{}.{}", i / 250, i % 250)),
                    i < 900,
                    json!([]),
                )
            })
            .collect();
        let want = desired(&svc, &pods);
        let s = want.subsets.as_ref().unwrap();
        assert_eq!(s[0].addresses.as_ref().unwrap().len(), 900);
        assert_eq!(s[0].not_ready_addresses.as_ref().unwrap().len(), 100);
        assert_eq!(
            want.metadata
                .annotations
                .unwrap()
                .get(OVER_CAPACITY)
                .map(String::as_str),
            Some("truncated")
        );
    }

    #[test]
    fn an_unchanged_object_needs_no_write() {
        let svc = service(json!([{"port": 80}]));
        let pods = vec![pod("a", Some("10.0.0.1"), true, json!([]))];
        let want = desired(&svc, &pods);
        let mut current = want.clone();
        current.metadata.resource_version = Some("7".into());
        current.metadata.annotations = Some(BTreeMap::from([("user".into(), "x".into())]));
        assert!(up_to_date(&current, &want));
        let changed = desired(&svc, &[pod("a", Some("10.0.0.1"), false, json!([]))]);
        assert!(!up_to_date(&current, &changed));
        let m = merged(&current, &changed);
        assert_eq!(m.metadata.resource_version.as_deref(), Some("7"));
        assert!(m.metadata.annotations.unwrap().contains_key("user"));
    }
}
