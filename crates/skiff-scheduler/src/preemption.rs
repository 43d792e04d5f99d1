//! Preemption (kube-scheduler's DefaultPreemption): when a pod fits nowhere, find a node where
//! evicting lower-priority pods would make it fit, evicting as few and as unimportant pods as
//! possible and, where it can, none that a PodDisruptionBudget protects.
//!
//! Invariants: only nodes whose failure was `Unschedulable` are tried (an unresolvable failure
//! cannot be fixed by evicting); only pods of strictly lower priority are victims; victims are
//! chosen by removing every lower-priority pod, then giving back (reprieving) the most important
//! ones first while the pod still fits, PDB-protected ones before the others; among candidate
//! nodes the one with the fewest PDB violations, then the lowest highest-victim priority, then the
//! lowest priority sum, then the fewest victims, then the latest-started top victim wins.

use std::collections::HashMap;
use std::sync::Arc;

use skiff_core::selector::LabelSelector;

use crate::cycle::Cycle;
use crate::filter::filter;
use crate::snapshot::{NodeInfo, PodInfo, Snapshot};
use crate::status::{Code, FitError, Status, reasons};

/// A PodDisruptionBudget as preemption sees it.
#[derive(Debug, Clone)]
pub struct PdbInfo {
    pub namespace: String,
    pub selector: LabelSelector,
    pub disruptions_allowed: i32,
}

/// The outcome of a successful preemption: where the pod is nominated and whom to evict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nomination {
    pub node: String,
    /// Victims as `namespace/name` keys, most important first.
    pub victims: Vec<String>,
    pub pdb_violations: usize,
}

/// The outcome of preemption: a nomination, or the "preemption: ..." message explaining why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Nominated(Nomination),
    Failed(String),
}

struct Candidate {
    node: String,
    victims: Vec<Arc<PodInfo>>,
    pdb_violations: usize,
}

/// Try to preempt for a pod that failed with `fit_error`.
pub fn preempt(
    snapshot: &Snapshot,
    cycle: &Cycle,
    fit_error: &FitError,
    pdbs: &[PdbInfo],
) -> Outcome {
    let pod = &cycle.pod;
    let spec = pod.pod.spec.as_ref();
    if spec.and_then(|s| s.preemption_policy.as_deref()) == Some("Never") {
        return Outcome::Failed(format!("preemption: {}", reasons::PREEMPTION_POLICY_NEVER));
    }
    let nominated = pod
        .pod
        .status
        .as_ref()
        .and_then(|s| s.nominated_node_name.as_deref())
        .unwrap_or_default();
    if !nominated.is_empty() {
        let unresolvable = fit_error
            .node_statuses
            .iter()
            .any(|(n, s)| n == nominated && s.code == Code::UnschedulableAndUnresolvable);
        if !unresolvable
            && let Some(node) = snapshot.node(nominated)
            && node
                .pods
                .iter()
                .any(|p| p.terminating && p.priority < pod.priority)
        {
            return Outcome::Failed(
                "preemption: not eligible due to a terminating pod on the nominated node.".into(),
            );
        }
    }
    let statuses: HashMap<&str, &Status> = fit_error
        .node_statuses
        .iter()
        .map(|(n, s)| (n.as_str(), s))
        .collect();
    let mut node_statuses = Vec::new();
    let mut candidates = Vec::new();
    for node in snapshot.nodes() {
        let failing = statuses.get(node.name.as_str());
        let unresolvable = fit_error.pre_filter_message.is_some()
            || failing.is_some_and(|s| s.code == Code::UnschedulableAndUnresolvable);
        if unresolvable {
            node_statuses.push((
                node.name.clone(),
                Status::new(
                    Code::UnschedulableAndUnresolvable,
                    reasons::PREEMPTION_NOT_HELPFUL,
                ),
            ));
            continue;
        }
        match select_victims(snapshot, cycle, node, pdbs) {
            Ok(candidate) => candidates.push(candidate),
            Err(status) => node_statuses.push((node.name.clone(), status)),
        }
    }
    match pick(candidates) {
        Some(best) => Outcome::Nominated(Nomination {
            node: best.node,
            victims: best.victims.iter().map(|v| v.key()).collect(),
            pdb_violations: best.pdb_violations,
        }),
        None => {
            let inner = FitError {
                num_all_nodes: snapshot.nodes().len(),
                pre_filter_message: None,
                node_statuses,
                post_filter_message: None,
            };
            Outcome::Failed(format!("preemption: {}", inner.message()))
        }
    }
}

fn more_important(a: &PodInfo, b: &PodInfo) -> std::cmp::Ordering {
    b.priority
        .cmp(&a.priority)
        .then_with(|| a.start_time.cmp(&b.start_time))
}

fn select_victims(
    snapshot: &Snapshot,
    cycle: &Cycle,
    node: &NodeInfo,
    pdbs: &[PdbInfo],
) -> Result<Candidate, Status> {
    let pod = &cycle.pod;
    let mut potential: Vec<Arc<PodInfo>> = node
        .pods
        .iter()
        .filter(|p| p.priority < pod.priority)
        .cloned()
        .collect();
    if potential.is_empty() {
        return Err(Status::new(
            Code::UnschedulableAndUnresolvable,
            reasons::NO_PREEMPTION_VICTIMS,
        ));
    }
    let mut trial_node = node.clone();
    let mut trial_cycle = cycle.clone();
    for victim in &potential {
        trial_node.remove_pod(&victim.uid, &victim.key());
        trial_cycle.account(snapshot, victim, node, -1);
    }
    let status = filter(&trial_cycle, &trial_node);
    if !status.is_success() {
        return Err(status);
    }
    potential.sort_by(|a, b| more_important(a, b));
    let (violating, non_violating) = split_by_pdb(&potential, pdbs);
    let mut victims = Vec::new();
    let mut pdb_violations = 0;
    for (pods, counts_as_violation) in [(violating, true), (non_violating, false)] {
        for candidate in pods {
            trial_node.add_pod(candidate.clone());
            trial_cycle.account(snapshot, &candidate, node, 1);
            if !filter(&trial_cycle, &trial_node).is_success() {
                trial_node.remove_pod(&candidate.uid, &candidate.key());
                trial_cycle.account(snapshot, &candidate, node, -1);
                if counts_as_violation {
                    pdb_violations += 1;
                }
                victims.push(candidate);
            }
        }
    }
    if victims.is_empty() {
        return Err(Status::new(
            Code::Error,
            format!("expected at least one victim pod on node \"{}\"", node.name),
        ));
    }
    victims.sort_by(|a, b| more_important(a, b));
    Ok(Candidate {
        node: node.name.clone(),
        victims,
        pdb_violations,
    })
}

/// Split pods (most important first) into those whose eviction would exceed a PDB's allowed
/// disruptions and the rest.
fn split_by_pdb(pods: &[Arc<PodInfo>], pdbs: &[PdbInfo]) -> (Vec<Arc<PodInfo>>, Vec<Arc<PodInfo>>) {
    let mut allowed: Vec<i32> = pdbs.iter().map(|p| p.disruptions_allowed).collect();
    let mut violating = Vec::new();
    let mut non_violating = Vec::new();
    for pod in pods {
        let mut violates = false;
        for (i, pdb) in pdbs.iter().enumerate() {
            if pdb.namespace != pod.namespace || pdb.selector.is_everything() {
                continue;
            }
            if !pdb.selector.matches(&pod.labels) {
                continue;
            }
            allowed[i] -= 1;
            if allowed[i] < 0 {
                violates = true;
            }
        }
        if violates {
            violating.push(pod.clone());
        } else {
            non_violating.push(pod.clone());
        }
    }
    (violating, non_violating)
}

fn pick(mut candidates: Vec<Candidate>) -> Option<Candidate> {
    let key = |c: &Candidate| {
        let top = c.victims.first();
        let highest = top.map(|v| v.priority).unwrap_or(i32::MIN);
        let sum: i64 = c
            .victims
            .iter()
            .map(|v| i64::from(v.priority) + i64::from(i32::MAX) + 1)
            .sum();
        let latest_start = top.map(|v| v.start_time).unwrap_or(0);
        (
            c.pdb_violations,
            highest,
            sum,
            c.victims.len(),
            std::cmp::Reverse(latest_start),
        )
    };
    candidates.sort_by_key(key);
    if candidates.is_empty() {
        None
    } else {
        Some(candidates.swap_remove(0))
    }
}

#[cfg(test)]
mod tests;
