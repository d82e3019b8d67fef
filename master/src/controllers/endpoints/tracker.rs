//! Which pods each Service with a selector selects, kept current from pod and
//! service changes, so that a pod change queues only the services that select
//! it (before or after the change) and a sync reads only its own pods — not every
//! pod of the cluster for every service.

use super::compute::{self, selector, selects};
use crate::controllers::informer::{key, split_key, Change, Informer};
use crate::controllers::lite::{Meta, Pod};
use crate::controllers::queue::Queue;
use crate::controllers::Informers;
use k8s_openapi::api::core::v1::Service;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Inner {
    /// namespace → service name → selector, for services with a selector.
    selectors: HashMap<String, HashMap<String, BTreeMap<String, String>>>,
    /// namespace → names of its pods.
    pods: HashMap<String, HashSet<String>>,
    /// service key → names of the pods it selects.
    members: HashMap<String, HashSet<String>>,
}

pub struct ServicePods {
    inner: Mutex<Inner>,
    pods: Arc<Informer<Pod>>,
}

/// What of a pod its endpoints show: a change elsewhere needs no sync.
fn endpoint_view(p: &Pod) -> impl PartialEq + '_ {
    let spec = p.spec.as_ref();
    (
        p.metadata.uid.as_deref(),
        compute::pod_ip(p),
        compute::pod_ready(p),
        compute::terminating(p),
        p.status.as_ref().and_then(|s| s.phase.as_deref()),
        spec.and_then(|s| s.node_name.as_deref()),
        spec.and_then(|s| s.hostname.as_deref()),
        spec.and_then(|s| s.subdomain.as_deref()),
    )
}

fn ns_name(meta: &impl Meta) -> (String, String) {
    (
        meta.namespace().unwrap_or_default().to_string(),
        meta.name().unwrap_or_default().to_string(),
    )
}

impl ServicePods {
    pub fn new(pods: Arc<Informer<Pod>>) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(Inner::default()),
            pods,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies a service change; returns the service keys to sync.
    pub fn service_changed(&self, change: &Change<Service>) -> Vec<String> {
        let svc = change.object();
        let (ns, name) = ns_name(&svc.metadata);
        let svc_key = key(Some(&ns), &name);
        let mut inner = self.lock();
        let want = match change {
            Change::Deleted(_) => None,
            _ => selector(svc).cloned(),
        };
        let had = inner.selectors.get(&ns).and_then(|m| m.get(&name)).cloned();
        if had != want {
            match want {
                None => {
                    if let Some(m) = inner.selectors.get_mut(&ns) {
                        m.remove(&name);
                        if m.is_empty() {
                            inner.selectors.remove(&ns);
                        }
                    }
                    inner.members.remove(&svc_key);
                }
                Some(sel) => {
                    let members: HashSet<String> = inner
                        .pods
                        .get(&ns)
                        .into_iter()
                        .flatten()
                        .filter(|p| {
                            self.pods
                                .get(&key(Some(&ns), p))
                                .is_some_and(|pod| selects(&sel, pod.metadata.labels.as_deref()))
                        })
                        .cloned()
                        .collect();
                    inner.members.insert(svc_key.clone(), members);
                    inner.selectors.entry(ns).or_default().insert(name, sel);
                }
            }
        }
        vec![svc_key]
    }

    /// Applies a pod change; returns the service keys to sync.
    pub fn pod_changed(&self, change: &Change<Pod>) -> Vec<String> {
        let pod = change.object();
        let (ns, name) = ns_name(&pod.metadata);
        let mut inner = self.lock();
        match change {
            Change::Deleted(_) => {
                if let Some(set) = inner.pods.get_mut(&ns) {
                    set.remove(&name);
                    if set.is_empty() {
                        inner.pods.remove(&ns);
                    }
                }
            }
            _ => {
                inner
                    .pods
                    .entry(ns.clone())
                    .or_default()
                    .insert(name.clone());
            }
        }
        let Inner {
            selectors, members, ..
        } = &mut *inner;
        let mut out = Vec::new();
        for (svc, sel) in selectors.get(&ns).into_iter().flatten() {
            let svc_key = key(Some(&ns), svc);
            let set = members.entry(svc_key.clone()).or_default();
            let was = set.contains(&name);
            let now = match change {
                Change::Deleted(_) => false,
                _ => selects(sel, pod.metadata.labels.as_deref()),
            };
            if now {
                set.insert(name.clone());
            } else {
                set.remove(&name);
            }
            let relevant = match change {
                Change::Updated { old, new } => {
                    was != now || endpoint_view(old) != endpoint_view(new)
                }
                _ => true,
            };
            if (was || now) && relevant {
                out.push(svc_key);
            }
        }
        out
    }

    /// Whether the service `svc_key` has a selector.
    pub fn has_selector(&self, svc_key: &str) -> bool {
        let (ns, name) = split_key(svc_key);
        self.lock()
            .selectors
            .get(ns.unwrap_or(""))
            .is_some_and(|m| m.contains_key(name))
    }

    /// The pods the service `svc_key` selects, from the pod cache.
    pub fn pods_of(&self, svc_key: &str) -> Vec<Arc<Pod>> {
        let (ns, _) = split_key(svc_key);
        let names: Vec<String> = self
            .lock()
            .members
            .get(svc_key)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        names
            .iter()
            .filter_map(|p| self.pods.get(&key(ns, p)))
            .collect()
    }

    /// Every service with a selector.
    pub fn services(&self) -> Vec<String> {
        let inner = self.lock();
        inner
            .selectors
            .iter()
            .flat_map(|(ns, m)| m.keys().map(move |n| key(Some(ns), n)))
            .collect()
    }
}

/// Feeds `tracker` from the shared pod and service informers in a task of its
/// own, queueing on `queue` the services each change concerns.
pub fn feed(tracker: Arc<ServicePods>, informers: &Informers, queue: Arc<Queue>) {
    let mut services = informers.services.subscribe();
    let mut pods = informers.pods.subscribe();
    tokio::spawn(async move {
        loop {
            let keys = tokio::select! {
                c = services.recv() => match c {
                    Some(c) => tracker.service_changed(&c),
                    None => break,
                },
                c = pods.recv() => match c {
                    Some(c) => tracker.pod_changed(&c),
                    None => break,
                },
            };
            for k in keys {
                queue.add(k);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::crud_resource;
    use crate::controllers::gc::tests::test_kube;
    use serde_json::json;

    fn svc(sel: serde_json::Value) -> Arc<Service> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "default"},
                "spec": {"selector": sel}}))
            .unwrap(),
        )
    }

    fn pod(name: &str, app: &str, ip: &str) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": "default",
                "labels": {"app": app}}, "status": {"podIP": ip}}))
            .unwrap(),
        )
    }

    #[tokio::test]
    async fn pod_changes_queue_only_the_services_that_select_them() {
        let (kube, _dir) = test_kube().await;
        let informer = Informer::<Pod>::start(kube, crud_resource("", "pods"));
        let t = ServicePods::new(informer);
        assert_eq!(
            t.service_changed(&Change::Added(svc(json!({"app": "web"})))),
            ["default/web"]
        );
        assert!(t.has_selector("default/web"));
        assert_eq!(
            t.pod_changed(&Change::Added(pod("a", "web", ""))),
            ["default/web"]
        );
        assert!(t.pod_changed(&Change::Added(pod("b", "db", ""))).is_empty());
        // A change endpoints do not show queues nothing.
        let mut relabelled = (*pod("a", "web", "")).clone();
        relabelled.metadata.annotations =
            Some(Arc::new(BTreeMap::from([("x".into(), "y".into())])));
        let up = |old: Arc<Pod>, new: Arc<Pod>| Change::Updated { old, new };
        assert!(t
            .pod_changed(&up(pod("a", "web", ""), Arc::new(relabelled)))
            .is_empty());
        assert_eq!(
            t.pod_changed(&up(pod("a", "web", ""), pod("a", "web", "10.0.0.1"))),
            ["default/web"]
        );
        // Leaving the selector queues the service once more, then never again.
        assert_eq!(
            t.pod_changed(&up(pod("a", "web", "10.0.0.1"), pod("a", "db", "10.0.0.1"))),
            ["default/web"]
        );
        assert!(t
            .pod_changed(&up(pod("a", "db", "10.0.0.1"), pod("a", "db", "10.0.0.2")))
            .is_empty());
        assert!(t
            .pod_changed(&Change::Deleted(pod("a", "db", "")))
            .is_empty());
        t.service_changed(&Change::Deleted(svc(json!({"app": "web"}))));
        assert!(!t.has_selector("default/web"));
        assert!(t.services().is_empty());
    }
}
