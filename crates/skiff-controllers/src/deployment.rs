//! The Deployment controller: one pure `plan(deployment, replica sets, pods, now)` step that
//! does what kube-controller-manager's `syncDeployment` does in one pass, and a thin shell.
//!
//! A pass finds the new ReplicaSet (the one whose template equals the Deployment's, ignoring the
//! `pod-template-hash` label) or creates `<name>-<pod-template-hash>`, gives it the next
//! revision (a rollback reuses the matching old ReplicaSet and records its former revision in
//! `deployment.kubernetes.io/revision-history`), then either scales proportionally (a scaling
//! event or a paused Deployment), or takes one step of the strategy (RollingUpdate: scale the new
//! ReplicaSet up within `maxSurge`, then old ones down within `maxUnavailable`; Recreate: old to
//! zero, wait for their pods to be gone, new to full size), cleans up history beyond
//! `revisionHistoryLimit` when complete, and computes the status and conditions.
//!
//! Invariants: never more than `replicas + maxSurge` pods requested across ReplicaSets during a
//! rolling update and never fewer than `replicas - maxUnavailable` available ones scaled away;
//! status counts come only from the ReplicaSets' statuses; `observedGeneration` is the
//! generation that was planned for.

mod rolling;
pub mod shell;
mod status;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

use crate::events::Record;
use crate::workload::{controller_of, is_controlled_by, scaled_value};

pub use status::{TIMED_OUT_REASON, deployment_complete};

/// The revision annotation on Deployments and ReplicaSets.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Former revisions of a ReplicaSet that was rolled back to.
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
/// The Deployment's replicas when the ReplicaSet was last scaled.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// The Deployment's replicas + maxSurge when the ReplicaSet was last scaled.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// The label that makes each ReplicaSet's pods distinct.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// Longest `revision-history` annotation kept.
const MAX_REVISION_HISTORY_CHARS: usize = 2000;

/// One write (or event) the shell performs.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Create this ReplicaSet.
    CreateReplicaSet(Box<ReplicaSet>),
    /// Replace this ReplicaSet (carries the resourceVersion it was read at).
    UpdateReplicaSet(Box<ReplicaSet>),
    /// Delete an old ReplicaSet (history cleanup).
    DeleteReplicaSet { name: String, uid: String },
    /// Set the Deployment's revision annotation.
    SetRevision(String),
    /// Replace the Deployment's status.
    UpdateStatus(Box<DeploymentStatus>),
    /// Record an event on the Deployment.
    Event(Record),
}

/// The outcome of one pass.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub changes: Vec<Change>,
    /// Come back after this many seconds even if nothing changes (progress deadline,
    /// minReadySeconds).
    pub requeue_after_seconds: Option<i64>,
}

/// The ReplicaSets a Deployment controls (by controller reference).
pub fn owned<'a>(deployment: &Deployment, replica_sets: &'a [ReplicaSet]) -> Vec<&'a ReplicaSet> {
    let uid = deployment.metadata.uid.as_deref().unwrap_or_default();
    replica_sets
        .iter()
        .filter(|rs| is_controlled_by(&rs.metadata, uid))
        .collect()
}

/// Orphaned ReplicaSets in the Deployment's namespace that its selector matches (to adopt).
pub fn adoptable<'a>(
    deployment: &Deployment,
    replica_sets: &'a [ReplicaSet],
) -> Vec<&'a ReplicaSet> {
    let selector = crate::workload::selector(deployment.spec.as_ref().map(|s| &s.selector));
    replica_sets
        .iter()
        .filter(|rs| {
            controller_of(&rs.metadata).is_none() && rs.metadata.deletion_timestamp.is_none()
        })
        .filter(|rs| rs.metadata.namespace == deployment.metadata.namespace)
        .filter(|rs| selector.matches(&crate::workload::labels_of(&rs.metadata)))
        .collect()
}

/// Plan one pass for a Deployment over the ReplicaSets it owns and their pods.
pub fn plan(
    deployment: &Deployment,
    replica_sets: &[ReplicaSet],
    pods: &[Pod],
    now: Timestamp,
) -> Plan {
    // Wait until the ReplicaSet controller has caught up with our last scaling: its status
    // counts are what the next step is computed from.
    let stale = owned(deployment, replica_sets).iter().any(|rs| {
        rs.status.as_ref().is_some_and(|s| {
            s.observed_generation.unwrap_or(0) < rs.metadata.generation.unwrap_or(0)
        })
    });
    if stale {
        return Plan {
            changes: Vec::new(),
            requeue_after_seconds: Some(1),
        };
    }
    let mut ctx = rolling::Pass::new(deployment, owned(deployment, replica_sets), pods, now);
    ctx.run();
    ctx.finish()
}

/// `spec.replicas` (default 1).
pub fn replicas(deployment: &Deployment) -> i32 {
    deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1)
}

fn rolling_params(
    deployment: &Deployment,
) -> Option<&k8s_openapi::api::apps::v1::RollingUpdateDeployment> {
    let strategy = deployment.spec.as_ref()?.strategy.as_ref();
    match strategy.and_then(|s| s.type_.as_deref()) {
        Some("Recreate") => None,
        _ => strategy
            .and_then(|s| s.rolling_update.as_ref())
            .or(Some(&DEFAULT_ROLLING)),
    }
}

static DEFAULT_ROLLING: k8s_openapi::api::apps::v1::RollingUpdateDeployment =
    k8s_openapi::api::apps::v1::RollingUpdateDeployment {
        max_surge: None,
        max_unavailable: None,
    };

/// Whether the Deployment uses the Recreate strategy.
pub fn is_recreate(deployment: &Deployment) -> bool {
    rolling_params(deployment).is_none()
}

/// (maxSurge, maxUnavailable) resolved against the replicas with Kubernetes' rounding (surge
/// rounds up, unavailable down; both zero makes unavailable 1).
pub fn fenceposts(deployment: &Deployment) -> (i32, i32) {
    let Some(params) = rolling_params(deployment) else {
        return (0, 0);
    };
    let desired = replicas(deployment);
    let quarter = k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String("25%".into());
    let surge =
        scaled_value(params.max_surge.as_ref().unwrap_or(&quarter), desired, true).unwrap_or(0);
    let mut unavailable = scaled_value(
        params.max_unavailable.as_ref().unwrap_or(&quarter),
        desired,
        false,
    )
    .unwrap_or(0);
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge.max(0), unavailable.max(0))
}

/// kube-controller-manager's `MaxSurge`.
pub fn max_surge(deployment: &Deployment) -> i32 {
    if is_recreate(deployment) {
        return 0;
    }
    fenceposts(deployment).0
}

/// kube-controller-manager's `MaxUnavailable` (capped at the replicas).
pub fn max_unavailable(deployment: &Deployment) -> i32 {
    let desired = replicas(deployment);
    if is_recreate(deployment) || desired == 0 {
        return 0;
    }
    fenceposts(deployment).1.min(desired)
}

/// A ReplicaSet's revision (0 when unset or unparsable).
pub fn revision(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> i64 {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// Whether two pod templates are equal ignoring the `pod-template-hash` label.
pub fn equal_ignore_hash(
    a: &k8s_openapi::api::core::v1::PodTemplateSpec,
    b: &k8s_openapi::api::core::v1::PodTemplateSpec,
) -> bool {
    let strip = |t: &k8s_openapi::api::core::v1::PodTemplateSpec| {
        let mut t = t.clone();
        if let Some(meta) = t.metadata.as_mut()
            && let Some(labels) = meta.labels.as_mut()
        {
            labels.remove(POD_TEMPLATE_HASH);
            if labels.is_empty() {
                meta.labels = None;
            }
        }
        serde_json::to_value(t).unwrap_or_default()
    };
    strip(a) == strip(b)
}

/// Annotations a Deployment passes to its ReplicaSets (all but the ones kubectl and the
/// controller own).
pub fn copyable_annotations(deployment: &Deployment) -> BTreeMap<String, String> {
    let skip = [
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION,
        REVISION_HISTORY,
        DESIRED_REPLICAS,
        MAX_REPLICAS,
        "deprecated.deployment.rollback.to",
    ];
    deployment
        .metadata
        .annotations
        .iter()
        .flatten()
        .filter(|(k, _)| !skip.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Append a former revision to a `revision-history` value within the length limit.
pub fn append_revision_history(history: &str, old_revision: &str) -> Option<String> {
    if history.is_empty() {
        return Some(old_revision.to_string());
    }
    let mut parts: Vec<&str> = history.split(',').collect();
    let mut total = history.len() + old_revision.len() + 1;
    let mut start = 0;
    while total > MAX_REVISION_HISTORY_CHARS && start < parts.len() {
        total -= parts[start].len() + 1;
        start += 1;
    }
    if total > MAX_REVISION_HISTORY_CHARS {
        return None;
    }
    parts = parts.split_off(start);
    parts.push(old_revision);
    Some(parts.join(","))
}

#[cfg(test)]
mod simulation;
#[cfg(test)]
mod tests;
