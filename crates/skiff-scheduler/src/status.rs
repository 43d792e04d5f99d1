//! Filter outcomes and the aggregate failure message, in kube-scheduler's words.
//!
//! Invariants: a failure says what kind it is (`Unschedulable`: might fit if other pods went
//! away, so preemption may help; `UnschedulableAndUnresolvable`: will not fit whatever is
//! removed; `Error`: something is wrong with the input); the aggregate message is built exactly
//! like kube-scheduler's `FitError.Error()`: "0/N nodes are available:" then either the
//! pre-filter message or the per-reason histogram (`"<count> <reason>"` strings sorted as
//! strings, joined by ", "), each part followed by ".", then the post-filter (preemption)
//! message the same way.

use std::borrow::Cow;
use std::collections::HashMap;

/// What kind of outcome a filter (or pre-filter) had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Success,
    /// The pod does not fit now; removing pods (preemption) might help.
    Unschedulable,
    /// The pod cannot fit on this node whatever is removed.
    UnschedulableAndUnresolvable,
    /// The input was wrong (an internal error for this pod).
    Error,
}

/// A filter outcome with its reasons (kube-scheduler's `framework.Status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub code: Code,
    pub reasons: Vec<Cow<'static, str>>,
}

impl Status {
    /// Success.
    pub const fn success() -> Self {
        Self {
            code: Code::Success,
            reasons: Vec::new(),
        }
    }

    /// A failure with one reason.
    pub fn new(code: Code, reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            reasons: vec![reason.into()],
        }
    }

    /// Whether the outcome is success.
    pub fn is_success(&self) -> bool {
        self.code == Code::Success
    }

    /// The reasons joined with ", " (kube-scheduler's `Status.Message()`).
    pub fn message(&self) -> String {
        self.reasons.join(", ")
    }
}

/// Why a pod fits no node (kube-scheduler's `FitError` with its `Diagnosis`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FitError {
    pub num_all_nodes: usize,
    /// Set when a pre-filter failed for the pod as a whole (same status for every node).
    pub pre_filter_message: Option<String>,
    /// The failing status of each node that was evaluated, by node name.
    pub node_statuses: Vec<(String, Status)>,
    /// The preemption outcome, already prefixed with "preemption: ".
    pub post_filter_message: Option<String>,
}

/// kube-scheduler's `NoNodeAvailableMsg`.
pub fn no_node_available(num_all_nodes: usize) -> String {
    format!("0/{num_all_nodes} nodes are available:")
}

impl FitError {
    /// The aggregate message ("0/3 nodes are available: 1 node(s) had untolerated taint {a: b},
    /// 2 Insufficient cpu. preemption: ...").
    pub fn message(&self) -> String {
        let mut message = no_node_available(self.num_all_nodes);
        match &self.pre_filter_message {
            Some(pre_filter) => {
                message.push(' ');
                message.push_str(pre_filter);
                message.push('.');
            }
            None => {
                let histogram = histogram(&self.node_statuses);
                if !histogram.is_empty() {
                    message.push(' ');
                    message.push_str(&histogram.join(", "));
                    message.push('.');
                }
            }
        }
        if let Some(post_filter) = &self.post_filter_message {
            message.push(' ');
            message.push_str(post_filter);
            message.push('.');
        }
        message
    }
}

/// `"<count> <reason>"` for every distinct reason, sorted as strings (as Go's `sort.Strings`).
pub fn histogram(node_statuses: &[(String, Status)]) -> Vec<String> {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for (_, status) in node_statuses {
        for reason in &status.reasons {
            *counts.entry(reason.as_ref()).or_insert(0) += 1;
        }
    }
    let mut lines: Vec<String> = counts
        .into_iter()
        .map(|(reason, count)| format!("{count} {reason}"))
        .collect();
    lines.sort();
    lines
}

/// Reasons kube-scheduler's plugins give, word for word.
pub mod reasons {
    pub const NODE_NAME: &str = "node(s) didn't match the requested node name";
    pub const NODE_UNSCHEDULABLE: &str = "node(s) were unschedulable";
    pub const NODE_AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";
    pub const NODE_PORTS: &str = "node(s) didn't have free ports for the requested pod ports";
    pub const TOO_MANY_PODS: &str = "Too many pods";
    pub const AFFINITY_NOT_MATCH: &str = "node(s) didn't match pod affinity rules";
    pub const ANTI_AFFINITY_NOT_MATCH: &str = "node(s) didn't match pod anti-affinity rules";
    pub const EXISTING_ANTI_AFFINITY_NOT_MATCH: &str =
        "node(s) didn't satisfy existing pods anti-affinity rules";
    pub const SPREAD_NOT_MATCH: &str = "node(s) didn't match pod topology spread constraints";
    pub const SPREAD_MISSING_LABEL: &str =
        "node(s) didn't match pod topology spread constraints (missing required label)";
    pub const VOLUME_NODE_CONFLICT: &str = "node(s) had volume node affinity conflict";
    pub const VOLUME_BIND_CONFLICT: &str =
        "node(s) didn't find available persistent volumes to bind";
    pub const UNBOUND_IMMEDIATE_PVC: &str = "pod has unbound immediate PersistentVolumeClaims";
    pub const PREEMPTION_NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
    pub const NO_PREEMPTION_VICTIMS: &str = "No preemption victims found for incoming pod";
    pub const PREEMPTION_POLICY_NEVER: &str = "not eligible due to preemptionPolicy=Never.";
    pub const NO_NODES: &str = "no nodes available to schedule pods";

    /// "node(s) had untolerated taint {key: value}".
    pub fn untolerated_taint(key: &str, value: &str) -> String {
        format!("node(s) had untolerated taint {{{key}: {value}}}")
    }

    /// "Insufficient cpu" and the like.
    pub fn insufficient(resource: &str) -> String {
        format!("Insufficient {resource}")
    }
}

#[cfg(test)]
mod tests;
