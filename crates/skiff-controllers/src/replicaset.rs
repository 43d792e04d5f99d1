//! The ReplicaSet controller: keep `replicas` active pods from the template, adopting orphans
//! the selector matches and releasing owned pods it no longer matches; delete surplus pods in
//! Kubernetes' order; report status.
//!
//! Invariants: only active pods (not terminal, not being deleted) count towards the replicas;
//! at most `BURST` pods are created or deleted per pass, creations in concurrent batches of 1, 2,
//! 4, ... ([`slow_start_batches`]) that stop at the first failing batch; the pods deleted first are the least
//! valuable (unscheduled < pending < not ready < low deletion cost < doubled up on a node <
//! recently ready < restarted more < newer), as kube-controller-manager ranks them.

pub mod shell;

use std::cmp::Ordering;
use std::collections::HashMap;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;

use crate::events::Record;
use crate::workload::{
    available_at, controller_of, is_active, is_available, is_controlled_by, is_ready, labels_of,
    owner_reference, ready_since, selector,
};

/// Most pods created or deleted in one pass (kube's `burstReplicas`).
pub const BURST: usize = 500;

/// The first batch of a slow start (kube's `SlowStartInitialBatchSize`).
pub const SLOW_START_INITIAL_BATCH: usize = 1;

/// kube's `slowStartBatch`: the sizes of the concurrent batches `total` creations go out in,
/// starting at `initial` and doubling, the last one what is left. A create that fails for every
/// pod (quota, admission, a fenced-out leader) then costs one request, not `total`; one that
/// succeeds reaches `total` in about log2(total) round trips instead of `total`.
pub fn slow_start_batches(total: usize, initial: usize) -> Vec<usize> {
    let mut batches = Vec::new();
    let mut left = total;
    let mut size = initial.max(1);
    while left > 0 {
        let batch = size.min(left);
        batches.push(batch);
        left -= batch;
        size = size.saturating_mul(2);
    }
    batches
}

/// One write the shell performs.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Create a pod (named by `generateName`); record `SuccessfulCreate` with its name.
    CreatePod(Box<Pod>),
    /// Delete a pod; record `SuccessfulDelete`.
    DeletePod { name: String, uid: String },
    /// Add our controller reference to an orphan.
    AdoptPod { name: String, uid: String },
    /// Remove our controller reference from a pod the selector no longer matches.
    ReleasePod { name: String, uid: String },
    /// Replace the status.
    UpdateStatus(Box<ReplicaSetStatus>),
    /// Record an event.
    Event(Record),
}

/// The outcome of a pass.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub changes: Vec<Change>,
    pub requeue_after_seconds: Option<i64>,
}

/// A pod built from a template for an owner (shared with Job and DaemonSet).
pub fn pod_from_template(
    template: &PodTemplateSpec,
    owner_api_version: &str,
    owner_kind: &str,
    owner: &ObjectMeta,
    generate_name: &str,
) -> Pod {
    let template_meta = template.metadata.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(generate_name.to_string()),
            namespace: owner.namespace.clone(),
            labels: template_meta.labels,
            annotations: template_meta.annotations,
            finalizers: template_meta.finalizers,
            owner_references: Some(vec![owner_reference(owner_api_version, owner_kind, owner)]),
            ..Default::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

/// Plan one pass for a ReplicaSet over the pods of its namespace.
pub fn plan(rs: &ReplicaSet, pods: &[Pod], now: Timestamp) -> Plan {
    let mut changes = Vec::new();
    let uid = rs.metadata.uid.as_deref().unwrap_or_default();
    let name = rs.metadata.name.as_deref().unwrap_or_default();
    let spec = rs.spec.clone().unwrap_or_default();
    let select = selector(Some(&spec.selector));
    let deleting = rs.metadata.deletion_timestamp.is_some();
    let mut mine: Vec<&Pod> = Vec::new();
    for pod in pods
        .iter()
        .filter(|p| p.metadata.namespace == rs.metadata.namespace)
    {
        let matches = select.matches(&labels_of(&pod.metadata));
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        let pod_uid = pod.metadata.uid.clone().unwrap_or_default();
        if is_controlled_by(&pod.metadata, uid) {
            if matches {
                mine.push(pod);
            } else if !deleting {
                changes.push(Change::ReleasePod {
                    name: pod_name,
                    uid: pod_uid,
                });
            }
        } else if matches
            && !deleting
            && controller_of(&pod.metadata).is_none()
            && pod.metadata.deletion_timestamp.is_none()
        {
            changes.push(Change::AdoptPod {
                name: pod_name,
                uid: pod_uid,
            });
            mine.push(pod);
        }
    }
    let active: Vec<&Pod> = mine.iter().copied().filter(|p| is_active(p)).collect();
    let want = spec.replicas.unwrap_or(1).max(0) as usize;
    if !deleting {
        if active.len() < want {
            if let Some(template) = spec.template.as_ref() {
                let missing = (want - active.len()).min(BURST);
                for _ in 0..missing {
                    let pod = pod_from_template(
                        template,
                        "apps/v1",
                        "ReplicaSet",
                        &rs.metadata,
                        &format!("{name}-"),
                    );
                    changes.push(Change::CreatePod(Box::new(pod)));
                }
            }
        } else if active.len() > want {
            let surplus = (active.len() - want).min(BURST);
            for pod in pods_to_delete(&active, surplus) {
                changes.push(Change::DeletePod {
                    name: pod.metadata.name.clone().unwrap_or_default(),
                    uid: pod.metadata.uid.clone().unwrap_or_default(),
                });
                changes.push(Change::Event(Record::normal(
                    "SuccessfulDelete",
                    format!(
                        "Deleted pod: {}",
                        pod.metadata.name.as_deref().unwrap_or_default()
                    ),
                )));
            }
        }
    }
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let template_labels = spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let status = ReplicaSetStatus {
        replicas: active.len() as i32,
        fully_labeled_replicas: Some(
            active
                .iter()
                .filter(|p| {
                    let labels = labels_of(&p.metadata);
                    template_labels
                        .iter()
                        .all(|(k, v)| labels.get(k) == Some(v))
                })
                .count() as i32,
        ),
        ready_replicas: Some(active.iter().filter(|p| is_ready(p)).count() as i32),
        available_replicas: Some(
            active
                .iter()
                .filter(|p| is_available(p, min_ready, now))
                .count() as i32,
        ),
        observed_generation: rs.metadata.generation,
        conditions: rs.status.as_ref().and_then(|s| s.conditions.clone()),
        terminating_replicas: None,
    };
    if rs.status.as_ref() != Some(&status) {
        changes.push(Change::UpdateStatus(Box::new(status)));
    }
    let requeue_after_seconds = active
        .iter()
        .filter_map(|p| available_at(p, min_ready, now))
        .map(|at| at.duration_since(now).as_secs().max(0) + 1)
        .min();
    Plan {
        changes,
        requeue_after_seconds,
    }
}

fn phase_rank(pod: &Pod) -> u8 {
    match crate::workload::phase(pod) {
        "Pending" => 0,
        "Unknown" => 1,
        "Running" => 2,
        _ => 0,
    }
}

fn deletion_cost(pod: &Pod) -> i64 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("controller.kubernetes.io/pod-deletion-cost"))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| c.restart_count).max().unwrap_or(0))
        .unwrap_or(0)
}

fn node_of(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or_default()
}

/// kube's `ActivePodsWithRanks.Less`: whether `a` should be deleted before `b`.
pub fn delete_first(a: &Pod, b: &Pod, rank_a: usize, rank_b: usize) -> Ordering {
    let assigned = |p: &Pod| !node_of(p).is_empty();
    assigned(a)
        .cmp(&assigned(b))
        .then_with(|| phase_rank(a).cmp(&phase_rank(b)))
        .then_with(|| is_ready(a).cmp(&is_ready(b)))
        .then_with(|| deletion_cost(a).cmp(&deletion_cost(b)))
        .then_with(|| rank_b.cmp(&rank_a))
        .then_with(|| {
            // Ready more recently (or unknown) first.
            match (is_ready(a), is_ready(b)) {
                (true, true) => {
                    let since = |p: &Pod| ready_since(p).flatten().map(|t| t.as_second());
                    match (since(a), since(b)) {
                        (Some(x), Some(y)) => y.cmp(&x),
                        (None, Some(_)) => Ordering::Less,
                        (Some(_), None) => Ordering::Greater,
                        (None, None) => Ordering::Equal,
                    }
                }
                _ => Ordering::Equal,
            }
        })
        .then_with(|| restarts(b).cmp(&restarts(a)))
        .then_with(|| {
            let created = |p: &Pod| {
                p.metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|t| t.0.as_second())
            };
            match (created(a), created(b)) {
                (None, Some(_)) => Ordering::Less,
                (Some(_), None) => Ordering::Greater,
                (x, y) => y.cmp(&x),
            }
        })
}

/// The `count` pods to delete first, ranking pods on crowded nodes higher.
pub fn pods_to_delete<'a>(pods: &[&'a Pod], count: usize) -> Vec<&'a Pod> {
    let mut per_node: HashMap<&str, usize> = HashMap::new();
    for pod in pods {
        *per_node.entry(node_of(pod)).or_insert(0) += 1;
    }
    let mut ranked: Vec<(&Pod, usize)> = pods
        .iter()
        .map(|p| {
            let node = node_of(p);
            let rank = if node.is_empty() {
                0
            } else {
                per_node.get(node).copied().unwrap_or(0)
            };
            (*p, rank)
        })
        .collect();
    ranked.sort_by(|(a, ra), (b, rb)| delete_first(a, b, *ra, *rb));
    ranked.into_iter().take(count).map(|(p, _)| p).collect()
}

#[cfg(test)]
mod tests;
