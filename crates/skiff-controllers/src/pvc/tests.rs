//! PVC binding and local-path provisioning.

use serde_json::json;

use super::*;

fn claim(name: &str, selected: Option<&str>, volume: Option<&str>) -> PersistentVolumeClaim {
    let mut value = json!({"metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
    if let Some(node) = selected {
        value["metadata"]["annotations"] = json!({SELECTED_NODE: node});
    }
    if let Some(v) = volume {
        value["spec"]["volumeName"] = json!(v);
    }
    serde_json::from_value(value).unwrap_or_default()
}

fn classes() -> Vec<StorageClass> {
    vec![default_class()]
}

#[test]
fn creates_the_default_class() {
    let changes = plan(&Config::default(), &[], &[], &[]);
    let Some(Change::CreateStorageClass(class)) = changes.first() else {
        panic!()
    };
    assert_eq!(
        class.volume_binding_mode.as_deref(),
        Some("WaitForFirstConsumer")
    );
    assert!(plan(&Config::default(), &[], &[], &classes()).is_empty());
}

#[test]
fn waits_for_the_first_consumer_then_provisions_on_the_selected_node() {
    let changes = plan(
        &Config::default(),
        &[claim("data", None, None)],
        &[],
        &classes(),
    );
    assert!(changes.iter().any(|c| matches!(c, Change::ClaimEvent { record, .. } if record.reason == "WaitForFirstConsumer")));
    assert!(!changes.iter().any(|c| matches!(c, Change::CreateVolume(_))));
    let changes = plan(
        &Config::default(),
        &[claim("data", Some("node-1"), None)],
        &[],
        &classes(),
    );
    let Some(Change::CreateVolume(volume)) = changes
        .iter()
        .find(|c| matches!(c, Change::CreateVolume(_)))
    else {
        panic!("{changes:?}")
    };
    assert_eq!(volume.metadata.name.as_deref(), Some("pvc-uid-data"));
    let spec = volume.spec.clone().unwrap_or_default();
    assert_eq!(spec.claim_ref.and_then(|r| r.uid), Some("uid-data".into()));
    assert_eq!(
        spec.host_path.map(|h| h.path),
        Some("/var/lib/skiff/local-path/pvc-uid-data_default_data".into())
    );
    let affinity = serde_json::to_value(spec.node_affinity).unwrap_or_default();
    assert_eq!(
        affinity.pointer("/required/nodeSelectorTerms/0/matchExpressions/0/values/0"),
        Some(&json!("node-1"))
    );
}

#[test]
fn binds_the_provisioned_volume_both_ways() {
    let c = claim("data", Some("node-1"), None);
    let provisioned = plan(
        &Config::default(),
        std::slice::from_ref(&c),
        &[],
        &classes(),
    );
    let Some(Change::CreateVolume(volume)) = provisioned
        .into_iter()
        .find(|c| matches!(c, Change::CreateVolume(_)))
    else {
        panic!()
    };
    let changes = plan(
        &Config::default(),
        std::slice::from_ref(&c),
        &[*volume],
        &classes(),
    );
    assert!(changes.contains(&Change::BindClaim {
        namespace: "default".into(),
        name: "data".into(),
        volume: "pvc-uid-data".into()
    }));
    assert!(changes.iter().any(|c| matches!(c, Change::VolumeStatus { status, .. } if status.phase.as_deref() == Some("Bound"))));
    assert!(changes.iter().any(|c| matches!(c, Change::ClaimStatus { status, .. } if status.phase.as_deref() == Some("Bound"))));
}

#[test]
fn static_volumes_and_reclaim() {
    let mut c = claim("data", None, None);
    if let Some(spec) = c.spec.as_mut() {
        spec.storage_class_name = Some("manual".into());
    }
    let manual: StorageClass = serde_json::from_value(json!({"metadata": {"name": "manual"}, "provisioner": "kubernetes.io/no-provisioner", "volumeBindingMode": "Immediate"})).unwrap_or_default();
    let pv = |name: &str, size: &str| -> PersistentVolume {
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"storageClassName": "manual", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": size}, "hostPath": {"path": "/x"}}})).unwrap_or_default()
    };
    let changes = plan(
        &Config::default(),
        &[c],
        &[pv("small", "512Mi"), pv("big", "2Gi")],
        &[default_class(), manual],
    );
    assert!(
        changes
            .iter()
            .any(|c| matches!(c, Change::BindVolume { volume, .. } if volume == "big"))
    );
    // A bound volume whose claim is gone is deleted (Delete) or released (Retain).
    let orphan = |policy: &str| -> PersistentVolume {
        serde_json::from_value(json!({"metadata": {"name": "v"}, "spec": {"persistentVolumeReclaimPolicy": policy, "claimRef": {"uid": "gone"}}, "status": {"phase": "Bound"}})).unwrap_or_default()
    };
    assert!(
        plan(&Config::default(), &[], &[orphan("Delete")], &classes())
            .contains(&Change::DeleteVolume { volume: "v".into() })
    );
    assert!(plan(&Config::default(), &[], &[orphan("Retain")], &classes()).iter().any(|c| matches!(c, Change::VolumeStatus { status, .. } if status.phase.as_deref() == Some("Released"))));
}
