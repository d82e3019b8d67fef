//! Pure: the endpoints a Service's EndpointSlices should hold, grouped by the
//! port set each pod resolves to, and the plan that gets the existing slices
//! there with few writes — existing slices are updated in place (and recycled for
//! new port sets) before any is created or deleted, at most `MAX_ENDPOINTS` each.

use crate::controllers::endpoints::compute::{
    find_port, headless, hostname_for, pod_ip, pod_ready, pod_ref, publish_not_ready,
    should_be_in_endpoints, terminating, HEADLESS,
};
use crate::controllers::lite::Pod;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::Arc;

/// Endpoints per slice, as upstream's default `--max-endpoints-per-slice`.
pub const MAX_ENDPOINTS: usize = 100;
pub const SERVICE_NAME: &str = "kubernetes.io/service-name";
pub const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
pub const CONTROLLER: &str = "endpointslice-controller.k8s.io";
pub const IPV4: &str = "IPv4";

/// A port, orderable, so that port sets can key maps.
type PortKey = (Option<String>, Option<i32>, Option<String>, Option<String>);

fn port_key(p: &EndpointPort) -> PortKey {
    (
        p.name.clone(),
        p.port,
        Some(p.protocol.clone().unwrap_or_else(|| "TCP".into())),
        p.app_protocol.clone(),
    )
}

/// The sorted keys of a port list: slices with equal port sets share it.
pub fn port_set(ports: &[EndpointPort]) -> Vec<PortKey> {
    let mut keys: Vec<PortKey> = ports.iter().map(port_key).collect();
    keys.sort();
    keys
}

/// The endpoints of one port set.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Group {
    /// In the service's port order.
    pub ports: Vec<EndpointPort>,
    pub endpoints: Vec<Endpoint>,
}

/// The endpoints `svc` should have for `pods`, grouped by port set.
/// `zone_of(node)` is the node's `topology.kubernetes.io/zone`.
pub fn desired(
    svc: &Service,
    pods: &[Arc<Pod>],
    zone_of: impl Fn(&str) -> Option<String>,
) -> BTreeMap<Vec<PortKey>, Group> {
    let publish = publish_not_ready(svc);
    let service_ports = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_deref())
        .unwrap_or(&[]);
    let mut groups: BTreeMap<Vec<PortKey>, Group> = BTreeMap::new();
    let mut pods: Vec<&Arc<Pod>> = pods.iter().collect();
    pods.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    for pod in pods {
        if !should_be_in_endpoints(pod, true) {
            continue;
        }
        let Some(ip) = pod_ip(pod).filter(|ip| ip.parse::<Ipv4Addr>().is_ok()) else {
            continue;
        };
        let ports: Vec<EndpointPort> = service_ports
            .iter()
            .filter_map(|sp| {
                find_port(pod, sp).map(|port| EndpointPort {
                    name: Some(sp.name.clone().unwrap_or_default()),
                    port: Some(port),
                    protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                    app_protocol: sp.app_protocol.clone(),
                })
            })
            .collect();
        let serving = publish || pod_ready(pod);
        let terminating = terminating(pod);
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty());
        let endpoint = Endpoint {
            addresses: vec![ip.to_string()],
            conditions: Some(EndpointConditions {
                ready: Some(publish || (serving && !terminating)),
                serving: Some(serving),
                terminating: Some(terminating),
            }),
            hostname: hostname_for(pod, svc),
            zone: node.as_deref().and_then(&zone_of),
            node_name: node,
            target_ref: Some(pod_ref(pod)),
            ..Default::default()
        };
        let group = groups.entry(port_set(&ports)).or_insert_with(|| Group {
            ports,
            endpoints: Vec::new(),
        });
        group.endpoints.push(endpoint);
    }
    groups
}

/// An endpoint's identity within a service: its pod, or its address.
fn endpoint_key(e: &Endpoint) -> String {
    e.target_ref
        .as_ref()
        .and_then(|r| r.uid.clone())
        .or_else(|| e.addresses.first().cloned())
        .unwrap_or_default()
}

/// The labels every slice of `svc` carries.
pub fn slice_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    labels.remove(HEADLESS);
    if headless(svc) {
        labels.insert(HEADLESS.into(), String::new());
    }
    labels.insert(
        SERVICE_NAME.into(),
        svc.metadata.name.clone().unwrap_or_default(),
    );
    labels.insert(MANAGED_BY.into(), CONTROLLER.into());
    labels
}

fn owner_ref(svc: &Service) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "Service".into(),
        name: svc.metadata.name.clone().unwrap_or_default(),
        uid: svc.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// What to write.
#[derive(Debug, Default)]
pub struct Plan {
    /// New slices (named by `generateName`).
    pub create: Vec<EndpointSlice>,
    /// Existing slices changed in place (with their resourceVersion).
    pub update: Vec<EndpointSlice>,
    /// Names of slices to delete.
    pub delete: Vec<String>,
}

struct Planner<'a> {
    svc: &'a Service,
    labels: BTreeMap<String, String>,
    owner: OwnerReference,
    max: usize,
    /// Slices that will hold nothing: reused before anything is created.
    recycle: Vec<EndpointSlice>,
    plan: Plan,
}

impl Planner<'_> {
    fn meta_ok(&self, s: &EndpointSlice) -> bool {
        s.metadata.labels.as_ref() == Some(&self.labels)
            && s.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.uid == self.owner.uid && o.controller == Some(true))
    }

    fn fix_meta(&self, s: &mut EndpointSlice) {
        s.metadata.labels = Some(self.labels.clone());
        let mut owners: Vec<OwnerReference> = s
            .metadata
            .owner_references
            .take()
            .unwrap_or_default()
            .into_iter()
            .filter(|o| o.controller != Some(true))
            .collect();
        owners.push(self.owner.clone());
        s.metadata.owner_references = Some(owners);
    }

    /// A slice with `ports` and `endpoints`: a recycled one if any, else new.
    fn place(&mut self, ports: Option<Vec<EndpointPort>>, endpoints: Vec<Endpoint>) {
        match self.recycle.pop() {
            Some(mut s) => {
                self.fix_meta(&mut s);
                s.address_type = IPV4.into();
                s.ports = ports;
                s.endpoints = Some(endpoints);
                self.plan.update.push(s);
            }
            None => {
                let mut s = EndpointSlice {
                    metadata: ObjectMeta {
                        generate_name: Some(format!(
                            "{}-",
                            self.svc.metadata.name.as_deref().unwrap_or("")
                        )),
                        namespace: self.svc.metadata.namespace.clone(),
                        ..Default::default()
                    },
                    address_type: IPV4.into(),
                    endpoints: Some(endpoints),
                    ports,
                };
                self.fix_meta(&mut s);
                self.plan.create.push(s);
            }
        }
    }

    /// Brings the slices of one port set in line with `group`.
    fn group(&mut self, group: Group, existing: Vec<EndpointSlice>) {
        let order: Vec<String> = group.endpoints.iter().map(endpoint_key).collect();
        let mut remaining: HashMap<String, Endpoint> =
            order.iter().cloned().zip(group.endpoints).collect();
        let mut touched = Vec::new();
        let mut untouched = Vec::new();
        for mut s in existing {
            let old = s.endpoints.clone().unwrap_or_default();
            let new: Vec<Endpoint> = old
                .iter()
                .filter_map(|e| remaining.remove(&endpoint_key(e)))
                .collect();
            if new.is_empty() {
                self.recycle.push(s);
            } else if new != old || !self.meta_ok(&s) || s.ports.as_deref() != Some(&group.ports) {
                self.fix_meta(&mut s);
                s.ports = Some(group.ports.clone());
                s.endpoints = Some(new);
                touched.push(s);
            } else {
                untouched.push(s);
            }
        }
        let mut left: Vec<Endpoint> = order.iter().filter_map(|k| remaining.remove(k)).collect();
        left.reverse();
        // Fill slices being written anyway, then those with room, then new ones.
        let fill = |s: &mut EndpointSlice, left: &mut Vec<Endpoint>, max: usize| {
            let eps = s.endpoints.get_or_insert_with(Vec::new);
            while eps.len() < max {
                match left.pop() {
                    Some(e) => eps.push(e),
                    None => break,
                }
            }
        };
        for s in &mut touched {
            fill(s, &mut left, self.max);
        }
        for mut s in untouched {
            if !left.is_empty() && s.endpoints.as_ref().map_or(0, Vec::len) < self.max {
                fill(&mut s, &mut left, self.max);
                touched.push(s);
            }
        }
        self.plan.update.extend(touched);
        while !left.is_empty() {
            let n = left.len().min(self.max);
            let chunk: Vec<Endpoint> = left.split_off(left.len() - n).into_iter().rev().collect();
            self.place(Some(group.ports.clone()), chunk);
        }
    }
}

/// The writes that take `existing` (this service's managed slices) to `desired`.
pub fn plan(
    svc: &Service,
    desired: BTreeMap<Vec<PortKey>, Group>,
    existing: &[Arc<EndpointSlice>],
    max: usize,
) -> Plan {
    let mut p = Planner {
        svc,
        labels: slice_labels(svc),
        owner: owner_ref(svc),
        max: max.max(1),
        recycle: Vec::new(),
        plan: Plan::default(),
    };
    let mut existing: Vec<EndpointSlice> = existing.iter().map(|s| (**s).clone()).collect();
    existing.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut buckets: BTreeMap<Vec<PortKey>, Vec<EndpointSlice>> = BTreeMap::new();
    for s in existing {
        if s.address_type == IPV4 {
            let key = port_set(s.ports.as_deref().unwrap_or(&[]));
            buckets.entry(key).or_default().push(s);
        } else {
            p.recycle.push(s);
        }
    }
    // Slices of port sets no pod has any more: reused first.
    let stale: Vec<Vec<PortKey>> = buckets
        .keys()
        .filter(|k| !desired.contains_key(*k))
        .cloned()
        .collect();
    for k in stale {
        p.recycle.extend(buckets.remove(&k).unwrap_or_default());
    }
    let empty = desired.is_empty();
    for (key, group) in desired {
        let slices = buckets.remove(&key).unwrap_or_default();
        p.group(group, slices);
    }
    if empty {
        // No endpoints at all: one empty placeholder slice, as upstream.
        let placeholder = p.recycle.iter().position(|s| {
            s.endpoints.as_ref().is_none_or(Vec::is_empty)
                && s.ports.as_ref().is_none_or(Vec::is_empty)
                && p.meta_ok(s)
        });
        match placeholder {
            Some(i) => {
                p.recycle.remove(i);
            }
            None => p.place(Some(Vec::new()), Vec::new()),
        }
    }
    p.plan.delete = p
        .recycle
        .drain(..)
        .filter_map(|s| s.metadata.name)
        .collect();
    p.plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::endpoints::compute::tests::{pod, service};
    use serde_json::json;

    fn pods(n: usize, ready: bool) -> Vec<Arc<Pod>> {
        (0..n)
            .map(|i| {
                pod(
                    &format!("p{i:03}"),
                    Some(&format!("10.244.{}.{}", i / 200, i % 200 + 2)),
                    ready,
                    json!([{"name": "http", "containerPort": 8080}]),
                )
            })
            .collect()
    }

    fn svc() -> Service {
        let mut s =
            service(json!([{"name": "web", "port": 80, "targetPort": "http", "protocol": "TCP"}]));
        s.metadata.uid = Some("svc-uid".into());
        s
    }

    /// Applies a plan as the API would (names for created slices).
    fn apply(existing: &mut Vec<Arc<EndpointSlice>>, plan: Plan, next: &mut usize) {
        for name in &plan.delete {
            existing.retain(|s| s.metadata.name.as_ref() != Some(name));
        }
        for s in plan.update {
            existing.retain(|e| e.metadata.name != s.metadata.name);
            existing.push(Arc::new(s));
        }
        for mut s in plan.create {
            *next += 1;
            s.metadata.name = Some(format!("web-{next}"));
            existing.push(Arc::new(s));
        }
    }

    fn total(existing: &[Arc<EndpointSlice>]) -> usize {
        existing
            .iter()
            .map(|s| s.endpoints.as_ref().map_or(0, Vec::len))
            .sum()
    }

    #[test]
    fn endpoints_carry_conditions_node_ref_and_zone() {
        let mut t = (*pod(
            "t",
            Some("10.0.0.9"),
            true,
            json!([{"name": "http", "containerPort": 8080}]),
        ))
        .clone();
        t.metadata.deletion_timestamp =
            Some(serde_json::from_value(json!("2024-01-01T00:00:00Z")).unwrap());
        let mut all = pods(2, true);
        all.push(pod(
            "nr",
            Some("10.0.0.8"),
            false,
            json!([{"name": "http", "containerPort": 8080}]),
        ));
        all.push(Arc::new(t));
        all.push(pod("v6", Some("fd00::1"), true, json!([])));
        let d = desired(&svc(), &all, |n| (n == "n1").then(|| "z1".into()));
        assert_eq!(d.len(), 1);
        let g = d.values().next().unwrap();
        assert_eq!(g.ports[0].port, Some(8080));
        assert_eq!(g.ports[0].name.as_deref(), Some("web"));
        let cond = |ip: &str| {
            let e = g.endpoints.iter().find(|e| e.addresses == [ip]).unwrap();
            let c = e.conditions.as_ref().unwrap();
            (c.ready, c.serving, c.terminating)
        };
        assert_eq!(cond("10.244.0.2"), (Some(true), Some(true), Some(false)));
        assert_eq!(cond("10.0.0.8"), (Some(false), Some(false), Some(false)));
        assert_eq!(cond("10.0.0.9"), (Some(false), Some(true), Some(true)));
        assert_eq!(g.endpoints.len(), 4, "the IPv6 pod is not in an IPv4 slice");
        let e = &g.endpoints[0];
        assert_eq!(e.node_name.as_deref(), Some("n1"));
        assert_eq!(e.zone.as_deref(), Some("z1"));
        assert_eq!(e.target_ref.as_ref().unwrap().kind.as_deref(), Some("Pod"));
    }

    #[test]
    fn slices_hold_at_most_the_maximum_and_are_updated_in_place() {
        let s = svc();
        let mut existing = Vec::new();
        let mut next = 0;
        let p = plan(&s, desired(&s, &pods(250, true), |_| None), &existing, 100);
        assert_eq!((p.create.len(), p.update.len(), p.delete.len()), (3, 0, 0));
        let created = &p.create[0];
        let labels = created.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[SERVICE_NAME], "web");
        assert_eq!(labels[MANAGED_BY], CONTROLLER);
        assert_eq!(labels["tier"], "front");
        let owner = &created.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("Service", "svc-uid")
        );
        assert_eq!(created.metadata.generate_name.as_deref(), Some("web-"));
        apply(&mut existing, p, &mut next);
        assert!(existing
            .iter()
            .all(|s| s.endpoints.as_ref().unwrap().len() <= 100));
        assert_eq!(total(&existing), 250);

        // Unchanged: nothing to write.
        let p = plan(&s, desired(&s, &pods(250, true), |_| None), &existing, 100);
        assert!(p.create.is_empty() && p.update.is_empty() && p.delete.is_empty());

        // One pod not ready: only its slice changes.
        let mut changed = pods(250, true);
        changed[7] = pod(
            "p007",
            Some("10.244.0.9"),
            false,
            json!([{"name": "http", "containerPort": 8080}]),
        );
        let p = plan(&s, desired(&s, &changed, |_| None), &existing, 100);
        assert_eq!((p.create.len(), p.update.len(), p.delete.len()), (0, 1, 0));

        // Ten more pods fit into the slice with room.
        let p = plan(&s, desired(&s, &pods(260, true), |_| None), &existing, 100);
        assert_eq!((p.create.len(), p.update.len(), p.delete.len()), (0, 1, 0));
        apply(&mut existing, p, &mut next);
        assert_eq!(total(&existing), 260);

        // Scaled to nothing: one placeholder slice stays.
        let p = plan(&s, desired(&s, &[], |_| None), &existing, 100);
        assert_eq!(p.create.len(), 0);
        assert_eq!(p.update.len() + p.delete.len(), 3);
        apply(&mut existing, p, &mut next);
        assert_eq!(existing.len(), 1);
        assert_eq!(total(&existing), 0);
        let p = plan(&s, desired(&s, &[], |_| None), &existing, 100);
        assert!(p.create.is_empty() && p.update.is_empty() && p.delete.is_empty());
    }

    #[test]
    fn a_new_port_set_reuses_slices_of_the_old_one() {
        let s = svc();
        let mut existing = Vec::new();
        let mut next = 0;
        let p = plan(&s, desired(&s, &pods(150, true), |_| None), &existing, 100);
        apply(&mut existing, p, &mut next);
        let mut renumbered = s.clone();
        renumbered.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].target_port =
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(9090));
        let p = plan(
            &renumbered,
            desired(&renumbered, &pods(150, true), |_| None),
            &existing,
            100,
        );
        assert_eq!((p.create.len(), p.update.len(), p.delete.len()), (0, 2, 0));
        assert!(p
            .update
            .iter()
            .all(|s| s.ports.as_ref().unwrap()[0].port == Some(9090)));
    }
}
