//! One scheduling decision, as upstream's `schedulePod`: filter the nodes,
//! starting where the previous pod stopped and stopping once enough feasible
//! nodes are found (`percentageOfNodesToScore`, adaptive), score those, pick the
//! best. When no node fits, the per-reason counts make upstream's message
//! `0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {…}.`
//! Pure: the caller owns the cache and the random source.

use super::cache::{Cache, NodeInfo};
use super::filter::{self, Reason};
use super::pod::PodInfo;
use super::score;
use std::collections::HashMap;
use std::fmt;

/// Below this many nodes every node is evaluated (`minFeasibleNodesToFind`).
pub const MIN_FEASIBLE_NODES: usize = 100;
/// `minFeasibleNodesPercentageToFind`.
pub const MIN_FEASIBLE_PERCENT: usize = 5;
/// `DefaultPercentageOfNodesToScore`'s adaptive base.
pub const BASE_PERCENT: usize = 50;

/// How many feasible nodes to look for among `all` (upstream's
/// `numFeasibleNodesToFind` with the adaptive percentage: 50% − nodes/125,
/// at least 5%, at least 100 nodes).
pub fn feasible_nodes_to_find(all: usize) -> usize {
    if all < MIN_FEASIBLE_NODES {
        return all;
    }
    let percent = BASE_PERCENT
        .saturating_sub(all / 125)
        .max(MIN_FEASIBLE_PERCENT);
    (all * percent / 100).max(MIN_FEASIBLE_NODES)
}

/// No node fits the pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FitError {
    pub nodes: usize,
    /// How many nodes failed for each reason.
    pub reasons: HashMap<Reason, usize>,
}

impl fmt::Display for FitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nodes == 0 {
            return f.write_str("no nodes available to schedule pods");
        }
        // Upstream sorts the "count reason" strings.
        let mut parts: Vec<String> = self
            .reasons
            .iter()
            .map(|(r, n)| format!("{n} {r}"))
            .collect();
        parts.sort();
        write!(
            f,
            "0/{} nodes are available: {}.",
            self.nodes,
            parts.join(", ")
        )
    }
}

/// Where the next search starts, and a source of randomness for ties.
pub struct Cursor<R> {
    pub next_start: usize,
    pub pick: R,
}

/// Chooses a node for `pod`, or says why none fits.
pub fn schedule<R: FnMut(usize) -> usize>(
    pod: &PodInfo,
    cache: &Cache,
    cursor: &mut Cursor<R>,
) -> Result<String, FitError> {
    let nodes = cache.nodes();
    let all = nodes.len();
    let mut reasons: HashMap<Reason, usize> = HashMap::new();
    if all == 0 {
        return Err(FitError { nodes: 0, reasons });
    }
    let want = feasible_nodes_to_find(all);
    let start = cursor.next_start % all;
    let mut feasible: Vec<&NodeInfo> = Vec::with_capacity(want.min(all));
    let mut processed = 0;
    for i in 0..all {
        let node = &nodes[(start + i) % all];
        processed += 1;
        match filter::run(pod, node) {
            Ok(()) => {
                feasible.push(node);
                if feasible.len() >= want {
                    break;
                }
            }
            Err(rs) => {
                for r in rs {
                    *reasons.entry(r).or_default() += 1;
                }
            }
        }
    }
    cursor.next_start = (start + processed) % all;
    match feasible.len() {
        0 => Err(FitError {
            nodes: all,
            reasons,
        }),
        1 => Ok(feasible[0].name.clone()),
        _ => {
            let scores = score::score(pod, &feasible);
            let best = score::select(&scores, &mut cursor.pick).unwrap_or(0);
            Ok(feasible[best].name.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::cache::tests::{node, pod_info};
    use super::*;
    use k8s_openapi::api::core::v1::Node;
    use serde_json::json;

    fn cursor() -> Cursor<impl FnMut(usize) -> usize> {
        Cursor {
            next_start: 0,
            pick: |_| 0,
        }
    }

    #[test]
    fn adaptive_share_of_nodes_to_score() {
        assert_eq!(feasible_nodes_to_find(3), 3);
        assert_eq!(feasible_nodes_to_find(99), 99);
        assert_eq!(feasible_nodes_to_find(100), 100);
        assert_eq!(feasible_nodes_to_find(200), 100); // 49% = 98 → at least 100
        assert_eq!(feasible_nodes_to_find(1000), 420); // 50 − 8 = 42%
        assert_eq!(feasible_nodes_to_find(5000), 5000 * 10 / 100);
        assert_eq!(feasible_nodes_to_find(6000), 6000 * 5 / 100);
    }

    #[test]
    fn large_clusters_are_sampled_from_a_rotating_start() {
        let mut cache = Cache::new();
        for i in 0..1000 {
            cache.upsert_node(&node(&format!("n{i}"), "4", "8Gi", "110"));
        }
        let mut c = cursor();
        let p = pod_info("p", 100, 1 << 20);
        schedule(&p, &cache, &mut c).unwrap();
        assert_eq!(c.next_start, 420);
        schedule(&p, &cache, &mut c).unwrap();
        schedule(&p, &cache, &mut c).unwrap();
        assert_eq!(c.next_start, 1260 % 1000);
    }

    #[test]
    fn the_message_counts_reasons_as_upstream() {
        let mut cache = Cache::new();
        cache.upsert_node(&node("small", "1", "8Gi", "110"));
        for name in ["cp1", "cp2"] {
            let mut n: Node = node(name, "8", "8Gi", "110");
            n.spec = Some(
                serde_json::from_value(json!({"taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]}))
                    .unwrap(),
            );
            cache.upsert_node(&n);
        }
        let p = pod_info("p", 2000, 1 << 20);
        let err = schedule(&p, &cache, &mut cursor()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }."
        );
        let empty = schedule(&p, &Cache::new(), &mut cursor()).unwrap_err();
        assert_eq!(empty.to_string(), "no nodes available to schedule pods");
    }

    #[test]
    fn assumed_pods_fill_nodes_and_spread() {
        let mut cache = Cache::new();
        for i in 0..3 {
            cache.upsert_node(&node(&format!("n{i}"), "1", "8Gi", "110"));
        }
        let mut c = Cursor {
            next_start: 0,
            pick: |n: usize| n - 1,
        };
        let mut per_node = HashMap::new();
        for i in 0..6 {
            let p = pod_info(&format!("p{i}"), 300, 1 << 20);
            let n = schedule(&p, &cache, &mut c).unwrap();
            cache.assume(p, &n);
            *per_node.entry(n).or_insert(0) += 1;
        }
        assert!(per_node.values().all(|&v| v == 2), "{per_node:?}");
        // 3 × 300m more fit, the fourth does not.
        for i in 6..9 {
            let p = pod_info(&format!("p{i}"), 300, 1 << 20);
            let n = schedule(&p, &cache, &mut c).unwrap();
            cache.assume(p, &n);
        }
        let err = schedule(&pod_info("x", 300, 1 << 20), &cache, &mut c).unwrap_err();
        assert_eq!(
            err.to_string(),
            "0/3 nodes are available: 3 Insufficient cpu."
        );
    }

    #[test]
    fn decisions_at_a_thousand_nodes() {
        let mut cache = Cache::new();
        for i in 0..1000 {
            cache.upsert_node(&node(&format!("n{i:04}"), "32", "128Gi", "110"));
        }
        let mut c = cursor();
        let pods = 5000;
        let started = std::time::Instant::now();
        for i in 0..pods {
            let mut p = (*pod_info(&format!("p{i}"), 100, 64 << 20)).clone();
            p.owner = Some(format!("rs-{}", i % 5));
            let p = std::sync::Arc::new(p);
            let n = schedule(&p, &cache, &mut c).unwrap();
            cache.assume(p, &n);
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{pods} decisions over 1000 nodes in {secs:.2} s: {:.0} pods/s (this build)",
            pods as f64 / secs
        );
        let (min, max) = cache
            .nodes()
            .iter()
            .map(|n| n.usage.pods)
            .fold((i64::MAX, 0), |(lo, hi), p| (lo.min(p), hi.max(p)));
        assert!(max - min <= 2, "{min}..{max}");
    }
}
