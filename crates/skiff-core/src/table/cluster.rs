//! Printers of the cluster and storage resources: Node, Namespace, ConfigMap, Secret,
//! ServiceAccount, PersistentVolumeClaim, PersistentVolume and Lease.

use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use super::{
    AGE, NAME, Printer, age, column, list, name_of, printer_of, string, text, text_or_none, wide,
};

pub(super) fn printer(group: &str, resource: &str) -> Option<Printer> {
    match (group, resource) {
        ("", "nodes") => printer_of(
            &[
                NAME,
                string("Status", "The readiness of the node."),
                string("Roles", "The roles of the node."),
                AGE,
                string("Version", "The kubelet version of the node."),
                wide("Internal-IP", "The internal IP of the node."),
                wide("External-IP", "The external IP of the node."),
                wide("OS-Image", "The OS image of the node."),
                wide("Kernel-Version", "The kernel version of the node."),
                wide("Container-Runtime", "The container runtime of the node."),
            ],
            node,
        ),
        ("", "namespaces") => printer_of(
            &[NAME, string("Status", "The phase of the namespace."), AGE],
            namespace,
        ),
        ("", "configmaps") => printer_of(
            &[NAME, column("Data", "integer", "Number of keys.", 0), AGE],
            config_map,
        ),
        ("", "secrets") => printer_of(
            &[
                NAME,
                string("Type", "The type of the secret."),
                column("Data", "integer", "Number of keys.", 0),
                AGE,
            ],
            secret,
        ),
        ("", "serviceaccounts") => printer_of(
            &[
                NAME,
                column("Secrets", "integer", "Number of secrets.", 0),
                AGE,
            ],
            service_account,
        ),
        ("", "persistentvolumeclaims") => printer_of(
            &[
                NAME,
                string("Status", "The phase of the claim."),
                string("Volume", "The bound volume."),
                string("Capacity", "The capacity of the bound volume."),
                string("Access Modes", "The access modes of the claim."),
                string("StorageClass", "The storage class of the claim."),
                string(
                    "VolumeAttributesClass",
                    "The volume attributes class of the claim.",
                ),
                AGE,
                wide("VolumeMode", "The volume mode of the claim."),
            ],
            claim,
        ),
        ("", "persistentvolumes") => printer_of(
            &[
                NAME,
                string("Capacity", "The capacity of the volume."),
                string("Access Modes", "The access modes of the volume."),
                string(
                    "Reclaim Policy",
                    "What happens to the volume when released.",
                ),
                string("Status", "The phase of the volume."),
                string("Claim", "The claim bound to the volume."),
                string("StorageClass", "The storage class of the volume."),
                string(
                    "VolumeAttributesClass",
                    "The volume attributes class of the volume.",
                ),
                string("Reason", "Why the volume is in its phase."),
                AGE,
                wide("VolumeMode", "The volume mode of the volume."),
            ],
            volume,
        ),
        ("coordination.k8s.io", "leases") => printer_of(
            &[NAME, string("Holder", "Who holds the lease."), AGE],
            lease,
        ),
        _ => None,
    }
}

fn node(object: &Value, now: Timestamp) -> Vec<Value> {
    let ready = list(object, "/status/conditions")
        .iter()
        .find(|condition| condition.get("type").and_then(Value::as_str) == Some("Ready"));
    let mut status = vec![match ready
        .and_then(|condition| condition.get("status"))
        .and_then(Value::as_str)
    {
        Some("True") => "Ready".to_string(),
        Some(_) => "NotReady".to_string(),
        None => "Unknown".to_string(),
    }];
    if object
        .pointer("/spec/unschedulable")
        .and_then(Value::as_bool)
        == Some(true)
    {
        status.push("SchedulingDisabled".to_string());
    }
    let mut roles: Vec<String> = crate::names::string_map(object.pointer("/metadata/labels"))
        .into_iter()
        .filter_map(
            |(key, value)| match key.strip_prefix("node-role.kubernetes.io/") {
                Some(role) if !role.is_empty() => Some(role.to_string()),
                _ if key == "kubernetes.io/role" && !value.is_empty() => Some(value),
                _ => None,
            },
        )
        .collect();
    roles.sort();
    roles.dedup();
    let address = |address_type: &str| {
        list(object, "/status/addresses")
            .iter()
            .find(|address| address.get("type").and_then(Value::as_str) == Some(address_type))
            .map(|address| text(address, "/address"))
            .filter(|address| !address.is_empty())
            .unwrap_or_else(|| "<none>".to_string())
    };
    vec![
        json!(name_of(object)),
        json!(status.join(",")),
        json!(if roles.is_empty() {
            "<none>".to_string()
        } else {
            roles.join(",")
        }),
        json!(age(object, now)),
        json!(text(object, "/status/nodeInfo/kubeletVersion")),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(text_or_none(object, "/status/nodeInfo/osImage")),
        json!(text_or_none(object, "/status/nodeInfo/kernelVersion")),
        json!(text_or_none(
            object,
            "/status/nodeInfo/containerRuntimeVersion"
        )),
    ]
}

fn namespace(object: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        json!(name_of(object)),
        json!(text(object, "/status/phase")),
        json!(age(object, now)),
    ]
}

fn map_len(object: &Value, pointer: &str) -> usize {
    object
        .pointer(pointer)
        .and_then(Value::as_object)
        .map_or(0, |map| map.len())
}

fn config_map(object: &Value, now: Timestamp) -> Vec<Value> {
    let keys = map_len(object, "/data") + map_len(object, "/binaryData");
    vec![json!(name_of(object)), json!(keys), json!(age(object, now))]
}

fn secret(object: &Value, now: Timestamp) -> Vec<Value> {
    let keys = map_len(object, "/data") + map_len(object, "/stringData");
    vec![
        json!(name_of(object)),
        json!(text(object, "/type")),
        json!(keys),
        json!(age(object, now)),
    ]
}

fn service_account(object: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        json!(name_of(object)),
        json!(list(object, "/secrets").len()),
        json!(age(object, now)),
    ]
}

/// Event columns from already-chosen field values (core and events.k8s.io differ in names).
fn access_modes(object: &Value, pointer: &str) -> String {
    let modes: Vec<&str> = list(object, pointer)
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let mut short = Vec::new();
    for (mode, abbreviation) in [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ] {
        if modes.contains(&mode) {
            short.push(abbreviation);
        }
    }
    short.join(",")
}

fn unset_if_empty(value: String) -> String {
    if value.is_empty() {
        "<unset>".to_string()
    } else {
        value
    }
}

fn claim(object: &Value, now: Timestamp) -> Vec<Value> {
    let deleting = object
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|value| !value.is_null());
    let phase = if deleting {
        "Terminating".to_string()
    } else {
        text(object, "/status/phase")
    };
    let bound = !text(object, "/spec/volumeName").is_empty();
    let (capacity, modes) = if bound {
        (
            text(object, "/status/capacity/storage"),
            access_modes(object, "/status/accessModes"),
        )
    } else {
        (String::new(), String::new())
    };
    vec![
        json!(name_of(object)),
        json!(phase),
        json!(text(object, "/spec/volumeName")),
        json!(capacity),
        json!(modes),
        json!(unset_if_empty(text(object, "/spec/storageClassName"))),
        json!(unset_if_empty(text(
            object,
            "/spec/volumeAttributesClassName"
        ))),
        json!(age(object, now)),
        json!(text(object, "/spec/volumeMode")),
    ]
}

fn volume(object: &Value, now: Timestamp) -> Vec<Value> {
    let deleting = object
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|value| !value.is_null());
    let phase = if deleting {
        "Terminating".to_string()
    } else {
        text(object, "/status/phase")
    };
    let claim_name = text(object, "/spec/claimRef/name");
    let claim = if claim_name.is_empty() {
        String::new()
    } else {
        format!("{}/{claim_name}", text(object, "/spec/claimRef/namespace"))
    };
    vec![
        json!(name_of(object)),
        json!(text(object, "/spec/capacity/storage")),
        json!(access_modes(object, "/spec/accessModes")),
        json!(text(object, "/spec/persistentVolumeReclaimPolicy")),
        json!(phase),
        json!(claim),
        json!(text(object, "/spec/storageClassName")),
        json!(unset_if_empty(text(
            object,
            "/spec/volumeAttributesClassName"
        ))),
        json!(text(object, "/status/reason")),
        json!(age(object, now)),
        json!(text(object, "/spec/volumeMode")),
    ]
}

fn lease(object: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        json!(name_of(object)),
        json!(text(object, "/spec/holderIdentity")),
        json!(age(object, now)),
    ]
}
