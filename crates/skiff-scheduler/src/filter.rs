//! Filters: whether a pod may run on a node, one function per kube-scheduler plugin, run in
//! kube-scheduler's default order and stopping at the first failure (as it does).
//!
//! Invariants: pure functions of the cycle state and one `NodeInfo`; no allocation on success;
//! reasons and codes are kube-scheduler's (see `status::reasons`).

use crate::cycle::{Cycle, VolumeConstraint};
use crate::snapshot::NodeInfo;
use crate::status::{Code, Status, reasons};
use crate::terms::{first_untolerated, tolerates};

/// Run every filter in kube-scheduler's order: NodeUnschedulable, NodeName, TaintToleration,
/// NodeAffinity, NodePorts, NodeResourcesFit, VolumeBinding, PodTopologySpread,
/// InterPodAffinity.
pub fn filter(cycle: &Cycle, node: &NodeInfo) -> Status {
    let filters: [fn(&Cycle, &NodeInfo) -> Status; 9] = [
        node_unschedulable,
        node_name,
        taint_toleration,
        node_affinity,
        node_ports,
        resources_fit,
        volume_binding,
        topology_spread,
        inter_pod_affinity,
    ];
    for filter in filters {
        let status = filter(cycle, node);
        if !status.is_success() {
            return status;
        }
    }
    Status::success()
}

/// NodeUnschedulable: a cordoned node takes only pods tolerating
/// `node.kubernetes.io/unschedulable:NoSchedule`.
pub fn node_unschedulable(cycle: &Cycle, node: &NodeInfo) -> Status {
    if !node.unschedulable {
        return Status::success();
    }
    let taint = k8s_openapi::api::core::v1::Taint {
        key: "node.kubernetes.io/unschedulable".into(),
        effect: "NoSchedule".into(),
        ..Default::default()
    };
    if cycle.tolerations.iter().any(|t| tolerates(t, &taint)) {
        return Status::success();
    }
    Status::new(
        Code::UnschedulableAndUnresolvable,
        reasons::NODE_UNSCHEDULABLE,
    )
}

/// NodeName: `spec.nodeName`, when set, must be this node.
pub fn node_name(cycle: &Cycle, node: &NodeInfo) -> Status {
    let wanted = &cycle.pod.node_name;
    if wanted.is_empty() || *wanted == node.name {
        Status::success()
    } else {
        Status::new(Code::UnschedulableAndUnresolvable, reasons::NODE_NAME)
    }
}

/// TaintToleration: every NoSchedule and NoExecute taint must be tolerated.
pub fn taint_toleration(cycle: &Cycle, node: &NodeInfo) -> Status {
    match first_untolerated(
        &node.taints,
        &cycle.tolerations,
        &["NoSchedule", "NoExecute"],
    ) {
        None => Status::success(),
        Some(taint) => Status::new(
            Code::UnschedulableAndUnresolvable,
            reasons::untolerated_taint(&taint.key, taint.value.as_deref().unwrap_or_default()),
        ),
    }
}

/// NodeAffinity: `spec.nodeSelector` and required node affinity.
pub fn node_affinity(cycle: &Cycle, node: &NodeInfo) -> Status {
    if cycle.matches_node_affinity(node) {
        Status::success()
    } else {
        Status::new(Code::UnschedulableAndUnresolvable, reasons::NODE_AFFINITY)
    }
}

/// NodePorts: the pod's host ports must be free on the node.
pub fn node_ports(cycle: &Cycle, node: &NodeInfo) -> Status {
    let conflict = cycle
        .pod
        .host_ports
        .iter()
        .any(|wanted| node.used_ports.iter().any(|used| used.conflicts(wanted)));
    if conflict {
        Status::new(Code::Unschedulable, reasons::NODE_PORTS)
    } else {
        Status::success()
    }
}

/// NodeResourcesFit: requests must fit in allocatable minus what bound pods request. Every
/// insufficient resource is a reason; a request larger than the node's whole allocatable makes
/// the failure unresolvable (no preemption can help).
pub fn resources_fit(cycle: &Cycle, node: &NodeInfo) -> Status {
    let want = &cycle.pod.requests.requests;
    let have = &node.allocatable;
    let used = &node.requested;
    let mut status = Status::success();
    let mut fail = |reason: std::borrow::Cow<'static, str>, unresolvable: bool| {
        if status.code != Code::UnschedulableAndUnresolvable {
            status.code = if unresolvable {
                Code::UnschedulableAndUnresolvable
            } else {
                Code::Unschedulable
            };
        }
        status.reasons.push(reason);
    };
    if used.pods + 1 > have.pods {
        fail(reasons::TOO_MANY_PODS.into(), false);
    }
    if want.milli_cpu > 0 && want.milli_cpu > have.milli_cpu - used.milli_cpu {
        fail(
            reasons::insufficient("cpu").into(),
            want.milli_cpu > have.milli_cpu,
        );
    }
    if want.memory > 0 && want.memory > have.memory - used.memory {
        fail(
            reasons::insufficient("memory").into(),
            want.memory > have.memory,
        );
    }
    if want.ephemeral_storage > 0
        && want.ephemeral_storage > have.ephemeral_storage - used.ephemeral_storage
    {
        fail(
            reasons::insufficient("ephemeral-storage").into(),
            want.ephemeral_storage > have.ephemeral_storage,
        );
    }
    for (name, amount) in &want.scalar {
        if *amount == 0 {
            continue;
        }
        let allocatable = have.scalar.get(name).copied().unwrap_or(0);
        let requested = used.scalar.get(name).copied().unwrap_or(0);
        if *amount > allocatable - requested {
            fail(reasons::insufficient(name).into(), *amount > allocatable);
        }
    }
    status
}

/// VolumeBinding: a bound PV's node affinity must match the node. Unbound WaitForFirstConsumer
/// claims are provisioned on whichever node is chosen.
pub fn volume_binding(cycle: &Cycle, node: &NodeInfo) -> Status {
    for constraint in &cycle.volumes {
        if let VolumeConstraint::BoundPv(matcher) = constraint
            && !matcher.matches(&node.name, &node.labels)
        {
            return Status::new(
                Code::UnschedulableAndUnresolvable,
                reasons::VOLUME_NODE_CONFLICT,
            );
        }
    }
    Status::success()
}

/// PodTopologySpread (DoNotSchedule constraints): the node needs every constraint's topology
/// label, and placing the pod there must keep the skew within `maxSkew`.
pub fn topology_spread(cycle: &Cycle, node: &NodeInfo) -> Status {
    for constraint in cycle.spread.iter().filter(|c| c.hard) {
        let Some(value) = node.label(&constraint.topology_key) else {
            return Status::new(
                Code::UnschedulableAndUnresolvable,
                reasons::SPREAD_MISSING_LABEL,
            );
        };
        let matching = constraint.counts.get(value).copied().unwrap_or(0);
        let skew = matching + constraint.self_match - constraint.min_count;
        if skew > constraint.max_skew {
            return Status::new(Code::Unschedulable, reasons::SPREAD_NOT_MATCH);
        }
    }
    Status::success()
}

/// InterPodAffinity: the pod's required affinity (unresolvable when unmet), its required
/// anti-affinity, and assigned pods' required anti-affinity towards it.
pub fn inter_pod_affinity(cycle: &Cycle, node: &NodeInfo) -> Status {
    let pod = &cycle.pod;
    if !pod.required_affinity.is_empty() {
        let satisfied = pod.required_affinity.iter().enumerate().all(|(i, term)| {
            node.label(&term.topology_key).is_some_and(|value| {
                cycle.affinity_first_of_group
                    || cycle
                        .affinity_counts
                        .get(i)
                        .and_then(|c| c.get(value))
                        .copied()
                        .unwrap_or(0)
                        > 0
            })
        });
        if !satisfied {
            return Status::new(
                Code::UnschedulableAndUnresolvable,
                reasons::AFFINITY_NOT_MATCH,
            );
        }
    }
    for (i, term) in pod.required_anti_affinity.iter().enumerate() {
        if let Some(value) = node.label(&term.topology_key)
            && cycle
                .anti_affinity_counts
                .get(i)
                .and_then(|c| c.get(value))
                .copied()
                .unwrap_or(0)
                > 0
        {
            return Status::new(Code::Unschedulable, reasons::ANTI_AFFINITY_NOT_MATCH);
        }
    }
    if !cycle.existing_anti_affinity.is_empty() {
        for (key, value) in &node.labels {
            if cycle
                .existing_anti_affinity
                .get(&(key.clone(), value.clone()))
                .is_some_and(|count| *count > 0)
            {
                return Status::new(
                    Code::Unschedulable,
                    reasons::EXISTING_ANTI_AFFINITY_NOT_MATCH,
                );
            }
        }
    }
    Status::success()
}

#[cfg(test)]
mod tests;
