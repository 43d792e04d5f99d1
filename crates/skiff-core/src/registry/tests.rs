//! Tests for the registry: the table's facts, lookups, storage keys, discovery and OpenAPI.

#![allow(clippy::unwrap_used, clippy::type_complexity)]

use std::collections::BTreeSet;

use super::*;

#[test]
fn table_is_consistent() {
    let registry = Registry::builtin();
    let mut seen = BTreeSet::new();
    for resource in registry.resources() {
        assert!(
            registry.has_group_version(&resource.group, &resource.version),
            "{} has an unlisted group version",
            resource.plural
        );
        assert!(
            seen.insert((
                resource.group.clone(),
                resource.version.clone(),
                resource.plural.clone()
            )),
            "{} repeats",
            resource.plural
        );
        assert_eq!(resource.list_kind, format!("{}List", resource.kind));
    }
    for group in registry.groups() {
        for version in &group.versions {
            assert!(registry.resources_in(&group.name, version).next().is_some());
        }
    }
}

#[test]
fn facts_match_kubernetes() {
    let registry = Registry::builtin();
    // (group, version, plural, kind, singular, short names, in `all`, namespaced)
    let cases: &[(&str, &str, &str, &str, &str, &[&str], bool, bool)] = &[
        ("", "v1", "pods", "Pod", "pod", &["po"], true, true),
        (
            "",
            "v1",
            "services",
            "Service",
            "service",
            &["svc"],
            true,
            true,
        ),
        (
            "",
            "v1",
            "namespaces",
            "Namespace",
            "namespace",
            &["ns"],
            false,
            false,
        ),
        ("", "v1", "nodes", "Node", "node", &["no"], false, false),
        (
            "",
            "v1",
            "endpoints",
            "Endpoints",
            "endpoints",
            &["ep"],
            false,
            true,
        ),
        (
            "",
            "v1",
            "persistentvolumeclaims",
            "PersistentVolumeClaim",
            "persistentvolumeclaim",
            &["pvc"],
            false,
            true,
        ),
        (
            "",
            "v1",
            "resourcequotas",
            "ResourceQuota",
            "resourcequota",
            &["quota"],
            false,
            true,
        ),
        (
            "",
            "v1",
            "limitranges",
            "LimitRange",
            "limitrange",
            &["limits"],
            false,
            true,
        ),
        (
            "apps",
            "v1",
            "deployments",
            "Deployment",
            "deployment",
            &["deploy"],
            true,
            true,
        ),
        (
            "apps",
            "v1",
            "statefulsets",
            "StatefulSet",
            "statefulset",
            &["sts"],
            true,
            true,
        ),
        (
            "apps",
            "v1",
            "controllerrevisions",
            "ControllerRevision",
            "controllerrevision",
            &[],
            false,
            true,
        ),
        ("batch", "v1", "jobs", "Job", "job", &[], true, true),
        (
            "batch",
            "v1",
            "cronjobs",
            "CronJob",
            "cronjob",
            &["cj"],
            true,
            true,
        ),
        (
            "autoscaling",
            "v2",
            "horizontalpodautoscalers",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscaler",
            &["hpa"],
            true,
            true,
        ),
        (
            "networking.k8s.io",
            "v1",
            "networkpolicies",
            "NetworkPolicy",
            "networkpolicy",
            &["netpol"],
            false,
            true,
        ),
        (
            "scheduling.k8s.io",
            "v1",
            "priorityclasses",
            "PriorityClass",
            "priorityclass",
            &["pc"],
            false,
            false,
        ),
        (
            "storage.k8s.io",
            "v1",
            "storageclasses",
            "StorageClass",
            "storageclass",
            &["sc"],
            false,
            false,
        ),
        (
            "rbac.authorization.k8s.io",
            "v1",
            "clusterroles",
            "ClusterRole",
            "clusterrole",
            &[],
            false,
            false,
        ),
    ];
    for (group, version, plural, kind, singular, shorts, in_all, namespaced) in cases {
        let resource = registry
            .get(group, version, plural)
            .unwrap_or_else(|| panic!("{plural}"));
        assert_eq!(&resource.kind, kind);
        assert_eq!(&resource.singular, singular);
        assert_eq!(
            resource.short_names,
            shorts.iter().map(|s| s.to_string()).collect::<Vec<_>>()
        );
        assert_eq!(
            resource.categories.contains(&"all".to_string()),
            *in_all,
            "{plural}"
        );
        assert_eq!(resource.is_namespaced(), *namespaced, "{plural}");
    }
}

#[test]
fn subresources_have_their_own_kinds() {
    let registry = Registry::builtin();
    let pods = registry.get("", "v1", "pods").unwrap();
    let eviction = pods.subresource("eviction").unwrap();
    assert_eq!(
        (eviction.group.as_str(), eviction.kind.as_str()),
        ("policy", "Eviction")
    );
    assert_eq!(pods.subresource("log").unwrap().verbs, vec!["get"]);
    let scale = registry
        .get("apps", "v1", "deployments")
        .unwrap()
        .subresource("scale")
        .unwrap();
    assert_eq!(
        (
            scale.group.as_str(),
            scale.version.as_str(),
            scale.kind.as_str()
        ),
        ("autoscaling", "v1", "Scale")
    );
    assert!(
        registry
            .get("", "v1", "namespaces")
            .unwrap()
            .subresource("finalize")
            .is_some()
    );
    let ssar = registry
        .get("authorization.k8s.io", "v1", "selfsubjectaccessreviews")
        .unwrap();
    assert_eq!(ssar.verbs, vec!["create"]);
    assert!(!ssar.stored);
    let node_metrics = registry.get("metrics.k8s.io", "v1beta1", "nodes").unwrap();
    assert_eq!(node_metrics.verbs, vec!["get", "list"]);
}

#[test]
fn lookups_by_name_kind_and_version() {
    let registry = Registry::builtin();
    let resolved = |name: &str| -> Vec<String> {
        registry
            .resolve(name)
            .iter()
            .map(|r| format!("{}/{}", r.api_version(), r.plural))
            .collect()
    };
    assert_eq!(resolved("deploy"), vec!["apps/v1/deployments"]);
    assert_eq!(resolved("PO"), vec!["v1/pods"]);
    assert_eq!(
        resolved("hpa"),
        vec!["autoscaling/v2/horizontalpodautoscalers"]
    );
    assert_eq!(resolved("ev"), vec!["v1/events", "events.k8s.io/v1/events"]);
    assert_eq!(
        resolved("events.events.k8s.io"),
        vec!["events.k8s.io/v1/events"]
    );
    assert_eq!(resolved("deployment.apps"), vec!["apps/v1/deployments"]);
    assert_eq!(
        resolved("nodes"),
        vec!["v1/nodes", "metrics.k8s.io/v1beta1/nodes"]
    );
    assert!(resolved("nothing").is_empty());

    assert_eq!(registry.preferred_version("autoscaling"), Some("v2"));
    assert_eq!(registry.preferred_version(""), Some("v1"));
    assert_eq!(registry.preferred_version("example.com"), None);
    assert_eq!(
        registry
            .by_group_kind("autoscaling", "HorizontalPodAutoscaler")
            .unwrap()
            .version,
        "v2"
    );
    assert_eq!(
        registry
            .by_kind("autoscaling", "v1", "HorizontalPodAutoscaler")
            .unwrap()
            .version,
        "v1"
    );
    assert!(registry.by_kind("apps", "v1", "Pod").is_none());
    assert_eq!(split_api_version("apps/v1"), ("apps", "v1"));
    assert_eq!(split_api_version("v1"), ("", "v1"));
}

#[test]
fn storage_keys_name_the_core_group() {
    let registry = Registry::builtin();
    let pods = registry.get("", "v1", "pods").unwrap();
    assert_eq!(pods.storage_prefix(), "/registry/core/pods");
    assert_eq!(
        pods.storage_key("default", "web"),
        "/registry/core/pods/default/web"
    );
    let nodes = registry.get("", "v1", "nodes").unwrap();
    assert_eq!(
        nodes.storage_key("ignored", "n1"),
        "/registry/core/nodes/n1"
    );
    let v1 = registry
        .get("autoscaling", "v1", "horizontalpodautoscalers")
        .unwrap();
    let v2 = registry
        .get("autoscaling", "v2", "horizontalpodautoscalers")
        .unwrap();
    assert_eq!(v1.storage_key("a", "b"), v2.storage_key("a", "b"));
}
