//! Tests for field sets in the `fieldsV1` format and for `managedFields` entries.

use serde_json::json;

use super::{Entry, FieldSet, Operation, display, parse, render};

fn path(elements: &[&str]) -> Vec<String> {
    elements.iter().map(|element| element.to_string()).collect()
}

#[test]
fn round_trips_fields_v1() {
    let fields = json!({
        "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
        "f:spec": {
            "f:replicas": {},
            "f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {".": {}, "f:image": {}, "f:name": {}}}}}
        }
    });
    let set = FieldSet::from_fields_v1(&fields).expect("parses");
    assert_eq!(set.len(), 6);
    assert!(set.contains(&path(&["f:metadata", "f:labels"])));
    assert!(set.contains(&path(&[
        "f:spec",
        "f:template",
        "f:spec",
        "f:containers",
        "k:{\"name\":\"nginx\"}"
    ])));
    assert!(!set.contains(&path(&["f:spec"])));
    assert_eq!(set.to_fields_v1(), fields);
}

#[test]
fn refuses_invalid_fields_v1() {
    let cases = [
        (json!([]), "fieldsV1 must be an object"),
        (
            json!({"spec": {}}),
            "\"spec\" is not a fieldsV1 path element",
        ),
        (
            json!({"f:spec": 1}),
            "the value of \"f:spec\" must be an object",
        ),
    ];
    for (fields, message) in cases {
        assert_eq!(FieldSet::from_fields_v1(&fields), Err(message.to_owned()));
    }
}

#[test]
fn displays_paths_like_kubernetes() {
    let cases = [
        (path(&["f:spec", "f:replicas"]), ".spec.replicas"),
        (
            path(&[
                "f:spec",
                "f:containers",
                "k:{\"name\":\"nginx\"}",
                "f:image",
            ]),
            ".spec.containers[name=\"nginx\"].image",
        ),
        (
            path(&[
                "f:spec",
                "f:ports",
                "k:{\"containerPort\":80,\"protocol\":\"TCP\"}",
            ]),
            ".spec.ports[containerPort=80,protocol=\"TCP\"]",
        ),
        (
            path(&["f:metadata", "f:finalizers", "v:\"a\""]),
            ".metadata.finalizers[=\"a\"]",
        ),
        (path(&["f:args", "i:2"]), ".args[2]"),
    ];
    for (path, text) in cases {
        assert_eq!(display(&path), text);
    }
}

#[test]
fn parses_and_renders_entries() {
    let object = json!({"metadata": {"managedFields": [
        {"manager": "kubectl", "operation": "Apply", "apiVersion": "v1", "time": "2025-01-01T00:00:00Z",
         "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:a": {}}}},
        {"manager": "kubelet", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1",
         "fieldsV1": {"f:status": {"f:phase": {}}}, "subresource": "status"}
    ]}});
    let entries = parse(&object).expect("parses");
    assert_eq!(entries.len(), 2);
    assert!(entries[0].is("kubectl", Operation::Apply, None));
    assert!(entries[1].is("kubelet", Operation::Update, Some("status")));
    assert_eq!(
        entries[1].describe(),
        "\"kubelet\" with subresource \"status\" using v1"
    );
    assert_eq!(entries[0].describe(), "\"kubectl\"");
    assert_eq!(render(&entries), object["metadata"]["managedFields"]);
}

#[test]
fn reports_unusable_entries() {
    let cases = [
        (
            json!({"metadata": {"managedFields": {}}}),
            "metadata.managedFields must be a list of objects",
        ),
        (
            json!({"metadata": {"managedFields": [{"operation": "Patch"}]}}),
            "managedFields[0]: operation must be Apply or Update, not Some(\"Patch\")",
        ),
        (
            json!({"metadata": {"managedFields": [{"operation": "Apply", "fieldsType": "FieldsV2"}]}}),
            "managedFields[0]: fieldsType \"FieldsV2\" is not FieldsV1",
        ),
    ];
    for (object, message) in cases {
        assert_eq!(parse(&object).expect_err("invalid").to_string(), message);
    }
    let none: Vec<Entry> = parse(&json!({"metadata": {}})).expect("no entries");
    assert!(none.is_empty());
}
