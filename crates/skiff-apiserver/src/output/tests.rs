//! Unit tests of list rendering: the streamed JSON list body equals the encoded list value.

use serde_json::json;
use skiff_core::registry::Registry;

use super::*;

#[test]
fn the_streamed_json_list_has_the_bytes_of_the_encoded_list() {
    let registry = Registry::builtin();
    let configmaps = registry.get("", "v1", "configmaps").expect("configmaps");
    let deployments = registry
        .get("apps", "v1", "deployments")
        .expect("deployments");
    let objects = [
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "resourceVersion": "3"}, "data": {"k": "v\n\"q\""}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}, "data": {"ü": "é"}}),
        json!({}),
    ];
    for resource in [configmaps, deployments] {
        for n in 0..=objects.len() {
            for token in [None, Some("eyJ9".to_string())] {
                let items = objects[..n].to_vec();
                let expected = serde_json::to_vec(&json_list(
                    resource,
                    items.clone(),
                    list_metadata(17, token.clone()),
                ))
                .expect("encodes");
                let mut writer = JsonListWriter::new(resource);
                for item in &items {
                    writer.push(item);
                }
                assert_eq!(
                    String::from_utf8_lossy(&writer.finish(resource, 17, token)),
                    String::from_utf8_lossy(&expected)
                );
            }
        }
    }
}
