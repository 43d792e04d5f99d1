//! Tests for the minimal OpenAPI v3 documents and their hashes.

#![allow(clippy::unwrap_used)]

use serde_json::json;

use super::*;

#[test]
fn openapi_documents_advertise_field_validation() {
    let registry = Registry::builtin();
    let index = registry.openapi_v3_index();
    let url = index["paths"]["apis/apps/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap();
    let document = registry.openapi_v3_document("apis/apps/v1").unwrap();
    assert_eq!(
        url,
        format!("/openapi/v3/apis/apps/v1?hash={}", content_hash(&document))
    );
    assert_eq!(registry.openapi_v3_index(), index, "the index is stable");
    let patch =
        &document["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    assert_eq!(
        patch["x-kubernetes-group-version-kind"],
        json!({"group": "apps", "version": "v1", "kind": "Deployment"})
    );
    let parameters: Vec<&str> = patch["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(parameters.contains(&"fieldValidation") && parameters.contains(&"fieldManager"));
    assert!(patch.get("requestBody").is_none());
    let scale = &document["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]
        ["patch"];
    assert_eq!(
        scale["x-kubernetes-group-version-kind"]["kind"],
        json!("Scale")
    );

    let core = registry.openapi_v3_document("/api/v1").unwrap();
    assert!(core["paths"].get("/api/v1/nodes/{name}").is_some());
    assert!(index["paths"].get("apis/metrics.k8s.io/v1beta1").is_none());
    assert!(registry.openapi_v3_document("apis/nothing/v1").is_none());
}
