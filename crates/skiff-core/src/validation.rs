//! Validation of objects on create and update: every rule kube-apiserver enforces that users
//! meet in practice (required fields, value ranges, names, selectors that match templates,
//! ports, IPs, Ingress paths, immutable fields), reported all at once as field errors that become
//! one 422 `Invalid` Status.
//!
//! Invariants: validation runs on the defaulted object (`defaults::apply`, and for a new Job
//! `defaults::job_selector`, first); it never stops at the first problem; it never panics, and a
//! value of the wrong JSON type reads as absent (strict decoding rejects those earlier). Kinds
//! without rules here get the `metadata` checks only.

mod config;
mod container;
mod cron;
mod meta;
mod network;
mod pod;
mod update;
mod values;
mod workloads;

use serde_json::Value;

use crate::field;
use crate::registry::Resource;
use crate::status;

pub use config::{HIGHEST_USER_PRIORITY, MAX_DATA_BYTES};
pub use network::NODE_PORT_RANGE;
pub use values::parse_quantity;

fn kind_rules(errors: &mut Vec<field::Error>, group: &str, kind: &str, object: &Value) {
    match (group, kind) {
        ("", "Pod") => {
            let empty = Value::Null;
            let spec = object.get("spec").unwrap_or(&empty);
            pod::pod_spec(errors, &field::Path::new("spec"), spec);
        }
        ("", "Service") => network::service(errors, object),
        ("", "ConfigMap") => config::config_map(errors, object),
        ("", "Secret") => config::secret(errors, object),
        ("", "PersistentVolumeClaim") => config::persistent_volume_claim(errors, object),
        ("apps", "Deployment") => workloads::deployment(errors, object),
        ("apps", "ReplicaSet") => workloads::replica_set(errors, object),
        ("apps", "StatefulSet") => workloads::stateful_set(errors, object),
        ("apps", "DaemonSet") => workloads::daemon_set(errors, object),
        ("batch", "Job") => workloads::job(errors, object),
        ("batch", "CronJob") => workloads::cron_job(errors, object),
        ("networking.k8s.io", "Ingress") => network::ingress(errors, object),
        ("networking.k8s.io", "NetworkPolicy") => network::network_policy(errors, object),
        ("autoscaling", "HorizontalPodAutoscaler") => {
            config::horizontal_pod_autoscaler(errors, object)
        }
        ("policy", "PodDisruptionBudget") => config::pod_disruption_budget(errors, object),
        ("rbac.authorization.k8s.io", "Role" | "ClusterRole") => config::role(errors, object),
        ("rbac.authorization.k8s.io", "RoleBinding") => config::binding(errors, object, false),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => {
            config::binding(errors, object, true)
        }
        ("scheduling.k8s.io", "PriorityClass") => config::priority_class(errors, object),
        _ => {}
    }
}

/// Every field error of a new object of `resource`.
/// Virtual resources (access reviews, metrics) are never stored and carry no name, so only their
/// kind rules apply.
pub fn validate_create(resource: &Resource, object: &Value) -> Vec<field::Error> {
    let mut errors = if resource.stored {
        meta::object_meta(resource, object)
    } else {
        Vec::new()
    };
    kind_rules(&mut errors, &resource.group, &resource.kind, object);
    errors
}

/// Every field error of an update from `old` to `new`: the object must be valid, and the fields
/// that may not change must not have changed.
pub fn validate_update(resource: &Resource, new: &Value, old: &Value) -> Vec<field::Error> {
    let mut errors = meta::object_meta_update(new, old);
    errors.extend(validate_create(resource, new));
    errors.extend(update::immutable_fields(
        &resource.group,
        &resource.kind,
        new,
        old,
    ));
    errors
}

fn invalid(resource: &Resource, object: &Value, errors: &[field::Error]) -> status::Error {
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    status::Error::invalid(&resource.group, &resource.kind, name, errors)
}

/// [`validate_create`] as the 422 Status the API answers with.
pub fn check_create(resource: &Resource, object: &Value) -> Result<(), status::Error> {
    let errors = validate_create(resource, object);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(invalid(resource, object, &errors))
    }
}

/// [`validate_update`] as the 422 Status the API answers with.
pub fn check_update(resource: &Resource, new: &Value, old: &Value) -> Result<(), status::Error> {
    let errors = validate_update(resource, new, old);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(invalid(resource, new, &errors))
    }
}

#[cfg(test)]
mod tests;
