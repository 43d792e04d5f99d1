//! Update rules: the fields each kind forbids changing once an object exists (workload
//! selectors, a Job's template, a Service's cluster IP, a PVC's spec except storage growth,
//! the data of immutable ConfigMaps and Secrets, a binding's roleRef, a pod's spec except the
//! mutable parts).

use serde_json::Value;

use super::pod::pod_update;
use super::values::quantity_amount;
use crate::field::{Error, Path};

fn at<'a>(object: &'a Value, pointer: &str) -> Option<&'a Value> {
    object.pointer(pointer).filter(|value| !value.is_null())
}

/// `field is immutable` when the value at `pointer` changed.
fn immutable(errors: &mut Vec<Error>, new: &Value, old: &Value, pointer: &str, path: &Path) {
    let after = at(new, pointer);
    if after != at(old, pointer) {
        errors.push(Error::invalid(
            path,
            after.cloned().unwrap_or(Value::Null),
            "field is immutable",
        ));
    }
}

/// Errors for fields an update of (group, kind) may not change.
pub(super) fn immutable_fields(group: &str, kind: &str, new: &Value, old: &Value) -> Vec<Error> {
    let mut errors = Vec::new();
    let spec = Path::new("spec");
    match (group, kind) {
        ("apps", "Deployment" | "ReplicaSet" | "DaemonSet") => {
            immutable(
                &mut errors,
                new,
                old,
                "/spec/selector",
                &spec.child("selector"),
            );
        }
        ("apps", "StatefulSet") => stateful_set(&mut errors, new, old),
        ("batch", "Job") => {
            immutable(
                &mut errors,
                new,
                old,
                "/spec/selector",
                &spec.child("selector"),
            );
            immutable(
                &mut errors,
                new,
                old,
                "/spec/completionMode",
                &spec.child("completionMode"),
            );
            immutable(
                &mut errors,
                new,
                old,
                "/spec/completions",
                &spec.child("completions"),
            );
            let suspended = at(old, "/spec/suspend").and_then(Value::as_bool) == Some(true);
            if !suspended {
                immutable(
                    &mut errors,
                    new,
                    old,
                    "/spec/template",
                    &spec.child("template"),
                );
            }
        }
        ("", "Service") => {
            let old_ip = at(old, "/spec/clusterIP")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let new_type = at(new, "/spec/type")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !old_ip.is_empty() && new_type != "ExternalName" {
                immutable(
                    &mut errors,
                    new,
                    old,
                    "/spec/clusterIP",
                    &spec.child("clusterIP"),
                );
            }
        }
        ("", "PersistentVolumeClaim") => persistent_volume_claim(&mut errors, new, old),
        ("", "ConfigMap" | "Secret")
            if at(old, "/immutable").and_then(Value::as_bool) == Some(true) =>
        {
            for field in ["data", "binaryData", "stringData", "immutable"] {
                if at(new, &format!("/{field}")) != at(old, &format!("/{field}")) {
                    errors.push(Error::forbidden(
                        &Path::new(field),
                        "field is immutable when `immutable` is set",
                    ));
                }
            }
        }
        ("", "Pod") => {
            let empty = Value::Null;
            pod_update(
                &mut errors,
                at(new, "/spec").unwrap_or(&empty),
                at(old, "/spec").unwrap_or(&empty),
            );
        }
        ("", "Node") if at(old, "/spec/podCIDR").is_some() => {
            immutable(
                &mut errors,
                new,
                old,
                "/spec/podCIDR",
                &spec.child("podCIDR"),
            );
        }
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding")
            if at(new, "/roleRef") != at(old, "/roleRef") =>
        {
            let value = at(new, "/roleRef").cloned().unwrap_or(Value::Null);
            errors.push(Error::invalid(
                &Path::new("roleRef"),
                value,
                "cannot change roleRef",
            ));
        }
        ("scheduling.k8s.io", "PriorityClass") => {
            immutable(&mut errors, new, old, "/value", &Path::new("value"));
        }
        ("storage.k8s.io", "StorageClass") => {
            for field in [
                "provisioner",
                "parameters",
                "reclaimPolicy",
                "volumeBindingMode",
            ] {
                if at(new, &format!("/{field}")) != at(old, &format!("/{field}")) {
                    errors.push(Error::forbidden(
                        &Path::new(field),
                        &format!("updates to {field} are forbidden."),
                    ));
                }
            }
        }
        _ => {}
    }
    errors
}

const STATEFUL_SET_MUTABLE: &[&str] = &[
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
];

fn stateful_set(errors: &mut Vec<Error>, new: &Value, old: &Value) {
    let strip = |object: &Value| -> Value {
        let mut spec = at(object, "/spec").cloned().unwrap_or(Value::Null);
        if let Some(map) = spec.as_object_mut() {
            for field in STATEFUL_SET_MUTABLE {
                map.remove(*field);
            }
            map.retain(|_, value| !value.is_null());
        }
        spec
    };
    if strip(new) != strip(old) {
        errors.push(Error::forbidden(
            &Path::new("spec"),
            "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', \
             'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
        ));
    }
}

fn persistent_volume_claim(errors: &mut Vec<Error>, new: &Value, old: &Value) {
    let strip = |object: &Value, volume_name: Option<&Value>| -> Value {
        let mut spec = at(object, "/spec").cloned().unwrap_or(Value::Null);
        if let Some(resources) = spec.get_mut("resources").and_then(Value::as_object_mut) {
            resources.remove("requests");
        }
        if let Some(map) = spec.as_object_mut() {
            map.remove("volumeAttributesClassName");
            if let Some(name) = volume_name {
                map.insert("volumeName".into(), name.clone());
            }
            map.retain(|_, value| !value.is_null());
        }
        spec
    };
    // The binder may fill in an empty volumeName once.
    let bound_now = if at(old, "/spec/volumeName").is_none() {
        at(new, "/spec/volumeName")
    } else {
        None
    };
    if strip(new, None) != strip(old, bound_now) {
        errors.push(Error::forbidden(
            &Path::new("spec"),
            "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
        ));
    }
    let storage = "/spec/resources/requests/storage";
    if let (Some(new_amount), Some(old_amount)) = (
        at(new, storage).and_then(quantity_amount),
        at(old, storage).and_then(quantity_amount),
    ) && new_amount < old_amount
    {
        errors.push(Error::forbidden(
            &Path::new("spec.resources.requests").key("storage"),
            "field can not be less than previous value",
        ));
    }
}

#[cfg(test)]
mod tests;
