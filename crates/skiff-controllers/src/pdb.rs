//! PodDisruptionBudget status: `expectedPods`, `currentHealthy`, `desiredHealthy`,
//! `disruptionsAllowed` and the `DisruptionAllowed` condition, from the pods the selector
//! matches. Percentages are taken of the expected pods, rounding up (Kubernetes' rule).
//!
//! Invariants: `disruptionsAllowed` is never negative; a pod counts as healthy only when Ready
//! and not being deleted; expected pods are the matching non-terminal pods (a simplification:
//! kube-controller-manager reads the owning controllers' scale instead).

pub mod shell;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;

use crate::workload::{is_ready, is_terminal, labels_of, scaled_value, selector, time};

/// The status the PDB should have, or `None` if it has it already.
pub fn plan(
    pdb: &PodDisruptionBudget,
    pods: &[Pod],
    now: Timestamp,
) -> Option<PodDisruptionBudgetStatus> {
    let spec = pdb.spec.clone().unwrap_or_default();
    let select = selector(spec.selector.as_ref());
    let matching: Vec<&Pod> = pods
        .iter()
        .filter(|p| p.metadata.namespace == pdb.metadata.namespace && !is_terminal(p))
        .filter(|p| select.matches(&labels_of(&p.metadata)))
        .collect();
    let expected = matching.len() as i32;
    let healthy = matching.iter().filter(|p| is_ready(p)).count() as i32;
    let desired = match (&spec.min_available, &spec.max_unavailable) {
        (Some(min), _) => scaled_value(min, expected, true).unwrap_or(expected),
        (None, Some(max)) => (expected - scaled_value(max, expected, true).unwrap_or(0)).max(0),
        (None, None) => expected,
    };
    let allowed = (healthy - desired).max(0);
    let before = pdb.status.clone().unwrap_or_default();
    let (status_word, reason, message) = if allowed > 0 {
        ("True", "SufficientPods", "")
    } else {
        ("False", "InsufficientPods", "")
    };
    let previous = before
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "DisruptionAllowed");
    let condition = Condition {
        type_: "DisruptionAllowed".into(),
        status: status_word.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: pdb.metadata.generation,
        last_transition_time: match previous {
            Some(p) if p.status == status_word => p.last_transition_time.clone(),
            _ => time(now),
        },
    };
    let status = PodDisruptionBudgetStatus {
        current_healthy: healthy,
        desired_healthy: desired,
        disruptions_allowed: allowed,
        expected_pods: expected,
        observed_generation: pdb.metadata.generation,
        disrupted_pods: before.disrupted_pods.clone(),
        conditions: Some(vec![condition]),
    };
    (Some(&status) != pdb.status.as_ref()).then_some(status)
}

#[cfg(test)]
mod tests;
