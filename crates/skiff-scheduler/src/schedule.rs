//! One scheduling decision: pre-filter, filter the nodes (stopping once enough feasible nodes
//! are found, like kube-scheduler's `percentageOfNodesToScore`), score the feasible ones, pick
//! the best; or explain why nothing fits.
//!
//! Invariants: pure over the snapshot (the caller assumes the pod onto the chosen node); the
//! search starts where the previous one stopped, so load spreads over all nodes; ties go to the
//! first best node in search order (deterministic for a given snapshot and start index).

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use crate::cycle::Cycle;
use crate::filter::filter;
use crate::score::score;
use crate::snapshot::{PodInfo, Snapshot};
use crate::status::{FitError, Status, reasons};

/// Below this many nodes every node is evaluated.
const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
/// The adaptive percentage never goes below this.
const MIN_FEASIBLE_NODES_PERCENTAGE: usize = 5;

/// A successful decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub node: String,
    /// Nodes the filters ran on.
    pub evaluated: usize,
    /// Nodes that passed them.
    pub feasible: usize,
}

/// Why a pod was not scheduled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The cluster has no nodes at all.
    #[error("{}", reasons::NO_NODES)]
    NoNodes,
    /// No node fits (the message is kube-scheduler's aggregate).
    #[error("{}", .0.message())]
    Fit(Box<FitError>),
}

/// Scheduler settings and the rotating start of the node search.
#[derive(Debug, Clone, Default)]
pub struct Algorithm {
    /// Percentage of nodes to find feasible before scoring (0: kube-scheduler's adaptive rule).
    pub percentage_of_nodes_to_score: usize,
    next_start: usize,
}

impl Algorithm {
    /// With kube-scheduler's defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many feasible nodes to find before scoring.
    pub fn feasible_nodes_to_find(&self, all: usize) -> usize {
        if all < MIN_FEASIBLE_NODES_TO_FIND {
            return all;
        }
        let percentage = if self.percentage_of_nodes_to_score == 0 {
            50usize
                .saturating_sub(all / 125)
                .max(MIN_FEASIBLE_NODES_PERCENTAGE)
        } else {
            self.percentage_of_nodes_to_score.min(100)
        };
        (all * percentage / 100).max(MIN_FEASIBLE_NODES_TO_FIND)
    }

    /// Decide where a pod goes. On a fit error the cycle state is returned too, for preemption.
    pub fn schedule(
        &mut self,
        snapshot: &Snapshot,
        pod: Arc<Pod>,
    ) -> Result<Decision, (Error, Option<Box<Cycle>>)> {
        let nodes = snapshot.nodes();
        if nodes.is_empty() {
            return Err((Error::NoNodes, None));
        }
        let info = Arc::new(PodInfo::new(pod));
        let cycle = match Cycle::new(snapshot, info) {
            Ok(cycle) => cycle,
            Err(status) => {
                let fit = FitError {
                    num_all_nodes: nodes.len(),
                    pre_filter_message: Some(status.message()),
                    node_statuses: nodes
                        .iter()
                        .map(|n| (n.name.clone(), status.clone()))
                        .collect(),
                    post_filter_message: None,
                };
                return Err((Error::Fit(Box::new(fit)), None));
            }
        };
        let want = self.feasible_nodes_to_find(nodes.len());
        let mut feasible = Vec::with_capacity(want.min(nodes.len()));
        let mut failures: Vec<(String, Status)> = Vec::new();
        let start = self.next_start % nodes.len();
        let mut evaluated = 0;
        for offset in 0..nodes.len() {
            let node = &nodes[(start + offset) % nodes.len()];
            evaluated += 1;
            let status = filter(&cycle, node);
            if status.is_success() {
                feasible.push(node);
                if feasible.len() >= want {
                    break;
                }
            } else {
                failures.push((node.name.clone(), status));
            }
        }
        self.next_start = (start + evaluated) % nodes.len();
        if feasible.is_empty() {
            let fit = FitError {
                num_all_nodes: nodes.len(),
                pre_filter_message: None,
                node_statuses: failures,
                post_filter_message: None,
            };
            return Err((Error::Fit(Box::new(fit)), Some(Box::new(cycle))));
        }
        let chosen = if feasible.len() == 1 {
            feasible[0]
        } else {
            let scores = score(snapshot, &cycle, &feasible);
            let mut best = 0;
            for (i, s) in scores.iter().enumerate() {
                if *s > scores[best] {
                    best = i;
                }
            }
            feasible[best]
        };
        Ok(Decision {
            node: chosen.name.clone(),
            evaluated,
            feasible: feasible.len(),
        })
    }
}

/// A copy of a pod bound to a node (the object is never mutated in place), for assuming it in
/// the snapshot before the binding is confirmed by the API.
pub fn assumed(pod: &Pod, node: &str) -> Pod {
    let mut copy = pod.clone();
    if let Some(spec) = copy.spec.as_mut() {
        spec.node_name = Some(node.to_string());
    }
    copy
}

#[cfg(test)]
mod tests;
