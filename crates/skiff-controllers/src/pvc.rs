//! PersistentVolumeClaim binding and the local-path provisioner. The `local-path` StorageClass
//! (default class, `WaitForFirstConsumer`) is created if missing; an unbound claim is bound to a
//! matching available PV, or, for the local-path class once the scheduler has picked a node
//! (`volume.kubernetes.io/selected-node`), gets a new hostPath PV under the data directory with
//! node affinity to that node; PV and PVC are then bound to each other (PV `claimRef`, PVC
//! `volumeName`, phases Bound); a PV whose claim is gone is deleted (Delete) or Released (Retain).
//!
//! Invariants: a PV is bound to at most one claim (its `claimRef` uid); a claim is provisioned at
//! most once (the PV is named `pvc-<claim uid>`); the host directory is created by the agent
//! (`DirectoryOrCreate`); removing it after the PV is deleted is left to the operator.

pub mod shell;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    HostPathVolumeSource, ObjectReference, PersistentVolume, PersistentVolumeClaim,
    PersistentVolumeClaimStatus, PersistentVolumeSpec, PersistentVolumeStatus, VolumeNodeAffinity,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::json;

use crate::events::Record;

/// The provisioner name of the local-path class.
pub const PROVISIONER: &str = "skiff.io/local-path";
/// The default class's name.
pub const CLASS: &str = "local-path";
/// The annotation the scheduler sets on a WaitForFirstConsumer claim.
pub const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";

/// Settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where local-path volumes live on nodes.
    pub base_path: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            base_path: "/var/lib/skiff/local-path".into(),
        }
    }
}

/// One write the shell performs.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    CreateStorageClass(Box<StorageClass>),
    CreateVolume(Box<PersistentVolume>),
    /// Set a PV's claimRef (bind it to a claim).
    BindVolume {
        volume: String,
        claim: Box<ObjectReference>,
    },
    /// Set a claim's volumeName.
    BindClaim {
        namespace: String,
        name: String,
        volume: String,
    },
    VolumeStatus {
        volume: String,
        status: Box<PersistentVolumeStatus>,
    },
    ClaimStatus {
        namespace: String,
        name: String,
        status: Box<PersistentVolumeClaimStatus>,
    },
    DeleteVolume {
        volume: String,
    },
    ClaimEvent {
        namespace: String,
        name: String,
        record: Record,
    },
}

/// The default StorageClass.
pub fn default_class() -> StorageClass {
    StorageClass {
        metadata: ObjectMeta {
            name: Some(CLASS.into()),
            annotations: Some(BTreeMap::from([(
                "storageclass.kubernetes.io/is-default-class".to_string(),
                "true".to_string(),
            )])),
            ..Default::default()
        },
        provisioner: PROVISIONER.into(),
        reclaim_policy: Some("Delete".into()),
        volume_binding_mode: Some("WaitForFirstConsumer".into()),
        ..Default::default()
    }
}

fn class_of<'a>(
    claim: &PersistentVolumeClaim,
    classes: &'a [StorageClass],
) -> Option<&'a StorageClass> {
    match claim
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.as_deref())
    {
        Some(name) => classes
            .iter()
            .find(|c| c.metadata.name.as_deref() == Some(name)),
        None => classes.iter().find(|c| {
            c.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("storageclass.kubernetes.io/is-default-class"))
                .is_some_and(|v| v == "true")
        }),
    }
}

fn claim_ref(claim: &PersistentVolumeClaim) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("PersistentVolumeClaim".into()),
        name: claim.metadata.name.clone(),
        namespace: claim.metadata.namespace.clone(),
        uid: claim.metadata.uid.clone(),
        ..Default::default()
    }
}

fn request(
    claim: &PersistentVolumeClaim,
) -> Option<k8s_openapi::apimachinery::pkg::api::resource::Quantity> {
    claim
        .spec
        .as_ref()?
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")
        .cloned()
}

fn fits(volume: &PersistentVolume, claim: &PersistentVolumeClaim, class: Option<&str>) -> bool {
    let spec = volume.spec.clone().unwrap_or_default();
    let available = volume
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_none_or(|p| p == "Available");
    let unclaimed = spec.claim_ref.is_none();
    let same_class = spec.storage_class_name.as_deref() == class;
    let capacity = spec
        .capacity
        .as_ref()
        .and_then(|c| c.get("storage"))
        .map(skiff_scheduler::resources::value)
        .unwrap_or(0);
    let wanted = request(claim)
        .as_ref()
        .map(skiff_scheduler::resources::value)
        .unwrap_or(0);
    let modes = claim
        .spec
        .as_ref()
        .and_then(|s| s.access_modes.clone())
        .unwrap_or_default();
    let offered = spec.access_modes.clone().unwrap_or_default();
    available
        && unclaimed
        && same_class
        && capacity >= wanted
        && modes.iter().all(|m| offered.contains(m))
}

/// Plan one pass over all claims, volumes and classes.
pub fn plan(
    config: &Config,
    claims: &[PersistentVolumeClaim],
    volumes: &[PersistentVolume],
    classes: &[StorageClass],
) -> Vec<Change> {
    let mut changes = Vec::new();
    if !classes
        .iter()
        .any(|c| c.metadata.name.as_deref() == Some(CLASS))
    {
        changes.push(Change::CreateStorageClass(Box::new(default_class())));
    }
    let mut taken: Vec<String> = Vec::new();
    for claim in claims
        .iter()
        .filter(|c| c.metadata.deletion_timestamp.is_none())
    {
        let namespace = claim.metadata.namespace.clone().unwrap_or_default();
        let name = claim.metadata.name.clone().unwrap_or_default();
        let uid = claim.metadata.uid.clone().unwrap_or_default();
        let bound_to = claim
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.clone())
            .filter(|v| !v.is_empty());
        // A PV already pointing at this claim (we bound it, or provisioned it).
        let claimed = volumes.iter().find(|v| {
            v.spec
                .as_ref()
                .and_then(|s| s.claim_ref.as_ref())
                .is_some_and(|r| r.uid.as_deref() == Some(uid.as_str()))
        });
        if let Some(volume) = claimed.or_else(|| {
            bound_to
                .as_ref()
                .and_then(|b| volumes.iter().find(|v| v.metadata.name.as_ref() == Some(b)))
        }) {
            let volume_name = volume.metadata.name.clone().unwrap_or_default();
            if volume
                .spec
                .as_ref()
                .and_then(|s| s.claim_ref.as_ref())
                .is_none()
            {
                changes.push(Change::BindVolume {
                    volume: volume_name.clone(),
                    claim: Box::new(claim_ref(claim)),
                });
            }
            if bound_to.as_deref() != Some(volume_name.as_str()) {
                changes.push(Change::BindClaim {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    volume: volume_name.clone(),
                });
            }
            if volume.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Bound") {
                changes.push(Change::VolumeStatus {
                    volume: volume_name.clone(),
                    status: Box::new(PersistentVolumeStatus {
                        phase: Some("Bound".into()),
                        ..Default::default()
                    }),
                });
            }
            let spec = volume.spec.clone().unwrap_or_default();
            let status = PersistentVolumeClaimStatus {
                phase: Some("Bound".into()),
                access_modes: spec.access_modes.clone(),
                capacity: spec.capacity.clone(),
                ..claim.status.clone().unwrap_or_default()
            };
            if claim.status.as_ref() != Some(&status) {
                changes.push(Change::ClaimStatus {
                    namespace,
                    name,
                    status: Box::new(status),
                });
            }
            taken.push(volume_name);
            continue;
        }
        let class = class_of(claim, classes);
        let class_name = claim
            .spec
            .as_ref()
            .and_then(|s| s.storage_class_name.clone())
            .or_else(|| class.and_then(|c| c.metadata.name.clone()));
        let delayed =
            class.and_then(|c| c.volume_binding_mode.as_deref()) == Some("WaitForFirstConsumer");
        let selected = claim
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(SELECTED_NODE))
            .cloned();
        if delayed && selected.is_none() {
            if claim.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Pending") {
                changes.push(Change::ClaimStatus {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    status: Box::new(PersistentVolumeClaimStatus {
                        phase: Some("Pending".into()),
                        ..Default::default()
                    }),
                });
                changes.push(Change::ClaimEvent {
                    namespace,
                    name,
                    record: Record::normal(
                        "WaitForFirstConsumer",
                        "waiting for first consumer to be created before binding",
                    ),
                });
            }
            continue;
        }
        // A static PV that fits.
        if let Some(volume) = volumes.iter().find(|v| {
            !taken.contains(&v.metadata.name.clone().unwrap_or_default())
                && fits(v, claim, class_name.as_deref())
        }) {
            let volume_name = volume.metadata.name.clone().unwrap_or_default();
            changes.push(Change::BindVolume {
                volume: volume_name.clone(),
                claim: Box::new(claim_ref(claim)),
            });
            taken.push(volume_name);
            continue;
        }
        // Provision.
        if let (Some(class), Some(node)) = (class, selected)
            && class.provisioner == PROVISIONER
        {
            let volume_name = format!("pvc-{uid}");
            let mut capacity = BTreeMap::new();
            if let Some(q) = request(claim) {
                capacity.insert("storage".to_string(), q);
            }
            let volume = PersistentVolume {
                metadata: ObjectMeta {
                    name: Some(volume_name.clone()),
                    annotations: Some(BTreeMap::from([("pv.kubernetes.io/provisioned-by".to_string(), PROVISIONER.to_string())])),
                    ..Default::default()
                },
                spec: Some(PersistentVolumeSpec {
                    capacity: Some(capacity),
                    access_modes: claim.spec.as_ref().and_then(|s| s.access_modes.clone()),
                    claim_ref: Some(claim_ref(claim)),
                    persistent_volume_reclaim_policy: Some(class.reclaim_policy.clone().unwrap_or_else(|| "Delete".into())),
                    storage_class_name: class.metadata.name.clone(),
                    volume_mode: claim.spec.as_ref().and_then(|s| s.volume_mode.clone()),
                    host_path: Some(HostPathVolumeSource {
                        path: format!("{}/{volume_name}_{namespace}_{name}", config.base_path.trim_end_matches('/')),
                        type_: Some("DirectoryOrCreate".into()),
                    }),
                    node_affinity: serde_json::from_value::<VolumeNodeAffinity>(json!({"required": {"nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}
                    ]}}))
                    .ok(),
                    ..Default::default()
                }),
                status: None,
            };
            changes.push(Change::CreateVolume(Box::new(volume)));
            changes.push(Change::ClaimEvent {
                namespace,
                name,
                record: Record::normal(
                    "ProvisioningSucceeded",
                    format!("Successfully provisioned volume {volume_name}"),
                ),
            });
        }
    }
    // Volumes whose claim is gone.
    for volume in volumes {
        let Some(reference) = volume.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else {
            continue;
        };
        let alive = claims
            .iter()
            .any(|c| c.metadata.uid == reference.uid && c.metadata.deletion_timestamp.is_none());
        if alive || volume.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let volume_name = volume.metadata.name.clone().unwrap_or_default();
        // A claim created moments ago may not be in the cache yet: only act on Bound volumes.
        if volume.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Bound") {
            continue;
        }
        match volume
            .spec
            .as_ref()
            .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
        {
            Some("Delete") => changes.push(Change::DeleteVolume {
                volume: volume_name,
            }),
            _ => changes.push(Change::VolumeStatus {
                volume: volume_name,
                status: Box::new(PersistentVolumeStatus {
                    phase: Some("Released".into()),
                    ..Default::default()
                }),
            }),
        }
    }
    changes
}

#[cfg(test)]
mod tests;
