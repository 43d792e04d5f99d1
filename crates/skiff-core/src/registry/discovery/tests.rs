//! Tests for the discovery documents (legacy and aggregated).

#![allow(clippy::unwrap_used)]

use serde_json::json;

use super::*;

#[test]
fn legacy_discovery_documents() {
    let registry = Registry::builtin();
    let versions = registry.api_versions("10.0.0.1:6443");
    assert_eq!(versions["versions"], json!(["v1"]));
    assert_eq!(
        versions["serverAddressByClientCIDRs"][0]["serverAddress"],
        json!("10.0.0.1:6443")
    );

    let groups = registry.api_group_list();
    assert_eq!(groups["groups"][0]["name"], json!("apps"));
    let autoscaling = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "autoscaling")
        .unwrap();
    assert_eq!(
        autoscaling["preferredVersion"],
        json!({"groupVersion": "autoscaling/v2", "version": "v2"})
    );
    assert_eq!(
        registry.api_group("apps").unwrap()["kind"],
        json!("APIGroup")
    );
    assert!(registry.api_group("").is_none());

    let core = registry.api_resource_list("", "v1").unwrap();
    let entries = core["resources"].as_array().unwrap();
    let eviction = entries
        .iter()
        .find(|e| e["name"] == "pods/eviction")
        .unwrap();
    assert_eq!(
        eviction,
        &json!({"name": "pods/eviction", "singularName": "", "namespaced": true, "group": "policy",
                "version": "v1", "kind": "Eviction", "verbs": ["create"]})
    );
    let status = entries.iter().find(|e| e["name"] == "pods/status").unwrap();
    assert!(status.get("group").is_none());
    let pods = entries.iter().find(|e| e["name"] == "pods").unwrap();
    assert_eq!(pods["shortNames"], json!(["po"]));
    assert_eq!(pods["categories"], json!(["all"]));
    let apps = registry.api_resource_list("apps", "v1").unwrap();
    assert!(
        apps["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "deployments/scale" && e["group"] == "autoscaling")
    );
    assert!(registry.api_resource_list("apps", "v2").is_none());
}

#[test]
fn aggregated_discovery_documents() {
    let registry = Registry::builtin();
    let api = registry.aggregated_discovery(DiscoveryRoot::Api);
    assert_eq!(api["kind"], json!("APIGroupDiscoveryList"));
    assert_eq!(api["apiVersion"], json!("apidiscovery.k8s.io/v2"));
    let items = api["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["metadata"], json!({"name": ""}));
    let resources = items[0]["versions"][0]["resources"].as_array().unwrap();
    let pods = resources.iter().find(|r| r["resource"] == "pods").unwrap();
    assert_eq!(
        pods["responseKind"],
        json!({"group": "", "version": "v1", "kind": "Pod"})
    );
    assert_eq!(pods["scope"], json!("Namespaced"));
    assert_eq!(pods["singularResource"], json!("pod"));
    let eviction = pods["subresources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["subresource"] == "eviction")
        .unwrap();
    assert_eq!(
        eviction["responseKind"],
        json!({"group": "policy", "version": "v1", "kind": "Eviction"})
    );

    let apis = registry.aggregated_discovery(DiscoveryRoot::Apis);
    let names: Vec<&str> = apis["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.first(), Some(&"apps"));
    assert!(names.contains(&"metrics.k8s.io"));
    assert!(!names.contains(&""));
    let autoscaling = apis["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["metadata"]["name"] == "autoscaling")
        .unwrap();
    assert_eq!(autoscaling["versions"][0]["version"], json!("v2"));
    assert_eq!(autoscaling["versions"][1]["version"], json!("v1"));
}
