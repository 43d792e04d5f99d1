//! The StatefulSet controller: pods `<name>-<ordinal>` with stable identity and their PVCs
//! `<claim>-<name>-<ordinal>` from `volumeClaimTemplates`; ordered creation and deletion
//! (`OrderedReady`: one at a time, each waiting for its predecessors to be Running and Ready) or
//! all at once (`Parallel`); rolling updates by ordinal, highest first, down to `partition`;
//! revisions as ControllerRevisions named `<name>-<hash>`.
//!
//! Invariants: a pod is never created before its PVCs; with OrderedReady, pod N is created only
//! when 0..N are Running and Ready and the highest ordinal is deleted first; an update deletes at
//! most one pod at a time and only when every other pod is Running and Ready.

pub mod shell;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use k8s_openapi::jiff::Timestamp;

use crate::events::Record;
use crate::workload::{is_available, is_controlled_by, is_ready, is_terminal, owner_reference};

/// The revision label on StatefulSet and DaemonSet pods.
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// One write the shell performs.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    CreateRevision(Box<ControllerRevision>),
    /// Give an existing revision a new number (a rollback to an earlier template).
    UpdateRevision {
        name: String,
        revision: i64,
    },
    DeleteRevision {
        name: String,
    },
    CreateClaim(Box<PersistentVolumeClaim>),
    CreatePod(Box<Pod>),
    DeletePod {
        name: String,
        uid: String,
    },
    UpdateStatus(Box<StatefulSetStatus>),
    Event(Record),
}

/// The outcome of a pass.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub changes: Vec<Change>,
    pub requeue_after_seconds: Option<i64>,
}

/// The ControllerRevision data for a template (`{"spec":{"template":...}}`).
pub fn revision_data(template: &PodTemplateSpec) -> serde_json::Value {
    let mut template = serde_json::to_value(template).unwrap_or_default();
    if let Some(object) = template.as_object_mut() {
        object.insert("$patch".into(), "replace".into());
    }
    serde_json::json!({"spec": {"template": template}})
}

/// Find or make the revision for the current template: (name, changes, existing revisions
/// after the change). Shared with the DaemonSet controller.
#[allow(
    clippy::too_many_arguments,
    reason = "one call per owner kind; a struct would only rename them"
)]
pub fn sync_revision(
    owner: &ObjectMeta,
    api_version: &str,
    kind: &str,
    template: &PodTemplateSpec,
    collision_count: Option<i32>,
    revisions: &[ControllerRevision],
    history_limit: usize,
    in_use: &[String],
) -> (String, Vec<Change>) {
    let data = revision_data(template);
    let mut changes = Vec::new();
    let mut owned: Vec<&ControllerRevision> = revisions
        .iter()
        .filter(|r| is_controlled_by(&r.metadata, owner.uid.as_deref().unwrap_or_default()))
        .collect();
    owned.sort_by_key(|r| r.revision);
    let max = owned.last().map(|r| r.revision).unwrap_or(0);
    let name = match owned
        .iter()
        .find(|r| r.data.as_ref().map(|d| &d.0) == Some(&data))
    {
        Some(existing) => {
            if existing.revision != max {
                changes.push(Change::UpdateRevision {
                    name: existing.metadata.name.clone().unwrap_or_default(),
                    revision: max + 1,
                });
            }
            existing.metadata.name.clone().unwrap_or_default()
        }
        None => {
            let hash = crate::hash::compute(&data, collision_count);
            let name = format!("{}-{}", owner.name.as_deref().unwrap_or_default(), hash);
            let mut labels = template
                .metadata
                .as_ref()
                .and_then(|m| m.labels.clone())
                .unwrap_or_default();
            labels.insert(REVISION_LABEL.into(), hash);
            changes.push(Change::CreateRevision(Box::new(ControllerRevision {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: owner.namespace.clone(),
                    labels: Some(labels),
                    owner_references: Some(vec![owner_reference(api_version, kind, owner)]),
                    ..Default::default()
                },
                data: Some(RawExtension(data)),
                revision: max + 1,
            })));
            name
        }
    };
    // History: keep `history_limit` unused revisions.
    let unused: Vec<&&ControllerRevision> = owned
        .iter()
        .filter(|r| {
            let n = r.metadata.name.clone().unwrap_or_default();
            n != name && !in_use.contains(&n)
        })
        .collect();
    if unused.len() > history_limit {
        for r in unused.iter().take(unused.len() - history_limit) {
            changes.push(Change::DeleteRevision {
                name: r.metadata.name.clone().unwrap_or_default(),
            });
        }
    }
    (name, changes)
}

/// The template stored in a revision.
pub fn template_of(revision: &ControllerRevision) -> Option<PodTemplateSpec> {
    let data = revision.data.as_ref()?.0.pointer("/spec/template")?.clone();
    let mut data = data;
    if let Some(object) = data.as_object_mut() {
        object.remove("$patch");
    }
    serde_json::from_value(data).ok()
}

fn ordinal(set_name: &str, pod: &Pod) -> Option<i32> {
    pod.metadata
        .name
        .as_deref()?
        .strip_prefix(set_name)?
        .strip_prefix('-')?
        .parse()
        .ok()
}

fn revision_of(pod: &Pod) -> &str {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(REVISION_LABEL))
        .map(String::as_str)
        .unwrap_or_default()
}

fn running_and_ready(pod: &Pod) -> bool {
    crate::workload::phase(pod) == "Running" && is_ready(pod)
}

/// The name of the PVC for a claim template and ordinal.
pub fn claim_name(claim: &str, set: &str, ordinal: i32) -> String {
    format!("{claim}-{set}-{ordinal}")
}

fn new_pod(set: &StatefulSet, template: &PodTemplateSpec, ordinal: i32, revision: &str) -> Pod {
    let name = set.metadata.name.clone().unwrap_or_default();
    let pod_name = format!("{name}-{ordinal}");
    let spec = set.spec.clone().unwrap_or_default();
    let template_meta = template.metadata.clone().unwrap_or_default();
    let mut labels = template_meta.labels.unwrap_or_default();
    labels.insert(
        "statefulset.kubernetes.io/pod-name".into(),
        pod_name.clone(),
    );
    labels.insert("apps.kubernetes.io/pod-index".into(), ordinal.to_string());
    let hash = revision
        .strip_prefix(&format!("{name}-"))
        .unwrap_or(revision);
    labels.insert(REVISION_LABEL.into(), hash.to_string());
    let mut pod_spec = template.spec.clone().unwrap_or_default();
    pod_spec.hostname = Some(pod_name.clone());
    if !spec.service_name.as_deref().unwrap_or_default().is_empty() {
        pod_spec.subdomain = spec.service_name.clone();
    }
    for claim in spec.volume_claim_templates.iter().flatten() {
        let claim_template = claim.metadata.name.clone().unwrap_or_default();
        let volumes = pod_spec.volumes.get_or_insert_with(Vec::new);
        volumes.retain(|v| v.name != claim_template);
        volumes.push(Volume {
            name: claim_template.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim_name(&claim_template, &name, ordinal),
                read_only: None,
            }),
            ..Default::default()
        });
    }
    Pod {
        metadata: ObjectMeta {
            name: Some(pod_name),
            namespace: set.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: template_meta.annotations,
            owner_references: Some(vec![owner_reference(
                "apps/v1",
                "StatefulSet",
                &set.metadata,
            )]),
            ..Default::default()
        },
        spec: Some(pod_spec),
        status: None,
    }
}

fn new_claim(
    set: &StatefulSet,
    template: &PersistentVolumeClaim,
    ordinal: i32,
) -> PersistentVolumeClaim {
    let name = set.metadata.name.clone().unwrap_or_default();
    let mut labels: BTreeMap<String, String> = template.metadata.labels.clone().unwrap_or_default();
    if let Some(match_labels) = set
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.clone())
    {
        labels.extend(match_labels);
    }
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(claim_name(
                template.metadata.name.as_deref().unwrap_or_default(),
                &name,
                ordinal,
            )),
            namespace: set.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: template.metadata.annotations.clone(),
            ..Default::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

/// Plan one pass for a StatefulSet over its pods, the namespace's PVCs and its revisions.
pub fn plan(
    set: &StatefulSet,
    pods: &[Pod],
    claims: &[PersistentVolumeClaim],
    revisions: &[ControllerRevision],
    now: Timestamp,
) -> Plan {
    let mut changes = Vec::new();
    let name = set.metadata.name.clone().unwrap_or_default();
    let uid = set.metadata.uid.clone().unwrap_or_default();
    let spec = set.spec.clone().unwrap_or_default();
    let replicas = spec.replicas.unwrap_or(1).max(0);
    let parallel = spec.pod_management_policy.as_deref() == Some("Parallel");
    let mine: Vec<&Pod> = pods
        .iter()
        .filter(|p| is_controlled_by(&p.metadata, &uid))
        .collect();
    let in_use: Vec<String> = mine
        .iter()
        .map(|p| format!("{name}-{}", revision_of(p)))
        .collect();
    let (update_revision, revision_changes) = sync_revision(
        &set.metadata,
        "apps/v1",
        "StatefulSet",
        &spec.template,
        set.status.as_ref().and_then(|s| s.collision_count),
        revisions,
        spec.revision_history_limit.unwrap_or(10).max(0) as usize,
        &in_use,
    );
    changes.extend(revision_changes);
    let status_before = set.status.clone().unwrap_or_default();
    let current_revision = status_before
        .current_revision
        .clone()
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| update_revision.clone());
    let current_template = revisions
        .iter()
        .find(|r| r.metadata.name.as_deref() == Some(current_revision.as_str()))
        .and_then(template_of)
        .unwrap_or_else(|| spec.template.clone());
    let rolling = spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        != Some("OnDelete");
    let partition = spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref())
        .and_then(|r| r.partition)
        .unwrap_or(0);
    let mut by_ordinal: BTreeMap<i32, &Pod> = BTreeMap::new();
    for pod in &mine {
        if let Some(n) = ordinal(&name, pod) {
            by_ordinal.insert(n, pod);
        }
    }
    let update_hash = update_revision
        .strip_prefix(&format!("{name}-"))
        .unwrap_or(&update_revision)
        .to_string();
    let deleting = set.metadata.deletion_timestamp.is_some();
    let mut blocked = false;
    if !deleting {
        for ordinal in 0..replicas {
            let pod = by_ordinal.get(&ordinal).copied();
            match pod {
                None => {
                    for template in spec.volume_claim_templates.iter().flatten() {
                        let claim = new_claim(set, template, ordinal);
                        let exists = claims.iter().any(|c| {
                            c.metadata.name == claim.metadata.name
                                && c.metadata.namespace == claim.metadata.namespace
                        });
                        if !exists {
                            changes.push(Change::Event(Record::normal(
                                "SuccessfulCreate",
                                format!(
                                    "create Claim {} Pod {name}-{ordinal} in StatefulSet {name} success",
                                    claim.metadata.name.as_deref().unwrap_or_default()
                                ),
                            )));
                            changes.push(Change::CreateClaim(Box::new(claim)));
                        }
                    }
                    let (template, revision) = if rolling && ordinal < partition {
                        (&current_template, &current_revision)
                    } else {
                        (&spec.template, &update_revision)
                    };
                    changes.push(Change::CreatePod(Box::new(new_pod(
                        set, template, ordinal, revision,
                    ))));
                    changes.push(Change::Event(Record::normal(
                        "SuccessfulCreate",
                        format!("create Pod {name}-{ordinal} in StatefulSet {name} successful"),
                    )));
                    if !parallel {
                        blocked = true;
                        break;
                    }
                }
                Some(pod) if is_terminal(pod) && pod.metadata.deletion_timestamp.is_none() => {
                    // A failed or finished pod is recreated.
                    changes.push(delete(pod, &name));
                    changes.push(Change::Event(Record::normal(
                        "SuccessfulDelete",
                        format!("delete Pod {name}-{ordinal} in StatefulSet {name} successful"),
                    )));
                    if !parallel {
                        blocked = true;
                        break;
                    }
                }
                Some(pod) => {
                    if !parallel && !running_and_ready(pod) {
                        blocked = true;
                        break;
                    }
                }
            }
        }
        // Condemned pods (ordinal >= replicas), highest first.
        let condemned: Vec<(&i32, &&Pod)> = by_ordinal.range(replicas..).rev().collect();
        if !blocked {
            for (ordinal, pod) in &condemned {
                if pod.metadata.deletion_timestamp.is_some() {
                    if !parallel {
                        blocked = true;
                        break;
                    }
                    continue;
                }
                changes.push(delete(pod, &name));
                changes.push(Change::Event(Record::normal(
                    "SuccessfulDelete",
                    format!("delete Pod {name}-{ordinal} in StatefulSet {name} successful"),
                )));
                if !parallel {
                    blocked = true;
                    break;
                }
            }
        }
        // Rolling update: highest ordinal first, down to the partition, one at a time.
        let all_healthy =
            (0..replicas).all(|n| by_ordinal.get(&n).is_some_and(|p| running_and_ready(p)));
        if rolling && !blocked && all_healthy && condemned.is_empty() {
            for ordinal in (partition..replicas).rev() {
                if let Some(pod) = by_ordinal.get(&ordinal)
                    && revision_of(pod) != update_hash
                    && pod.metadata.deletion_timestamp.is_none()
                {
                    changes.push(delete(pod, &name));
                    changes.push(Change::Event(Record::normal(
                        "SuccessfulDelete",
                        format!("delete Pod {name}-{ordinal} in StatefulSet {name} successful"),
                    )));
                    break;
                }
            }
        }
    }
    let live: Vec<&&Pod> = by_ordinal
        .values()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    let current_hash = current_revision
        .strip_prefix(&format!("{name}-"))
        .unwrap_or(&current_revision)
        .to_string();
    let updated = live
        .iter()
        .filter(|p| revision_of(p) == update_hash)
        .count() as i32;
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let mut status = StatefulSetStatus {
        observed_generation: set.metadata.generation,
        replicas: live.len() as i32,
        ready_replicas: Some(live.iter().filter(|p| is_ready(p)).count() as i32),
        available_replicas: Some(
            live.iter()
                .filter(|p| is_available(p, min_ready, now))
                .count() as i32,
        ),
        current_replicas: Some(
            live.iter()
                .filter(|p| revision_of(p) == current_hash)
                .count() as i32,
        ),
        updated_replicas: Some(updated),
        current_revision: Some(current_revision.clone()),
        update_revision: Some(update_revision.clone()),
        collision_count: status_before.collision_count,
        conditions: status_before.conditions.clone(),
    };
    if updated == replicas && live.len() as i32 == replicas {
        status.current_revision = Some(update_revision);
        status.current_replicas = Some(updated);
    }
    if set.status.as_ref() != Some(&status) {
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

fn delete(pod: &Pod, _set: &str) -> Change {
    Change::DeletePod {
        name: pod.metadata.name.clone().unwrap_or_default(),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests;
