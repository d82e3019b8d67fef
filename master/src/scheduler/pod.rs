//! What the scheduler needs to know of a pod, read once from the typed object:
//! its resource requests (upstream's rules for init and sidecar containers and
//! overhead), host ports, node name, node selector and affinity, tolerations,
//! controller and priority. Pure; no I/O.

use crate::controllers::lite::{Container, Pod};
use api::quantity::Quantity;
use k8s_openapi::api::core::v1::NodeSelectorRequirement;
use std::collections::BTreeMap;

/// cpu assumed for a container without a cpu request when scoring (upstream's
/// `DefaultMilliCPURequest`).
pub const DEFAULT_MILLI_CPU: i64 = 100;
/// Memory assumed for a container without a memory request when scoring
/// (upstream's `DefaultMemoryRequest`, 200 MiB).
pub const DEFAULT_MEMORY: i64 = 200 * 1024 * 1024;

/// Amounts of the resources the scheduler accounts for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral: i64,
}

impl Resources {
    pub fn add(&mut self, o: &Resources) {
        self.milli_cpu = self.milli_cpu.saturating_add(o.milli_cpu);
        self.memory = self.memory.saturating_add(o.memory);
        self.ephemeral = self.ephemeral.saturating_add(o.ephemeral);
    }

    pub fn sub(&mut self, o: &Resources) {
        self.milli_cpu = self.milli_cpu.saturating_sub(o.milli_cpu);
        self.memory = self.memory.saturating_sub(o.memory);
        self.ephemeral = self.ephemeral.saturating_sub(o.ephemeral);
    }

    pub fn max_with(&mut self, o: &Resources) {
        self.milli_cpu = self.milli_cpu.max(o.milli_cpu);
        self.memory = self.memory.max(o.memory);
        self.ephemeral = self.ephemeral.max(o.ephemeral);
    }

    /// Reads cpu, memory and ephemeral-storage from a resource list; unparsable
    /// quantities count as zero (validation rejects them before they get here).
    pub fn from_list(
        list: &BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    ) -> Self {
        let q = |name: &str| list.get(name).and_then(|v| Quantity::parse(&v.0).ok());
        let clamp = |v: i128| v.clamp(0, i64::MAX as i128) as i64;
        Self {
            milli_cpu: q("cpu").map_or(0, |v| clamp(v.millis())),
            memory: q("memory").map_or(0, |v| clamp(v.value())),
            ephemeral: q("ephemeral-storage").map_or(0, |v| clamp(v.value())),
        }
    }
}

/// A host port a pod asks for: (protocol, host IP, port).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub protocol: String,
    pub ip: String,
    pub port: i32,
}

impl HostPort {
    /// Whether two host ports cannot both be bound on one node.
    pub fn conflicts(&self, o: &HostPort) -> bool {
        const ANY: &str = "0.0.0.0";
        self.port == o.port
            && self.protocol == o.protocol
            && (self.ip == o.ip || self.ip == ANY || o.ip == ANY)
    }
}

/// A taint or the key/value/effect a toleration is checked against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Taint {
    pub key: String,
    pub value: String,
    pub effect: String,
}

/// A pod's toleration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Toleration {
    pub key: String,
    /// `Exists` or `Equal` (the default).
    pub exists: bool,
    pub value: String,
    /// Empty: every effect.
    pub effect: String,
}

impl Toleration {
    /// Upstream's `Toleration.ToleratesTaint`.
    pub fn tolerates(&self, t: &Taint) -> bool {
        if !self.effect.is_empty() && self.effect != t.effect {
            return false;
        }
        if !self.key.is_empty() && self.key != t.key {
            return false;
        }
        if self.exists {
            return true;
        }
        // Equal with an empty key matches nothing (validation forbids it anyway).
        !self.key.is_empty() && self.value == t.value
    }
}

/// Whether any of `tolerations` tolerates `taint`.
pub fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| t.tolerates(taint))
}

/// One requirement of a node selector term.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub op: Op,
    pub values: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    In,
    NotIn,
    Exists,
    DoesNotExist,
    Gt,
    Lt,
}

impl Requirement {
    fn from_k8s(r: &NodeSelectorRequirement) -> Option<Self> {
        let op = match r.operator.as_str() {
            "In" => Op::In,
            "NotIn" => Op::NotIn,
            "Exists" => Op::Exists,
            "DoesNotExist" => Op::DoesNotExist,
            "Gt" => Op::Gt,
            "Lt" => Op::Lt,
            _ => return None,
        };
        Some(Self {
            key: r.key.clone(),
            op,
            values: r.values.clone().unwrap_or_default(),
        })
    }

    /// Whether a label (or field) value satisfies the requirement.
    pub fn matches(&self, value: Option<&str>) -> bool {
        let int = |s: &str| s.parse::<i64>().ok();
        match self.op {
            Op::In => value.is_some_and(|v| self.values.iter().any(|x| x == v)),
            Op::NotIn => value.is_none_or(|v| !self.values.iter().any(|x| x == v)),
            Op::Exists => value.is_some(),
            Op::DoesNotExist => value.is_none(),
            Op::Gt | Op::Lt => {
                let (Some(v), Some(bound)) = (
                    value.and_then(int),
                    self.values.first().and_then(|s| int(s)),
                ) else {
                    return false;
                };
                if self.values.len() != 1 {
                    return false;
                }
                if self.op == Op::Gt {
                    v > bound
                } else {
                    v < bound
                }
            }
        }
    }
}

/// A node selector term: label expressions and `metadata.name` field expressions,
/// all of which must hold. A term with neither matches no node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Term {
    pub labels: Vec<Requirement>,
    pub fields: Vec<Requirement>,
    /// An expression with an unknown operator: the term matches nothing.
    pub invalid: bool,
}

impl Term {
    pub fn matches(&self, name: &str, labels: &BTreeMap<String, String>) -> bool {
        if self.invalid || (self.labels.is_empty() && self.fields.is_empty()) {
            return false;
        }
        self.labels
            .iter()
            .all(|r| r.matches(labels.get(&r.key).map(String::as_str)))
            && self.fields.iter().all(|r| {
                let v = (r.key == "metadata.name").then_some(name);
                r.matches(v)
            })
    }

    fn from_k8s(t: &k8s_openapi::api::core::v1::NodeSelectorTerm) -> Self {
        let mut term = Term::default();
        for (src, dst) in [
            (&t.match_expressions, &mut term.labels),
            (&t.match_fields, &mut term.fields),
        ] {
            for r in src.iter().flatten() {
                match Requirement::from_k8s(r) {
                    Some(r) => dst.push(r),
                    None => term.invalid = true,
                }
            }
        }
        term
    }
}

/// The scheduling-relevant facts of one pod.
#[derive(Clone, Debug, Default)]
pub struct PodInfo {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    /// Requests as the fit filter counts them.
    pub requests: Resources,
    /// Requests with upstream's defaults for containers without any, for scoring.
    pub non_zero: Resources,
    pub host_ports: Vec<HostPort>,
    /// `spec.nodeName` of an unbound pod that asks for one node.
    pub node_name: Option<String>,
    pub node_selector: BTreeMap<String, String>,
    /// Required node affinity (any term); None: no requirement.
    pub required_terms: Option<Vec<Term>>,
    pub preferred_terms: Vec<(i32, Term)>,
    pub tolerations: Vec<Toleration>,
    /// The uid of the controller that owns the pod, for spreading.
    pub owner: Option<String>,
    pub priority: i32,
}

fn container_requests(c: &Container) -> (Resources, Resources) {
    let list = c.resources.as_ref().and_then(|r| r.requests.as_ref());
    let req = list.map(Resources::from_list).unwrap_or_default();
    let mut non_zero = req;
    let has = |k: &str| list.is_some_and(|l| l.contains_key(k));
    if !has("cpu") {
        non_zero.milli_cpu = DEFAULT_MILLI_CPU;
    }
    if !has("memory") {
        non_zero.memory = DEFAULT_MEMORY;
    }
    (req, non_zero)
}

impl PodInfo {
    pub fn from_pod(pod: &Pod) -> Self {
        let meta = &pod.metadata;
        let mut info = PodInfo {
            uid: meta.uid.clone().unwrap_or_default(),
            namespace: meta.namespace.as_deref().unwrap_or_default().to_string(),
            name: meta.name.clone().unwrap_or_default(),
            owner: meta
                .owner_references
                .as_deref()
                .into_iter()
                .flatten()
                .find(|o| o.controller == Some(true))
                .map(|o| o.uid.clone()),
            ..Default::default()
        };
        let Some(spec) = &pod.spec else {
            return info;
        };
        // Upstream's computePodResourceRequest: the sum of the containers, at
        // least each init container (plus the sidecars started before it), plus
        // the overhead.
        let mut req = Resources::default();
        let mut nz = Resources::default();
        for c in spec.containers.iter() {
            let (r, n) = container_requests(c);
            req.add(&r);
            nz.add(&n);
        }
        let (mut sidecars, mut sidecars_nz) = (Resources::default(), Resources::default());
        let (mut init_max, mut init_max_nz) = (Resources::default(), Resources::default());
        for c in spec.init_containers.as_deref().into_iter().flatten() {
            let (r, n) = container_requests(c);
            let (mut this, mut this_nz) = (r, n);
            if c.restart_policy.as_deref() == Some("Always") {
                req.add(&r);
                nz.add(&n);
                sidecars.add(&r);
                sidecars_nz.add(&n);
                this = sidecars;
                this_nz = sidecars_nz;
            } else {
                this.add(&sidecars);
                this_nz.add(&sidecars_nz);
            }
            init_max.max_with(&this);
            init_max_nz.max_with(&this_nz);
        }
        req.max_with(&init_max);
        nz.max_with(&init_max_nz);
        if let Some(overhead) = &spec.overhead {
            let o = Resources::from_list(overhead);
            req.add(&o);
            nz.add(&o);
        }
        info.requests = req;
        info.non_zero = nz;
        for c in spec
            .containers
            .iter()
            .chain(spec.init_containers.as_deref().into_iter().flatten())
        {
            for p in c.ports.iter().flatten() {
                if let Some(port) = p.host_port.filter(|p| *p > 0) {
                    info.host_ports.push(HostPort {
                        protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                        ip: p
                            .host_ip
                            .clone()
                            .filter(|s| !s.is_empty())
                            .unwrap_or_else(|| "0.0.0.0".into()),
                        port,
                    });
                }
            }
        }
        info.node_name = spec.node_name.clone().filter(|n| !n.is_empty());
        info.node_selector = spec.node_selector.as_deref().cloned().unwrap_or_default();
        if let Some(na) = spec
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref())
        {
            info.required_terms = na
                .required_during_scheduling_ignored_during_execution
                .as_ref()
                .map(|s| s.node_selector_terms.iter().map(Term::from_k8s).collect());
            info.preferred_terms = na
                .preferred_during_scheduling_ignored_during_execution
                .iter()
                .flatten()
                .map(|p| (p.weight, Term::from_k8s(&p.preference)))
                .collect();
        }
        info.tolerations = spec
            .tolerations
            .as_deref()
            .into_iter()
            .flatten()
            .map(|t| Toleration {
                key: t.key.clone().unwrap_or_default(),
                exists: t.operator.as_deref() == Some("Exists"),
                value: t.value.clone().unwrap_or_default(),
                effect: t.effect.clone().unwrap_or_default(),
            })
            .collect();
        info.priority = spec.priority.unwrap_or(0);
        info
    }

    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(
            json!({"metadata": {"name": "p", "namespace": "d", "uid": "u"}, "spec": spec}),
        )
        .unwrap()
    }

    fn c(cpu: &str, mem: &str) -> serde_json::Value {
        json!({"name": "c", "resources": {"requests": {"cpu": cpu, "memory": mem}}})
    }

    #[test]
    fn requests_sum_containers_at_least_init_plus_overhead() {
        let p = pod(json!({
            "containers": [c("100m", "1Mi"), c("200m", "1Mi")],
            "initContainers": [c("500m", "1Ki")],
            "overhead": {"cpu": "10m"},
        }));
        let i = PodInfo::from_pod(&p);
        assert_eq!(i.requests.milli_cpu, 510);
        assert_eq!(i.requests.memory, 2 * 1024 * 1024);
    }

    #[test]
    fn sidecars_add_to_the_sum_and_to_later_init_containers() {
        let mut side = c("100m", "0");
        side["restartPolicy"] = json!("Always");
        let p =
            pod(json!({"containers": [c("100m", "0")], "initContainers": [side, c("250m", "0")]}));
        let i = PodInfo::from_pod(&p);
        // max(100 + 100, 100 + 250)
        assert_eq!(i.requests.milli_cpu, 350);
    }

    #[test]
    fn containers_without_requests_get_defaults_for_scoring_only() {
        let p = pod(json!({"containers": [{"name": "c"}]}));
        let i = PodInfo::from_pod(&p);
        assert_eq!(i.requests, Resources::default());
        assert_eq!(i.non_zero.milli_cpu, DEFAULT_MILLI_CPU);
        assert_eq!(i.non_zero.memory, DEFAULT_MEMORY);
    }

    #[test]
    fn host_ports_default_protocol_and_address() {
        let p = pod(
            json!({"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 81}]}]}),
        );
        let i = PodInfo::from_pod(&p);
        assert_eq!(
            i.host_ports,
            vec![HostPort {
                protocol: "TCP".into(),
                ip: "0.0.0.0".into(),
                port: 8080
            }]
        );
        let other = HostPort {
            protocol: "TCP".into(),
            ip: "10.0.0.1".into(),
            port: 8080,
        };
        assert!(i.host_ports[0].conflicts(&other));
        let udp = HostPort {
            protocol: "UDP".into(),
            ..other.clone()
        };
        assert!(!i.host_ports[0].conflicts(&udp));
    }

    #[test]
    fn requirements_follow_upstream_operators() {
        let r = |op, v: &[&str]| Requirement {
            key: "k".into(),
            op,
            values: v.iter().map(|s| s.to_string()).collect(),
        };
        assert!(r(Op::In, &["a", "b"]).matches(Some("b")));
        assert!(!r(Op::In, &["a"]).matches(None));
        assert!(r(Op::NotIn, &["a"]).matches(None));
        assert!(!r(Op::NotIn, &["a"]).matches(Some("a")));
        assert!(r(Op::Exists, &[]).matches(Some("")));
        assert!(r(Op::DoesNotExist, &[]).matches(None));
        assert!(r(Op::Gt, &["5"]).matches(Some("6")));
        assert!(!r(Op::Gt, &["5"]).matches(Some("x")));
        assert!(r(Op::Lt, &["5"]).matches(Some("4")));
    }

    #[test]
    fn tolerations_match_as_upstream() {
        let t = Taint {
            key: "k".into(),
            value: "v".into(),
            effect: "NoSchedule".into(),
        };
        let tol = |key: &str, exists, value: &str, effect: &str| Toleration {
            key: key.into(),
            exists,
            value: value.into(),
            effect: effect.into(),
        };
        assert!(tol("k", false, "v", "NoSchedule").tolerates(&t));
        assert!(tol("k", false, "v", "").tolerates(&t));
        assert!(!tol("k", false, "w", "").tolerates(&t));
        assert!(tol("k", true, "", "").tolerates(&t));
        assert!(tol("", true, "", "").tolerates(&t));
        assert!(!tol("k", true, "", "NoExecute").tolerates(&t));
    }
}
