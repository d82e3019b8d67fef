//! Scores: how well a feasible node suits a pod, each 0–100 and summed with
//! upstream's default weights — NodeResourcesFit LeastAllocated (1),
//! NodeResourcesBalancedAllocation (1), NodeAffinity preferred terms (2),
//! PodTopologySpread's default by-hostname spreading of a controller's pods (2),
//! TaintToleration PreferNoSchedule (3) — and the pick of the best node, ties
//! broken at random by reservoir sampling as upstream's `selectHost`. Pure.

use super::cache::NodeInfo;
use super::pod::{tolerated, PodInfo};

pub const MAX_NODE_SCORE: i64 = 100;
pub const WEIGHT_FIT: i64 = 1;
pub const WEIGHT_BALANCED: i64 = 1;
pub const WEIGHT_AFFINITY: i64 = 2;
pub const WEIGHT_SPREAD: i64 = 2;
pub const WEIGHT_TAINT: i64 = 3;

fn least(requested: i64, allocatable: i64) -> i64 {
    if allocatable <= 0 || requested > allocatable {
        return 0;
    }
    (allocatable - requested) * MAX_NODE_SCORE / allocatable
}

/// LeastAllocated over cpu and memory (weight 1 each), with upstream's
/// non-zero defaults for containers that request nothing.
pub fn least_allocated(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let used = &node.usage.non_zero_requested;
    let cpu = least(
        used.milli_cpu + pod.non_zero.milli_cpu,
        node.allocatable.milli_cpu,
    );
    let mem = least(used.memory + pod.non_zero.memory, node.allocatable.memory);
    (cpu + mem) / 2
}

/// BalancedAllocation: 100 × (1 − the standard deviation of the cpu and memory
/// fractions requested with the pod).
pub fn balanced_allocation(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let frac = |req: i64, alloc: i64| {
        if alloc <= 0 {
            return 1.0;
        }
        (req as f64 / alloc as f64).min(1.0)
    };
    let used = &node.usage.requested;
    let cpu = frac(
        used.milli_cpu + pod.requests.milli_cpu,
        node.allocatable.milli_cpu,
    );
    let mem = frac(used.memory + pod.requests.memory, node.allocatable.memory);
    let std = ((cpu - mem) / 2.0).abs();
    ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
}

/// NodeAffinity's raw score: the weights of the preferred terms the node matches.
pub fn preferred_affinity(pod: &PodInfo, node: &NodeInfo) -> i64 {
    pod.preferred_terms
        .iter()
        .filter(|(_, t)| t.matches(&node.name, &node.labels))
        .map(|(w, _)| i64::from(*w))
        .sum()
}

/// TaintToleration's raw score: PreferNoSchedule taints the pod does not
/// tolerate (by a toleration for that effect or for every effect).
pub fn intolerable_taints(pod: &PodInfo, node: &NodeInfo) -> i64 {
    node.taints
        .iter()
        .filter(|t| t.effect == "PreferNoSchedule")
        .filter(|t| !tolerated(&pod.tolerations, t))
        .count() as i64
}

/// Spreading's raw score: pods of the same controller already on the node.
pub fn same_owner_pods(pod: &PodInfo, node: &NodeInfo) -> i64 {
    pod.owner
        .as_deref()
        .map_or(0, |o| i64::from(node.usage.owned_by(o)))
}

/// Upstream's DefaultNormalizeScore: scales to 0–100 by the maximum; `reverse`
/// makes fewer better.
pub fn normalize(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0);
    if max == 0 {
        if reverse {
            scores.iter_mut().for_each(|s| *s = MAX_NODE_SCORE);
        }
        return;
    }
    for s in scores.iter_mut() {
        *s = MAX_NODE_SCORE * *s / max;
        if reverse {
            *s = MAX_NODE_SCORE - *s;
        }
    }
}

/// PodTopologySpread's normalization: the node with the fewest matching pods
/// gets 100, `100 × (max + min − s) / max` in general.
pub fn normalize_spread(scores: &mut [i64]) {
    let max = scores.iter().copied().max().unwrap_or(0);
    let min = scores.iter().copied().min().unwrap_or(0);
    for s in scores.iter_mut() {
        *s = if max == 0 {
            MAX_NODE_SCORE
        } else {
            MAX_NODE_SCORE * (max + min - *s) / max
        };
    }
}

/// The weighted total score of each of `nodes` (all feasible) for `pod`.
pub fn score(pod: &PodInfo, nodes: &[&NodeInfo]) -> Vec<i64> {
    let n = nodes.len();
    let mut total = Vec::with_capacity(n);
    let mut affinity = Vec::with_capacity(n);
    let mut spread = Vec::with_capacity(n);
    let mut taints = Vec::with_capacity(n);
    let has_prefs = !pod.preferred_terms.is_empty();
    for node in nodes {
        total.push(
            WEIGHT_FIT * least_allocated(pod, node)
                + WEIGHT_BALANCED * balanced_allocation(pod, node),
        );
        affinity.push(if has_prefs {
            preferred_affinity(pod, node)
        } else {
            0
        });
        spread.push(same_owner_pods(pod, node));
        taints.push(if node.taints.is_empty() {
            0
        } else {
            intolerable_taints(pod, node)
        });
    }
    normalize(&mut affinity, false);
    normalize_spread(&mut spread);
    normalize(&mut taints, true);
    for i in 0..n {
        total[i] +=
            WEIGHT_AFFINITY * affinity[i] + WEIGHT_SPREAD * spread[i] + WEIGHT_TAINT * taints[i];
    }
    total
}

/// The index of the highest score; among equals each is equally likely
/// (reservoir sampling, as upstream's `selectHost`). `pick(n)` returns a number
/// in `0..n`.
pub fn select(scores: &[i64], mut pick: impl FnMut(usize) -> usize) -> Option<usize> {
    let mut best: Option<usize> = None;
    let mut ties = 0;
    for (i, &s) in scores.iter().enumerate() {
        match best {
            Some(b) if s < scores[b] => {}
            Some(b) if s == scores[b] => {
                ties += 1;
                if pick(ties) == 0 {
                    best = Some(i);
                }
            }
            _ => {
                best = Some(i);
                ties = 1;
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::super::cache::tests::node;
    use super::super::pod::{Op, Requirement, Resources, Taint, Term, Toleration};
    use super::*;

    fn info(name: &str) -> NodeInfo {
        NodeInfo::from_node(&node(name, "4", "8Gi", "110"))
    }

    fn pod(cpu: i64, mem: i64) -> PodInfo {
        let r = Resources {
            milli_cpu: cpu,
            memory: mem,
            ephemeral: 0,
        };
        PodInfo {
            requests: r,
            non_zero: r,
            owner: Some("rs".into()),
            ..Default::default()
        }
    }

    #[test]
    fn least_allocated_prefers_emptier_nodes() {
        let empty = info("a");
        let mut busy = info("b");
        busy.usage.non_zero_requested = Resources {
            milli_cpu: 2000,
            memory: 4 << 30,
            ephemeral: 0,
        };
        let p = pod(1000, 2 << 30);
        // cpu (4000-1000)/4000 = 75, memory 75.
        assert_eq!(least_allocated(&p, &empty), 75);
        assert_eq!(least_allocated(&p, &busy), 25);
        // Over capacity scores 0.
        assert_eq!(least_allocated(&pod(5000, 0), &empty), 50);
    }

    #[test]
    fn balanced_allocation_prefers_even_use() {
        let n = info("a");
        assert_eq!(balanced_allocation(&pod(2000, 4 << 30), &n), 100);
        // cpu 1.0, memory 0.0 → std 0.5 → 50.
        assert_eq!(balanced_allocation(&pod(4000, 0), &n), 50);
    }

    #[test]
    fn preferred_affinity_sums_matching_weights() {
        let mut n = info("a");
        n.labels.insert("zone".into(), "z1".into());
        let mut p = pod(0, 0);
        let term = |v: &str| Term {
            labels: vec![Requirement {
                key: "zone".into(),
                op: Op::In,
                values: vec![v.into()],
            }],
            ..Default::default()
        };
        p.preferred_terms = vec![(30, term("z1")), (50, term("z2")), (5, term("z1"))];
        assert_eq!(preferred_affinity(&p, &n), 35);
    }

    #[test]
    fn prefer_no_schedule_taints_count_unless_tolerated() {
        let mut n = info("a");
        n.taints.push(Taint {
            key: "soft".into(),
            value: String::new(),
            effect: "PreferNoSchedule".into(),
        });
        n.taints.push(Taint {
            key: "hard".into(),
            value: String::new(),
            effect: "NoSchedule".into(),
        });
        let mut p = pod(0, 0);
        assert_eq!(intolerable_taints(&p, &n), 1);
        p.tolerations.push(Toleration {
            key: "soft".into(),
            exists: true,
            value: String::new(),
            effect: "NoSchedule".into(),
        });
        assert_eq!(intolerable_taints(&p, &n), 1);
        p.tolerations[0].effect = "PreferNoSchedule".into();
        assert_eq!(intolerable_taints(&p, &n), 0);
    }

    #[test]
    fn normalization_as_upstream() {
        let mut s = [0, 5, 10];
        normalize(&mut s, false);
        assert_eq!(s, [0, 50, 100]);
        let mut s = [0, 1, 2];
        normalize(&mut s, true);
        assert_eq!(s, [100, 50, 0]);
        let mut s = [0, 0];
        normalize(&mut s, true);
        assert_eq!(s, [100, 100]);
        let mut s = [1, 2, 4];
        normalize_spread(&mut s);
        assert_eq!(s, [100, 75, 25]);
    }

    #[test]
    fn a_controllers_pods_are_spread() {
        let a = info("a");
        let mut b = info("b");
        b.usage.owners.insert("rs".into(), 3);
        let p = pod(100, 1 << 20);
        let scores = score(&p, &[&a, &b]);
        assert!(scores[0] > scores[1], "{scores:?}");
        // Another controller's pods do not matter.
        let mut q = pod(100, 1 << 20);
        q.owner = Some("other".into());
        let scores = score(&q, &[&a, &b]);
        assert_eq!(scores[0], scores[1]);
    }

    #[test]
    fn the_best_node_wins_and_ties_are_random() {
        assert_eq!(select(&[1, 5, 3], |_| 0), Some(1));
        assert_eq!(select(&[], |_| 0), None);
        // With a picker that always accepts, the last of the tied wins; with one
        // that never does, the first.
        assert_eq!(select(&[5, 1, 5, 5], |_| 0), Some(3));
        assert_eq!(select(&[5, 1, 5, 5], |n| n - 1), Some(0));
        let mut seen = [0; 3];
        let mut rng = rand::rng();
        for _ in 0..300 {
            let i = select(&[7, 7, 7], |n| rand::Rng::random_range(&mut rng, 0..n)).unwrap();
            seen[i] += 1;
        }
        assert!(seen.iter().all(|&c| c > 50), "{seen:?}");
    }
}
