//! The DaemonSet controller: one pod on every eligible node (the node matches the template's
//! nodeSelector and required node affinity, and every NoSchedule/NoExecute taint is tolerated,
//! counting the tolerations every daemon pod gets), pinned to its node with node affinity on
//! `metadata.name` (the scheduler binds it); rolling updates bounded by `maxUnavailable`;
//! revisions as ControllerRevisions (shared with StatefulSet).
//!
//! Invariants: never two live pods on one node; a pod on an ineligible node is deleted; an
//! update deletes old-revision pods only while fewer than `maxUnavailable` daemon pods are
//! unavailable.

pub mod shell;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{Node, Pod, Toleration};
use k8s_openapi::jiff::Timestamp;
use serde_json::json;

use crate::events::Record;
use crate::replicaset::pod_from_template;
use crate::statefulset::{REVISION_LABEL, sync_revision};
use crate::workload::{is_available, is_controlled_by, is_ready, is_terminal, scaled_value};
use skiff_scheduler::terms::{NodeSelectorMatcher, first_untolerated};

/// One write the shell performs.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Revision(crate::statefulset::Change),
    CreatePod { node: String, pod: Box<Pod> },
    DeletePod { name: String, uid: String },
    UpdateStatus(Box<DaemonSetStatus>),
    Event(Record),
}

/// The outcome of a pass.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub changes: Vec<Change>,
    pub requeue_after_seconds: Option<i64>,
}

/// Tolerations every daemon pod gets (kube's `AddOrUpdateDaemonPodTolerations`).
pub fn daemon_tolerations(host_network: bool) -> Vec<Toleration> {
    let mut list = vec![
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if host_network {
        list.push(("node.kubernetes.io/network-unavailable", "NoSchedule"));
    }
    list.into_iter()
        .map(|(key, effect)| Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            effect: Some(effect.into()),
            ..Default::default()
        })
        .collect()
}

/// Whether a daemon pod of this DaemonSet should run on a node.
pub fn should_run(ds: &DaemonSet, node: &Node) -> bool {
    let spec = ds.spec.as_ref().and_then(|s| s.template.spec.as_ref());
    let name = node.metadata.name.as_deref().unwrap_or_default();
    let labels = node.metadata.labels.clone().unwrap_or_default();
    let selector_ok = spec
        .and_then(|s| s.node_selector.as_ref())
        .is_none_or(|sel| sel.iter().all(|(k, v)| labels.get(k) == Some(v)));
    let affinity_ok = spec
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .is_none_or(|required| NodeSelectorMatcher::new(required).matches(name, &labels));
    let mut tolerations = spec.and_then(|s| s.tolerations.clone()).unwrap_or_default();
    tolerations.extend(daemon_tolerations(
        spec.and_then(|s| s.host_network).unwrap_or(false),
    ));
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let taints_ok =
        first_untolerated(&taints, &tolerations, &["NoSchedule", "NoExecute"]).is_none();
    selector_ok && affinity_ok && taints_ok
}

fn node_of(pod: &Pod) -> String {
    if let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) {
        return node;
    }
    // Not bound yet: the node it is pinned to by affinity.
    pod.spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .and_then(|r| r.node_selector_terms.first())
        .and_then(|t| t.match_fields.as_ref())
        .and_then(|f| f.first())
        .and_then(|f| f.values.as_ref())
        .and_then(|v| v.first().cloned())
        .unwrap_or_default()
}

fn revision_hash(pod: &Pod) -> &str {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(REVISION_LABEL))
        .map(String::as_str)
        .unwrap_or_default()
}

/// Plan one pass for a DaemonSet over the nodes, its pods and its revisions.
pub fn plan(
    ds: &DaemonSet,
    nodes: &[Node],
    pods: &[Pod],
    revisions: &[ControllerRevision],
    now: Timestamp,
) -> Plan {
    let mut changes = Vec::new();
    let name = ds.metadata.name.clone().unwrap_or_default();
    let uid = ds.metadata.uid.clone().unwrap_or_default();
    let spec = ds.spec.clone().unwrap_or_default();
    let mine: Vec<&Pod> = pods
        .iter()
        .filter(|p| is_controlled_by(&p.metadata, &uid))
        .collect();
    let in_use: Vec<String> = mine
        .iter()
        .map(|p| format!("{name}-{}", revision_hash(p)))
        .collect();
    let (revision, revision_changes) = sync_revision(
        &ds.metadata,
        "apps/v1",
        "DaemonSet",
        &spec.template,
        ds.status.as_ref().and_then(|s| s.collision_count),
        revisions,
        spec.revision_history_limit.unwrap_or(10).max(0) as usize,
        &in_use,
    );
    changes.extend(revision_changes.into_iter().map(Change::Revision));
    let hash = revision
        .strip_prefix(&format!("{name}-"))
        .unwrap_or(&revision)
        .to_string();
    let mut by_node: BTreeMap<String, Vec<&Pod>> = BTreeMap::new();
    for pod in &mine {
        if pod.metadata.deletion_timestamp.is_none() {
            by_node.entry(node_of(pod)).or_default().push(pod);
        }
    }
    let deleting = ds.metadata.deletion_timestamp.is_some();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let mut desired = 0;
    let mut scheduled = 0;
    let mut misscheduled = 0;
    let delete = |pod: &Pod, changes: &mut Vec<Change>| {
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        changes.push(Change::DeletePod {
            name: pod_name.clone(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
        });
        changes.push(Change::Event(Record::normal(
            "SuccessfulDelete",
            format!("Deleted pod: {pod_name}"),
        )));
    };
    let mut node_names = Vec::new();
    for node in nodes {
        let node_name = node.metadata.name.clone().unwrap_or_default();
        node_names.push(node_name.clone());
        let here = by_node.get(&node_name).cloned().unwrap_or_default();
        if should_run(ds, node) {
            desired += 1;
            if !here.is_empty() {
                scheduled += 1;
            }
            if deleting {
                continue;
            }
            let (failed, running): (Vec<&Pod>, Vec<&Pod>) =
                here.iter().partition(|p| is_terminal(p));
            for pod in failed {
                delete(pod, &mut changes);
            }
            if running.is_empty() {
                let mut pod = pod_from_template(
                    &spec.template,
                    "apps/v1",
                    "DaemonSet",
                    &ds.metadata,
                    &format!("{name}-"),
                );
                pod.metadata
                    .labels
                    .get_or_insert_with(Default::default)
                    .insert(REVISION_LABEL.into(), hash.clone());
                if let Some(pod_spec) = pod.spec.as_mut() {
                    let host_network = pod_spec.host_network.unwrap_or(false);
                    let tolerations = pod_spec.tolerations.get_or_insert_with(Vec::new);
                    for t in daemon_tolerations(host_network) {
                        if !tolerations.contains(&t) {
                            tolerations.push(t);
                        }
                    }
                    let affinity = pod_spec.affinity.get_or_insert_with(Default::default);
                    affinity.node_affinity = serde_json::from_value(json!({
                        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node_name]}]}
                        ]}
                    }))
                    .ok();
                }
                changes.push(Change::CreatePod {
                    node: node_name.clone(),
                    pod: Box::new(pod),
                });
            } else {
                // Keep the oldest; delete duplicates.
                let mut running = running;
                running.sort_by_key(|p| {
                    crate::workload::seconds(p.metadata.creation_timestamp.as_ref())
                });
                for extra in running.iter().skip(1) {
                    delete(extra, &mut changes);
                }
            }
        } else if !here.is_empty() {
            misscheduled += 1;
            if !deleting {
                for pod in here {
                    delete(pod, &mut changes);
                }
            }
        }
    }
    // Pods on nodes that no longer exist.
    for (node, here) in &by_node {
        if !node.is_empty() && !node_names.contains(node) && !deleting {
            for pod in here {
                delete(pod, &mut changes);
            }
        }
    }
    let live: Vec<&&Pod> = by_node
        .iter()
        .filter(|(n, _)| node_names.contains(n))
        .flat_map(|(_, p)| p.iter())
        .filter(|p| !is_terminal(p))
        .collect();
    let available = live
        .iter()
        .filter(|p| is_available(p, min_ready, now))
        .count() as i32;
    // Rolling update.
    let rolling = spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        != Some("OnDelete");
    if rolling && !deleting {
        let max_unavailable = spec
            .update_strategy
            .as_ref()
            .and_then(|s| s.rolling_update.as_ref())
            .and_then(|r| r.max_unavailable.as_ref())
            .and_then(|m| scaled_value(m, desired, true))
            .unwrap_or(1)
            .max(1);
        let unavailable = (desired - available).max(0);
        let mut budget = (max_unavailable - unavailable).max(0);
        // Unavailable old pods go first: deleting them costs nothing.
        let mut old: Vec<&&&Pod> = live.iter().filter(|p| revision_hash(p) != hash).collect();
        old.sort_by_key(|p| is_available(p, min_ready, now));
        for pod in old {
            if !is_available(pod, min_ready, now) {
                delete(pod, &mut changes);
            } else if budget > 0 {
                delete(pod, &mut changes);
                budget -= 1;
            }
        }
    }
    let status = DaemonSetStatus {
        current_number_scheduled: scheduled,
        desired_number_scheduled: desired,
        number_misscheduled: misscheduled,
        number_ready: live.iter().filter(|p| is_ready(p)).count() as i32,
        number_available: Some(available),
        number_unavailable: Some((desired - available).max(0)),
        updated_number_scheduled: Some(
            live.iter().filter(|p| revision_hash(p) == hash).count() as i32
        ),
        observed_generation: ds.metadata.generation,
        collision_count: ds.status.as_ref().and_then(|s| s.collision_count),
        conditions: ds.status.as_ref().and_then(|s| s.conditions.clone()),
    };
    if ds.status.as_ref() != Some(&status) {
        changes.push(Change::UpdateStatus(Box::new(status)));
    }
    Plan {
        changes,
        requeue_after_seconds: if min_ready > 0 {
            Some(i64::from(min_ready))
        } else {
            None
        },
    }
}

#[cfg(test)]
mod tests;
