//! Scores: how good a feasible node is for a pod, one function per kube-scheduler plugin, each
//! normalised to 0..=100 across the feasible nodes and weighted like kube-scheduler's default
//! profile (TaintToleration 3, NodeAffinity 2, PodTopologySpread 2, InterPodAffinity 2,
//! NodeResourcesFit (least allocated) 1, NodeResourcesBalancedAllocation 1, ImageLocality 1).
//!
//! Invariants: pure; `score` returns one total per feasible node in the order given; raw
//! per-plugin scores are computed without allocating per node.

use std::collections::HashMap;

use crate::cycle::Cycle;
use crate::snapshot::{NodeInfo, Snapshot};
use crate::terms::tolerates;

/// The highest score a plugin gives a node.
pub const MAX_NODE_SCORE: i64 = 100;

/// Total weighted score of each feasible node.
pub fn score(snapshot: &Snapshot, cycle: &Cycle, nodes: &[&NodeInfo]) -> Vec<i64> {
    let mut total = vec![0i64; nodes.len()];
    let mut raw = vec![0i64; nodes.len()];
    let mut add = |raw: &[i64], weight: i64| {
        for (t, r) in total.iter_mut().zip(raw) {
            *t += weight * r;
        }
    };

    for (r, node) in raw.iter_mut().zip(nodes) {
        *r = taint_toleration(cycle, node);
    }
    normalize_default(&mut raw, true);
    add(&raw, 3);

    if !cycle.preferred_node_affinity.is_empty() {
        for (r, node) in raw.iter_mut().zip(nodes) {
            *r = node_affinity(cycle, node);
        }
        normalize_default(&mut raw, false);
        add(&raw, 2);
    }

    if cycle.spread.iter().any(|c| !c.hard) {
        let mut ignored = vec![false; nodes.len()];
        for ((r, ignore), node) in raw.iter_mut().zip(ignored.iter_mut()).zip(nodes) {
            match topology_spread(cycle, node) {
                Some(value) => *r = value,
                None => *ignore = true,
            }
        }
        normalize_spread(&mut raw, &ignored);
        add(&raw, 2);
    }

    if !cycle.pod.preferred_affinity.is_empty()
        || !cycle.pod.preferred_anti_affinity.is_empty()
        || snapshot.any_pod_affinity()
    {
        let by_topology = inter_pod_affinity_topology_scores(snapshot, cycle);
        if !by_topology.is_empty() {
            for (r, node) in raw.iter_mut().zip(nodes) {
                *r = inter_pod_affinity(&by_topology, node);
            }
            normalize_min_max(&mut raw);
            add(&raw, 2);
        }
    }

    for (r, node) in raw.iter_mut().zip(nodes) {
        *r = least_allocated(cycle, node);
    }
    add(&raw, 1);

    for (r, node) in raw.iter_mut().zip(nodes) {
        *r = balanced_allocation(cycle, node);
    }
    add(&raw, 1);

    for (r, node) in raw.iter_mut().zip(nodes) {
        *r = image_locality(snapshot, cycle, node);
    }
    add(&raw, 1);
    total
}

/// kube-scheduler's `DefaultNormalizeScore`: scale to 0..=100 by the maximum; `reverse` makes
/// fewer better.
pub fn normalize_default(scores: &mut [i64], reverse: bool) {
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

fn normalize_min_max(scores: &mut [i64]) {
    let max = scores.iter().copied().max().unwrap_or(0);
    let min = scores.iter().copied().min().unwrap_or(0);
    let spread = max - min;
    for s in scores.iter_mut() {
        *s = if spread > 0 {
            MAX_NODE_SCORE * (*s - min) / spread
        } else {
            0
        };
    }
}

fn normalize_spread(scores: &mut [i64], ignored: &[bool]) {
    let considered = || {
        scores
            .iter()
            .zip(ignored)
            .filter(|(_, i)| !**i)
            .map(|(s, _)| *s)
    };
    let max = considered().max().unwrap_or(0);
    let min = considered().min().unwrap_or(0);
    for (s, ignore) in scores.iter_mut().zip(ignored) {
        *s = if *ignore {
            0
        } else if max == 0 {
            MAX_NODE_SCORE
        } else {
            MAX_NODE_SCORE * (max + min - *s) / max
        };
    }
}

/// TaintToleration (raw): how many PreferNoSchedule taints the pod does not tolerate (fewer is
/// better).
pub fn taint_toleration(cycle: &Cycle, node: &NodeInfo) -> i64 {
    node.taints
        .iter()
        .filter(|taint| taint.effect == "PreferNoSchedule")
        .filter(|taint| {
            !cycle
                .tolerations
                .iter()
                .filter(|t| {
                    t.effect
                        .as_deref()
                        .is_none_or(|e| e.is_empty() || e == "PreferNoSchedule")
                })
                .any(|t| tolerates(t, taint))
        })
        .count() as i64
}

/// NodeAffinity (raw): the sum of the weights of the preferred terms the node matches.
pub fn node_affinity(cycle: &Cycle, node: &NodeInfo) -> i64 {
    cycle
        .preferred_node_affinity
        .iter()
        .filter(|(_, m)| m.matches(&node.name, &node.labels))
        .map(|(weight, _)| *weight)
        .sum()
}

/// PodTopologySpread (raw, ScheduleAnyway constraints): matching pods in the node's domains,
/// weighted by the log of each key's domain count; `None` when the node lacks a topology key.
pub fn topology_spread(cycle: &Cycle, node: &NodeInfo) -> Option<i64> {
    let mut score = 0f64;
    for constraint in cycle.spread.iter().filter(|c| !c.hard) {
        let value = node.label(&constraint.topology_key)?;
        let count = constraint.counts.get(value).copied().unwrap_or(0);
        let weight = ((constraint.counts.len() + 2) as f64).ln();
        score += count as f64 * weight + (constraint.max_skew - 1) as f64;
    }
    Some(score.round() as i64)
}

/// NodeResourcesFit, LeastAllocated (already 0..=100): the free fraction of CPU and memory
/// after placing the pod, averaged.
pub fn least_allocated(cycle: &Cycle, node: &NodeInfo) -> i64 {
    let least = |requested: i64, capacity: i64| {
        if capacity <= 0 || requested > capacity {
            0
        } else {
            (capacity - requested) * MAX_NODE_SCORE / capacity
        }
    };
    let cpu = least(
        node.non_zero_milli_cpu + cycle.pod.requests.non_zero_milli_cpu,
        node.allocatable.milli_cpu,
    );
    let memory = least(
        node.non_zero_memory + cycle.pod.requests.non_zero_memory,
        node.allocatable.memory,
    );
    (cpu + memory) / 2
}

/// NodeResourcesBalancedAllocation (already 0..=100): how close the CPU and memory fractions are
/// after placing the pod (one minus their standard deviation).
pub fn balanced_allocation(cycle: &Cycle, node: &NodeInfo) -> i64 {
    let fraction = |requested: i64, capacity: i64| {
        if capacity <= 0 {
            1.0
        } else {
            (requested as f64 / capacity as f64).min(1.0)
        }
    };
    let cpu = fraction(
        node.requested.milli_cpu + cycle.pod.requests.requests.milli_cpu,
        node.allocatable.milli_cpu,
    );
    let memory = fraction(
        node.requested.memory + cycle.pod.requests.requests.memory,
        node.allocatable.memory,
    );
    let std = (cpu - memory).abs() / 2.0;
    ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
}

const MIN_IMAGE_THRESHOLD: i64 = 23 * 1024 * 1024;
const MAX_CONTAINER_IMAGE_THRESHOLD: i64 = 1000 * 1024 * 1024;

/// ImageLocality (already 0..=100): the sizes of the pod's images already on the node, scaled
/// by how many nodes have them.
pub fn image_locality(snapshot: &Snapshot, cycle: &Cycle, node: &NodeInfo) -> i64 {
    if node.images.is_empty() {
        return 0;
    }
    let Some(spec) = cycle.pod.pod.spec.as_ref() else {
        return 0;
    };
    let total_nodes = snapshot.nodes().len().max(1) as f64;
    let mut sum = 0f64;
    for image in spec.containers.iter().filter_map(|c| c.image.as_deref()) {
        let normalized = normalize_image(image);
        if let Some((_, size)) = node
            .images
            .iter()
            .find(|(name, _)| normalize_image(name) == normalized)
        {
            let spread = snapshot.nodes_with_image(&normalized).max(1) as f64 / total_nodes;
            sum += *size as f64 * spread.min(1.0);
        }
    }
    let max = MAX_CONTAINER_IMAGE_THRESHOLD * spec.containers.len().max(1) as i64;
    let sum = (sum as i64).clamp(MIN_IMAGE_THRESHOLD, max);
    MAX_NODE_SCORE * (sum - MIN_IMAGE_THRESHOLD) / (max - MIN_IMAGE_THRESHOLD)
}

fn normalize_image(image: &str) -> String {
    let has_tag = image
        .rsplit('/')
        .next()
        .is_some_and(|last| last.contains(':') || last.contains('@'));
    if has_tag {
        image.to_string()
    } else {
        format!("{image}:latest")
    }
}

/// InterPodAffinity's per-topology sums: (topology key, value) → score contributed by assigned
/// pods (the pod's preferred terms over them, and their terms over the pod).
pub fn inter_pod_affinity_topology_scores(
    snapshot: &Snapshot,
    cycle: &Cycle,
) -> HashMap<(String, String), i64> {
    let pod = &cycle.pod;
    let mut scores: HashMap<(String, String), i64> = HashMap::new();
    let own_labels = snapshot.namespace_labels(&pod.namespace);
    let mut add = |key: &str, node: &NodeInfo, amount: i64| {
        if amount != 0
            && let Some(value) = node.label(key)
        {
            *scores
                .entry((key.to_string(), value.to_string()))
                .or_insert(0) += amount;
        }
    };
    for node in snapshot.nodes() {
        for other in &node.pods {
            let other_labels = snapshot.namespace_labels(&other.namespace);
            for weighted in &pod.preferred_affinity {
                if weighted
                    .term
                    .matches(&other.namespace, other_labels, &other.labels)
                {
                    add(&weighted.term.topology_key, node, weighted.weight);
                }
            }
            for weighted in &pod.preferred_anti_affinity {
                if weighted
                    .term
                    .matches(&other.namespace, other_labels, &other.labels)
                {
                    add(&weighted.term.topology_key, node, -weighted.weight);
                }
            }
            for term in &other.required_affinity {
                if term.matches(&pod.namespace, own_labels, &pod.labels) {
                    add(&term.topology_key, node, 1);
                }
            }
            for weighted in &other.preferred_affinity {
                if weighted
                    .term
                    .matches(&pod.namespace, own_labels, &pod.labels)
                {
                    add(&weighted.term.topology_key, node, weighted.weight);
                }
            }
            for weighted in &other.preferred_anti_affinity {
                if weighted
                    .term
                    .matches(&pod.namespace, own_labels, &pod.labels)
                {
                    add(&weighted.term.topology_key, node, -weighted.weight);
                }
            }
        }
    }
    scores
}

/// InterPodAffinity (raw): the node's sum over its topology domains.
pub fn inter_pod_affinity(by_topology: &HashMap<(String, String), i64>, node: &NodeInfo) -> i64 {
    by_topology
        .iter()
        .filter(|((key, value), _)| node.label(key) == Some(value.as_str()))
        .map(|(_, score)| *score)
        .sum()
}

#[cfg(test)]
mod tests;
