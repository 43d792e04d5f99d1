//! Defaulting: the values kube-apiserver fills in when a client leaves fields out, applied to
//! the JSON of an object before validation (pods, pod templates in every workload, Deployment,
//! ReplicaSet, StatefulSet, DaemonSet, Job, CronJob, Service, Secret, Namespace, PV, PVC,
//! NetworkPolicy, HPA, RBAC bindings, PriorityClass, StorageClass).
//!
//! Invariants: defaulting is pure and idempotent (`apply` twice equals `apply` once); it only
//! fills fields that are absent or `null`, never overwrites what the client sent, and skips any
//! part of the object whose JSON type is wrong (validation reports those). Values that need a
//! server-chosen input (a Job's selector needs the object's uid) take it as a parameter.

mod pod;
mod workloads;

pub use pod::image_pull_policy;

use serde_json::{Map, Value, json};

/// Fill in every default for an object of (group, kind).
pub fn apply(group: &str, kind: &str, object: &mut Value) {
    match (group, kind) {
        ("", "Pod") => pod::pod(object),
        ("", "PodTemplate") | ("", "ReplicationController") => {
            if let Some(template) = object.pointer_mut("/template") {
                pod::template(template);
            }
        }
        ("", "Service") => service(object),
        ("", "Secret") => {
            if let Some(secret) = object.as_object_mut() {
                set(secret, "type", json!("Opaque"));
            }
        }
        ("", "Namespace") => namespace(object),
        ("", "PersistentVolumeClaim") => persistent_volume_claim(object),
        ("", "PersistentVolume") => persistent_volume(object),
        ("", "Endpoints") => endpoints(object),
        ("apps", "Deployment") => workloads::deployment(object),
        ("apps", "ReplicaSet") => workloads::replica_set(object),
        ("apps", "StatefulSet") => workloads::stateful_set(object),
        ("apps", "DaemonSet") => workloads::daemon_set(object),
        ("batch", "Job") => workloads::job(object),
        ("batch", "CronJob") => workloads::cron_job(object),
        ("autoscaling", "HorizontalPodAutoscaler") => {
            if let Some(spec) = child(object, "spec") {
                set(spec, "minReplicas", json!(1));
            }
        }
        ("networking.k8s.io", "NetworkPolicy") => network_policy(object),
        ("discovery.k8s.io", "EndpointSlice") => {
            for port in items(object, "ports") {
                set(port, "protocol", json!("TCP"));
            }
        }
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => bindings(object),
        ("scheduling.k8s.io", "PriorityClass") => {
            if let Some(class) = object.as_object_mut() {
                set(class, "preemptionPolicy", json!("PreemptLowerPriority"));
            }
        }
        ("storage.k8s.io", "StorageClass") => {
            if let Some(class) = object.as_object_mut() {
                set(class, "reclaimPolicy", json!("Delete"));
                set(class, "volumeBindingMode", json!("Immediate"));
            }
        }
        _ => {}
    }
}

/// Give a Job created without `spec.manualSelector: true` the selector and pod labels that tie
/// its pods to it: `batch.kubernetes.io/controller-uid` (and the legacy `controller-uid`) set to
/// the Job's `uid`, and `batch.kubernetes.io/job-name`/`job-name` set to its name. Call it once,
/// at create, after the uid is assigned.
pub fn job_selector(job: &mut Value, uid: &str) {
    let name = job
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let Some(spec) = child(job, "spec") else {
        return;
    };
    if spec.get("manualSelector").and_then(Value::as_bool) == Some(true) {
        return;
    }
    spec.insert(
        "selector".into(),
        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}),
    );
    let Some(labels) = ensure(spec, "template").and_then(|template| ensure(template, "metadata"))
    else {
        return;
    };
    let Some(labels) = ensure(labels, "labels") else {
        return;
    };
    for (key, value) in [
        ("batch.kubernetes.io/controller-uid", uid),
        ("batch.kubernetes.io/job-name", name.as_str()),
        ("controller-uid", uid),
        ("job-name", name.as_str()),
    ] {
        labels.insert(key.into(), json!(value));
    }
}

/// Set `key` to `value` when it is absent or null.
pub(crate) fn set(object: &mut Map<String, Value>, key: &str, value: Value) {
    match object.get(key) {
        None | Some(Value::Null) => {
            object.insert(key.to_string(), value);
        }
        Some(_) => {}
    }
}

/// The object under `key`, created empty when absent or null; `None` when it is not an object.
pub(crate) fn ensure<'a>(
    object: &'a mut Map<String, Value>,
    key: &str,
) -> Option<&'a mut Map<String, Value>> {
    set(object, key, json!({}));
    object.get_mut(key).and_then(Value::as_object_mut)
}

/// The existing object under `key` of an object value.
pub(crate) fn child<'a>(value: &'a mut Value, key: &str) -> Option<&'a mut Map<String, Value>> {
    value.get_mut(key).and_then(Value::as_object_mut)
}

/// The object elements of the list under `key` (non-objects are skipped).
pub(crate) fn items<'a>(
    value: &'a mut Value,
    key: &str,
) -> impl Iterator<Item = &'a mut Map<String, Value>> {
    value
        .get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
}

fn service(object: &mut Value) {
    let Some(spec) = child(object, "spec") else {
        return;
    };
    set(spec, "type", json!("ClusterIP"));
    set(spec, "sessionAffinity", json!("None"));
    let service_type = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if spec.get("sessionAffinity").and_then(Value::as_str) == Some("ClientIP")
        && let Some(client_ip) =
            ensure(spec, "sessionAffinityConfig").and_then(|c| ensure(c, "clientIP"))
    {
        set(client_ip, "timeoutSeconds", json!(10800));
    }
    if service_type != "ExternalName" {
        set(spec, "ipFamilies", json!(["IPv4"]));
        set(spec, "ipFamilyPolicy", json!("SingleStack"));
        set(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if service_type == "NodePort" || service_type == "LoadBalancer" {
        set(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if service_type == "LoadBalancer" {
        set(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    let ports = spec.get_mut("ports").and_then(Value::as_array_mut);
    for port in ports.into_iter().flatten().filter_map(Value::as_object_mut) {
        set(port, "protocol", json!("TCP"));
        let unset = match port.get("targetPort") {
            None | Some(Value::Null) => true,
            Some(Value::Number(number)) => number.as_i64() == Some(0),
            Some(Value::String(text)) => text.is_empty(),
            Some(_) => false,
        };
        if unset && let Some(number) = port.get("port").cloned() {
            port.insert("targetPort".into(), number);
        }
    }
}

fn namespace(object: &mut Value) {
    let Some(namespace) = object.as_object_mut() else {
        return;
    };
    let name = namespace
        .get("metadata")
        .and_then(|metadata| metadata.get("name"))
        .and_then(Value::as_str)
        .map(String::from);
    if let (Some(name), Some(metadata)) = (name, ensure(namespace, "metadata"))
        && let Some(labels) = ensure(metadata, "labels")
    {
        labels.insert("kubernetes.io/metadata.name".into(), json!(name));
    }
    if let Some(spec) = ensure(namespace, "spec") {
        set(spec, "finalizers", json!(["kubernetes"]));
    }
    if let Some(status) = ensure(namespace, "status") {
        set(status, "phase", json!("Active"));
    }
}

/// Defaults of a PVC spec (also used for StatefulSet volume claim templates).
pub(crate) fn claim_spec(claim: &mut Value) {
    if let Some(spec) = child(claim, "spec") {
        set(spec, "volumeMode", json!("Filesystem"));
    }
}

fn persistent_volume_claim(object: &mut Value) {
    claim_spec(object);
    if let Some(status) = object
        .as_object_mut()
        .and_then(|claim| ensure(claim, "status"))
    {
        set(status, "phase", json!("Pending"));
    }
}

fn persistent_volume(object: &mut Value) {
    if let Some(spec) = child(object, "spec") {
        set(spec, "persistentVolumeReclaimPolicy", json!("Retain"));
        set(spec, "volumeMode", json!("Filesystem"));
    }
    if let Some(status) = object
        .as_object_mut()
        .and_then(|volume| ensure(volume, "status"))
    {
        set(status, "phase", json!("Pending"));
    }
}

fn endpoints(object: &mut Value) {
    for subset in items(object, "subsets") {
        let ports = subset.get_mut("ports").and_then(Value::as_array_mut);
        for port in ports.into_iter().flatten().filter_map(Value::as_object_mut) {
            set(port, "protocol", json!("TCP"));
        }
    }
}

fn network_policy(object: &mut Value) {
    let Some(spec) = child(object, "spec") else {
        return;
    };
    for direction in ["ingress", "egress"] {
        let rules = spec.get_mut(direction).and_then(Value::as_array_mut);
        for rule in rules.into_iter().flatten() {
            for port in items(rule, "ports") {
                set(port, "protocol", json!("TCP"));
            }
        }
    }
    let has_egress = spec
        .get("egress")
        .and_then(Value::as_array)
        .is_some_and(|rules| !rules.is_empty());
    let policy_types = if has_egress {
        json!(["Ingress", "Egress"])
    } else {
        json!(["Ingress"])
    };
    match spec.get("policyTypes") {
        Some(Value::Array(types)) if !types.is_empty() => {}
        _ => {
            spec.insert("policyTypes".into(), policy_types);
        }
    }
}

fn bindings(object: &mut Value) {
    for subject in items(object, "subjects") {
        let kind = subject
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let api_group = if kind == "ServiceAccount" {
            ""
        } else {
            "rbac.authorization.k8s.io"
        };
        set(subject, "apiGroup", json!(api_group));
    }
}

#[cfg(test)]
mod tests;
