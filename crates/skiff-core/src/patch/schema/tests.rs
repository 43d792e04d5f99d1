//! Tests for the list-semantics table: lookups by kind and the entries kubectl relies on.

use super::{ListType, Strategy, for_kind};

fn field_at(group: &str, kind: &str, path: &[&str]) -> &'static super::Field {
    let mut schema = for_kind(group, kind).expect("known kind");
    let (last, parents) = path.split_last().expect("non-empty path");
    for name in parents {
        schema = schema
            .field(name)
            .and_then(|field| field.schema)
            .expect("nested schema");
    }
    schema.field(last).expect("field in table")
}

#[test]
fn knows_the_merge_keys_kubectl_depends_on() {
    let cases: &[(&str, &str, &[&str], Strategy)] = &[
        (
            "apps",
            "Deployment",
            &["spec", "template", "spec", "containers"],
            Strategy::Merge(Some("name")),
        ),
        (
            "apps",
            "Deployment",
            &["spec", "template", "spec", "containers", "env"],
            Strategy::Merge(Some("name")),
        ),
        (
            "apps",
            "Deployment",
            &["spec", "template", "spec", "containers", "ports"],
            Strategy::Merge(Some("containerPort")),
        ),
        (
            "",
            "Pod",
            &["spec", "volumes"],
            Strategy::Merge(Some("name")),
        ),
        (
            "",
            "Pod",
            &["spec", "containers", "volumeMounts"],
            Strategy::Merge(Some("mountPath")),
        ),
        (
            "",
            "Service",
            &["spec", "ports"],
            Strategy::Merge(Some("port")),
        ),
        (
            "",
            "ConfigMap",
            &["metadata", "finalizers"],
            Strategy::Merge(None),
        ),
        (
            "",
            "Node",
            &["status", "addresses"],
            Strategy::Merge(Some("type")),
        ),
        (
            "batch",
            "CronJob",
            &[
                "spec",
                "jobTemplate",
                "spec",
                "template",
                "spec",
                "initContainers",
            ],
            Strategy::Merge(Some("name")),
        ),
        (
            "policy",
            "PodDisruptionBudget",
            &["spec", "selector"],
            Strategy::Replace,
        ),
    ];
    for (group, kind, path, strategy) in cases {
        assert_eq!(
            field_at(group, kind, path).strategy,
            *strategy,
            "{kind} {path:?}"
        );
    }
}

#[test]
fn separates_apply_list_types_from_patch_strategies() {
    let ports = field_at("", "Pod", &["spec", "containers", "ports"]);
    let ListType::Map(keys) = ports.list_type else {
        panic!("ports are a list map")
    };
    let names: Vec<_> = keys.iter().map(|key| (key.name, key.default)).collect();
    assert_eq!(names, [("containerPort", None), ("protocol", Some("TCP"))]);
    assert_eq!(
        field_at("batch", "Job", &["status", "conditions"]).list_type,
        ListType::Atomic
    );
    assert_eq!(
        field_at("batch", "Job", &["status", "conditions"]).strategy,
        Strategy::Merge(Some("type"))
    );
    assert_eq!(
        field_at("", "Secret", &["metadata", "finalizers"]).list_type,
        ListType::Set
    );
    assert!(
        field_at("apps", "Deployment", &["spec", "selector"])
            .schema
            .is_some_and(|schema| schema.atomic)
    );
}

#[test]
fn leaves_unknown_kinds_and_fields_without_metadata() {
    assert!(for_kind("example.com", "Widget").is_none());
    let pod = for_kind("", "Pod").expect("pod");
    assert!(
        pod.field("spec")
            .and_then(|spec| spec.schema)
            .and_then(|spec| spec.field("tolerations"))
            .is_none()
    );
    assert!(
        for_kind("", "ConfigMap")
            .and_then(|config_map| config_map.field("data"))
            .is_none()
    );
}
