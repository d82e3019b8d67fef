//! Filters: whether a pod may run on a node, each a pure function with the
//! failure reason upstream's plugin reports, run in upstream's order
//! (NodeUnschedulable, NodeName, TaintToleration, NodeAffinity, NodePorts,
//! NodeResourcesFit); a node fails on the first filter that rejects it. A node
//! that is not Ready counts as tainted `node.kubernetes.io/not-ready:NoSchedule`
//! (`unreachable` when its Ready condition is Unknown), as upstream's
//! TaintNodesByCondition makes it.

use super::cache::{NodeInfo, Readiness};
use super::pod::{tolerated, PodInfo, Taint};
use std::collections::BTreeMap;
use std::fmt;

pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// Why a node cannot take a pod; `Display` is upstream's reason text.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    Unschedulable,
    NodeName,
    UntoleratedTaint { key: String, value: String },
    NodeAffinity,
    NodePorts,
    Insufficient(&'static str),
    TooManyPods,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Unschedulable => f.write_str("node(s) were unschedulable"),
            Reason::NodeName => f.write_str("node(s) didn't match the requested node name"),
            Reason::UntoleratedTaint { key, value } => {
                write!(f, "node(s) had untolerated taint {{{key}: {value}}}")
            }
            Reason::NodeAffinity => {
                f.write_str("node(s) didn't match Pod's node affinity/selector")
            }
            Reason::NodePorts => {
                f.write_str("node(s) didn't have free ports for the requested pod ports")
            }
            Reason::Insufficient(r) => write!(f, "Insufficient {r}"),
            Reason::TooManyPods => f.write_str("Too many pods"),
        }
    }
}

/// NodeUnschedulable: `spec.unschedulable` unless the pod tolerates
/// `node.kubernetes.io/unschedulable:NoSchedule`.
pub fn node_unschedulable(pod: &PodInfo, node: &NodeInfo) -> Result<(), Reason> {
    if !node.unschedulable {
        return Ok(());
    }
    let taint = Taint {
        key: TAINT_UNSCHEDULABLE.into(),
        value: String::new(),
        effect: "NoSchedule".into(),
    };
    if tolerated(&pod.tolerations, &taint) {
        Ok(())
    } else {
        Err(Reason::Unschedulable)
    }
}

/// NodeName: a pod that names a node fits only there.
pub fn node_name(pod: &PodInfo, node: &NodeInfo) -> Result<(), Reason> {
    match &pod.node_name {
        Some(n) if *n != node.name => Err(Reason::NodeName),
        _ => Ok(()),
    }
}

/// TaintToleration: every NoSchedule and NoExecute taint (and the implicit one
/// of a node that is not Ready) must be tolerated.
pub fn taint_toleration(pod: &PodInfo, node: &NodeInfo) -> Result<(), Reason> {
    let untolerated = |t: &Taint| {
        (t.effect == "NoSchedule" || t.effect == "NoExecute") && !tolerated(&pod.tolerations, t)
    };
    if let Some(t) = node.taints.iter().find(|t| untolerated(t)) {
        return Err(Reason::UntoleratedTaint {
            key: t.key.clone(),
            value: t.value.clone(),
        });
    }
    let implicit = match node.readiness {
        Readiness::Ready => return Ok(()),
        Readiness::NotReady => TAINT_NOT_READY,
        Readiness::Unknown => TAINT_UNREACHABLE,
    };
    let taint = Taint {
        key: implicit.into(),
        value: String::new(),
        effect: "NoSchedule".into(),
    };
    if untolerated(&taint) {
        Err(Reason::UntoleratedTaint {
            key: taint.key,
            value: taint.value,
        })
    } else {
        Ok(())
    }
}

/// Whether a node's labels carry every pair of a pod's nodeSelector.
pub fn selector_matches(
    selector: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// NodeAffinity: nodeSelector and required node affinity (any term).
pub fn node_affinity(pod: &PodInfo, node: &NodeInfo) -> Result<(), Reason> {
    let selector_ok = selector_matches(&pod.node_selector, &node.labels);
    let affinity_ok = pod
        .required_terms
        .as_ref()
        .is_none_or(|terms| terms.iter().any(|t| t.matches(&node.name, &node.labels)));
    if selector_ok && affinity_ok {
        Ok(())
    } else {
        Err(Reason::NodeAffinity)
    }
}

/// NodePorts: none of the pod's host ports is taken on the node.
pub fn node_ports(pod: &PodInfo, node: &NodeInfo) -> Result<(), Reason> {
    let taken = pod
        .host_ports
        .iter()
        .any(|p| node.usage.host_ports.iter().any(|u| u.conflicts(p)));
    if taken {
        Err(Reason::NodePorts)
    } else {
        Ok(())
    }
}

/// NodeResourcesFit: requests against allocatable minus what is requested
/// already, and the pod count; every shortage is a reason.
pub fn resources_fit(pod: &PodInfo, node: &NodeInfo, reasons: &mut Vec<Reason>) {
    let u = &node.usage;
    if u.pods + 1 > node.allowed_pods {
        reasons.push(Reason::TooManyPods);
    }
    let (r, a, used) = (&pod.requests, &node.allocatable, &u.requested);
    if r.milli_cpu > 0 && r.milli_cpu > a.milli_cpu - used.milli_cpu {
        reasons.push(Reason::Insufficient("cpu"));
    }
    if r.memory > 0 && r.memory > a.memory - used.memory {
        reasons.push(Reason::Insufficient("memory"));
    }
    if r.ephemeral > 0 && r.ephemeral > a.ephemeral - used.ephemeral {
        reasons.push(Reason::Insufficient("ephemeral-storage"));
    }
}

/// Every filter in upstream's order. Ok when the node fits; otherwise the
/// reasons of the first filter that failed.
pub fn run(pod: &PodInfo, node: &NodeInfo) -> Result<(), Vec<Reason>> {
    node_unschedulable(pod, node)
        .and_then(|()| node_name(pod, node))
        .and_then(|()| taint_toleration(pod, node))
        .and_then(|()| node_affinity(pod, node))
        .and_then(|()| node_ports(pod, node))
        .map_err(|r| vec![r])?;
    let mut reasons = Vec::new();
    resources_fit(pod, node, &mut reasons);
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(reasons)
    }
}

#[cfg(test)]
mod tests {
    use super::super::cache::tests::node;
    use super::super::pod::{HostPort, Op, Requirement, Resources, Term, Toleration};
    use super::*;

    fn info(name: &str) -> NodeInfo {
        NodeInfo::from_node(&node(name, "2", "4Gi", "3"))
    }

    fn pod() -> PodInfo {
        PodInfo {
            uid: "u".into(),
            ..Default::default()
        }
    }

    fn toleration(key: &str, effect: &str) -> Toleration {
        Toleration {
            key: key.into(),
            exists: true,
            value: String::new(),
            effect: effect.into(),
        }
    }

    #[test]
    fn unschedulable_nodes_unless_tolerated() {
        let mut n = info("n");
        assert_eq!(node_unschedulable(&pod(), &n), Ok(()));
        n.unschedulable = true;
        assert_eq!(node_unschedulable(&pod(), &n), Err(Reason::Unschedulable));
        assert_eq!(
            Reason::Unschedulable.to_string(),
            "node(s) were unschedulable"
        );
        let mut p = pod();
        p.tolerations
            .push(toleration(TAINT_UNSCHEDULABLE, "NoSchedule"));
        assert_eq!(node_unschedulable(&p, &n), Ok(()));
    }

    #[test]
    fn node_name_must_match() {
        let mut p = pod();
        assert_eq!(node_name(&p, &info("a")), Ok(()));
        p.node_name = Some("b".into());
        assert_eq!(node_name(&p, &info("a")), Err(Reason::NodeName));
        assert_eq!(node_name(&p, &info("b")), Ok(()));
    }

    #[test]
    fn untolerated_taints_and_not_ready_nodes() {
        let mut n = info("n");
        n.taints.push(Taint {
            key: "node-role.kubernetes.io/control-plane".into(),
            value: String::new(),
            effect: "NoSchedule".into(),
        });
        n.taints.push(Taint {
            key: "soft".into(),
            value: "x".into(),
            effect: "PreferNoSchedule".into(),
        });
        let err = taint_toleration(&pod(), &n).unwrap_err();
        assert_eq!(
            err.to_string(),
            "node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }"
        );
        let mut p = pod();
        p.tolerations
            .push(toleration("node-role.kubernetes.io/control-plane", ""));
        assert_eq!(taint_toleration(&p, &n), Ok(()));
        n.readiness = Readiness::NotReady;
        assert_eq!(
            taint_toleration(&p, &n).unwrap_err().to_string(),
            "node(s) had untolerated taint {node.kubernetes.io/not-ready: }"
        );
        // The default NoExecute tolerations do not cover scheduling.
        p.tolerations.push(toleration(TAINT_NOT_READY, "NoExecute"));
        assert!(taint_toleration(&p, &n).is_err());
        p.tolerations
            .push(toleration(TAINT_NOT_READY, "NoSchedule"));
        assert_eq!(taint_toleration(&p, &n), Ok(()));
        n.readiness = Readiness::Unknown;
        assert_eq!(
            taint_toleration(&p, &n),
            Err(Reason::UntoleratedTaint {
                key: TAINT_UNREACHABLE.into(),
                value: String::new()
            })
        );
    }

    #[test]
    fn node_selector_and_required_affinity() {
        let mut n = info("n1");
        n.labels.insert("disk".into(), "ssd".into());
        n.labels.insert("gen".into(), "5".into());
        let mut p = pod();
        p.node_selector.insert("disk".into(), "ssd".into());
        assert_eq!(node_affinity(&p, &n), Ok(()));
        p.node_selector.insert("zone".into(), "a".into());
        let err = node_affinity(&p, &n).unwrap_err();
        assert_eq!(
            err.to_string(),
            "node(s) didn't match Pod's node affinity/selector"
        );
        p.node_selector.clear();
        let req = |key: &str, op, v: &[&str]| Requirement {
            key: key.into(),
            op,
            values: v.iter().map(|s| s.to_string()).collect(),
        };
        // Terms are ORed, expressions within a term ANDed.
        p.required_terms = Some(vec![
            Term {
                labels: vec![req("disk", Op::In, &["hdd"])],
                ..Default::default()
            },
            Term {
                labels: vec![
                    req("gen", Op::Gt, &["4"]),
                    req("gpu", Op::DoesNotExist, &[]),
                ],
                ..Default::default()
            },
        ]);
        assert_eq!(node_affinity(&p, &n), Ok(()));
        p.required_terms = Some(vec![Term {
            fields: vec![req("metadata.name", Op::In, &["n2"])],
            ..Default::default()
        }]);
        assert_eq!(node_affinity(&p, &n), Err(Reason::NodeAffinity));
        assert_eq!(node_affinity(&p, &info("n2")), Ok(()));
        // An empty term matches nothing.
        p.required_terms = Some(vec![Term::default()]);
        assert!(node_affinity(&p, &n).is_err());
    }

    #[test]
    fn host_ports_must_be_free() {
        let mut n = info("n");
        let hp = |ip: &str, port| HostPort {
            protocol: "TCP".into(),
            ip: ip.into(),
            port,
        };
        n.usage.host_ports.push(hp("10.0.0.1", 80));
        let mut p = pod();
        p.host_ports.push(hp("10.0.0.2", 80));
        assert_eq!(node_ports(&p, &n), Ok(()));
        p.host_ports.push(hp("0.0.0.0", 80));
        let err = node_ports(&p, &n).unwrap_err();
        assert_eq!(
            err.to_string(),
            "node(s) didn't have free ports for the requested pod ports"
        );
    }

    #[test]
    fn resources_fit_reports_every_shortage() {
        let mut n = info("n");
        n.usage.requested = Resources {
            milli_cpu: 1500,
            memory: 1 << 30,
            ephemeral: 0,
        };
        n.usage.pods = 3;
        let mut p = pod();
        p.requests.milli_cpu = 600;
        p.requests.memory = 1 << 30;
        let mut reasons = Vec::new();
        resources_fit(&p, &n, &mut reasons);
        let text: Vec<String> = reasons.iter().map(ToString::to_string).collect();
        assert_eq!(text, ["Too many pods", "Insufficient cpu"]);
        n.usage.pods = 0;
        p.requests.milli_cpu = 500;
        assert_eq!(run(&p, &n), Ok(()));
        p.requests.memory = 4 << 30;
        assert_eq!(run(&p, &n), Err(vec![Reason::Insufficient("memory")]));
    }

    #[test]
    fn first_failing_filter_wins() {
        let mut n = info("n");
        n.unschedulable = true;
        let mut p = pod();
        p.requests.milli_cpu = 1_000_000;
        assert_eq!(run(&p, &n), Err(vec![Reason::Unschedulable]));
    }
}
