//! Namespace deletion: contents first, then the finalizer.

use serde_json::json;

use super::*;

fn ns(deleting: bool) -> Namespace {
    let mut value = json!({"metadata": {"name": "app"}, "spec": {"finalizers": ["kubernetes"]}});
    if deleting {
        value["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
    }
    serde_json::from_value(value).unwrap_or_default()
}

fn key(plural: &str) -> (String, String, String) {
    (String::new(), "v1".into(), plural.into())
}

#[test]
fn contents_then_finalizer() {
    let remaining = vec![
        (key("pods"), 3),
        (key("configmaps"), 0),
        (("apps".into(), "v1".into(), "deployments".into()), 1),
    ];
    assert!(plan(&ns(false), &remaining).is_empty());
    assert_eq!(
        plan(&ns(true), &remaining),
        vec![
            Change::DeleteAll {
                group: String::new(),
                version: "v1".into(),
                plural: "pods".into()
            },
            Change::DeleteAll {
                group: "apps".into(),
                version: "v1".into(),
                plural: "deployments".into()
            },
        ]
    );
    assert_eq!(plan(&ns(true), &[(key("pods"), 0)]), vec![Change::Finalize]);
}
