//! Tests for update rules: what may and may not change once an object exists.

#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};

use crate::defaults;
use crate::registry::Registry;
use crate::validation::validate_update;

fn update_messages(group: &str, kind: &str, mut old: Value, mut new: Value) -> Vec<String> {
    defaults::apply(group, kind, &mut old);
    defaults::apply(group, kind, &mut new);
    let registry = Registry::builtin();
    let resource = registry.by_group_kind(group, kind).unwrap();
    validate_update(resource, &new, &old)
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn set(base: &Value, pointer: &str, value: Value) -> Value {
    let mut object = base.clone();
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    match object
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("{pointer}"))
    {
        Value::Array(items) => items[key.parse::<usize>().unwrap()] = value,
        parent => parent[key] = value,
    }
    object
}

fn meta(name: &str) -> Value {
    json!({"name": name, "namespace": "default", "uid": "u1", "creationTimestamp": "2026-01-01T00:00:00Z"})
}

#[test]
fn metadata_identity_is_immutable() {
    let old = json!({"metadata": meta("cfg"), "data": {"a": "1"}});
    assert!(
        update_messages(
            "",
            "ConfigMap",
            old.clone(),
            set(&old, "/data/a", json!("2"))
        )
        .is_empty()
    );
    assert_eq!(
        update_messages(
            "",
            "ConfigMap",
            old.clone(),
            set(&old, "/metadata/uid", json!("u2"))
        ),
        vec!["metadata.uid: Invalid value: \"u2\": field is immutable"]
    );
    assert_eq!(
        update_messages(
            "",
            "ConfigMap",
            old.clone(),
            set(&old, "/metadata/name", json!("other"))
        ),
        vec!["metadata.name: Invalid value: \"other\": field is immutable"]
    );
}

#[test]
fn immutable_config_maps_and_secrets() {
    let old = json!({"metadata": meta("cfg"), "immutable": true, "data": {"a": "1"}});
    assert_eq!(
        update_messages(
            "",
            "ConfigMap",
            old.clone(),
            set(&old, "/data/a", json!("2"))
        ),
        vec!["data: Forbidden: field is immutable when `immutable` is set"]
    );
    assert_eq!(
        update_messages(
            "",
            "Secret",
            old.clone(),
            set(&old, "/immutable", json!(false))
        ),
        vec!["immutable: Forbidden: field is immutable when `immutable` is set"]
    );
}

#[test]
fn workload_selectors_and_job_templates() {
    let deployment = json!({"metadata": meta("web"), "spec": {"selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web", "tier": "a"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
    let scaled = set(
        &deployment,
        "/spec/template/spec/containers/0/image",
        json!("nginx:2"),
    );
    assert!(update_messages("apps", "Deployment", deployment.clone(), scaled).is_empty());
    let reselected = set(
        &deployment,
        "/spec/selector",
        json!({"matchLabels": {"tier": "a"}}),
    );
    assert_eq!(
        update_messages("apps", "Deployment", deployment, reselected),
        vec![
            "spec.selector: Invalid value: {\"matchLabels\":{\"tier\":\"a\"}}: field is immutable"
        ]
    );

    let job = json!({"metadata": meta("pi"), "spec": {"selector": {"matchLabels": {"j": "1"}},
        "template": {"metadata": {"labels": {"j": "1"}}, "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "perl"}]}}}});
    let changed = set(
        &job,
        "/spec/template/spec/containers/0/image",
        json!("perl:2"),
    );
    let messages = update_messages("batch", "Job", job.clone(), changed.clone());
    assert_eq!(messages.len(), 1);
    assert!(
        messages[0].starts_with("spec.template: Invalid value: {"),
        "{messages:?}"
    );
    assert!(messages[0].ends_with(": field is immutable"));
    let suspended = set(&job, "/spec/suspend", json!(true));
    let resumed = set(&changed, "/spec/suspend", json!(true));
    assert!(update_messages("batch", "Job", suspended, resumed).is_empty());

    let stateful = json!({"metadata": meta("db"), "spec": {"serviceName": "db", "selector": {"matchLabels": {"a": "b"}},
        "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "pg"}]}}}});
    assert!(
        update_messages(
            "apps",
            "StatefulSet",
            stateful.clone(),
            set(&stateful, "/spec/replicas", json!(3))
        )
        .is_empty()
    );
    let renamed = set(&stateful, "/spec/serviceName", json!("other"));
    assert_eq!(
        update_messages("apps", "StatefulSet", stateful, renamed).len(),
        1
    );
}

#[test]
fn services_claims_pods_and_bindings() {
    let service = json!({"metadata": meta("web"), "spec": {"clusterIP": "10.43.0.10", "ports": [{"port": 80}]}});
    assert_eq!(
        update_messages(
            "",
            "Service",
            service.clone(),
            set(&service, "/spec/clusterIP", json!("10.43.0.11"))
        ),
        vec!["spec.clusterIP: Invalid value: \"10.43.0.11\": field is immutable"]
    );
    assert!(
        update_messages(
            "",
            "Service",
            service.clone(),
            set(&service, "/spec/ports/0/port", json!(81))
        )
        .is_empty()
    );

    let claim = json!({"metadata": meta("data"), "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
    assert!(
        update_messages(
            "",
            "PersistentVolumeClaim",
            claim.clone(),
            set(&claim, "/spec/resources/requests/storage", json!("2Gi"))
        )
        .is_empty()
    );
    assert_eq!(
        update_messages(
            "",
            "PersistentVolumeClaim",
            claim.clone(),
            set(&claim, "/spec/resources/requests/storage", json!("512Mi"))
        ),
        vec![
            "spec.resources.requests[storage]: Forbidden: field can not be less than previous value"
        ]
    );
    let mut bound = claim.clone();
    bound["spec"]["volumeName"] = json!("pv-1");
    assert!(
        update_messages("", "PersistentVolumeClaim", claim.clone(), bound).is_empty(),
        "the binder may set volumeName once"
    );
    assert_eq!(
        update_messages(
            "",
            "PersistentVolumeClaim",
            claim.clone(),
            set(&claim, "/spec/accessModes", json!(["ReadWriteMany"]))
        )
        .len(),
        1
    );

    let pod =
        json!({"metadata": meta("p"), "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}});
    assert!(
        update_messages(
            "",
            "Pod",
            pod.clone(),
            set(&pod, "/spec/containers/0/image", json!("nginx:2"))
        )
        .is_empty()
    );
    let mut tolerated = pod.clone();
    tolerated["spec"]["tolerations"] =
        json!([{"key": "k", "operator": "Exists", "effect": "NoSchedule"}]);
    assert!(update_messages("", "Pod", pod.clone(), tolerated).is_empty());
    let renamed = set(&pod, "/spec/containers/0/name", json!("d"));
    let messages = update_messages("", "Pod", pod, renamed);
    assert_eq!(messages.len(), 1);
    assert!(
        messages[0].starts_with("spec: Forbidden: pod updates may not change fields other than")
    );

    let binding = json!({"metadata": meta("b"), "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"}, "subjects": []});
    let rebound = set(&binding, "/roleRef/name", json!("admin"));
    assert_eq!(
        update_messages("rbac.authorization.k8s.io", "RoleBinding", binding, rebound).len(),
        1
    );
}
