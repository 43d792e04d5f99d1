//! Tests for body decoding and field validation: duplicates, unknown fields, type errors, YAML.

#![allow(clippy::unwrap_used)]

use serde_json::json;

use super::*;
use crate::registry::Registry;

#[test]
fn duplicates_are_reported_with_paths() {
    let body =
        br#"{"data": {"a": "1"}, "metadata": {"labels": {"x": "1", "x": "2"}}, "data": {"b": "2"},
                   "list": [{"k": 1, "k": 2}]}"#;
    let decoded = decode(body, Format::Json).unwrap();
    assert_eq!(
        decoded.duplicates,
        vec!["metadata.labels.x", "data", "list[0].k"]
    );
    assert_eq!(
        decoded.value["data"],
        json!({"b": "2"}),
        "the last occurrence wins"
    );
}

#[test]
fn syntax_errors_and_non_objects() {
    assert!(matches!(
        decode(b"{\"a\":", Format::Json),
        Err(Error::Syntax(_))
    ));
    assert!(matches!(
        decode(b"{} {}", Format::Json),
        Err(Error::Syntax(_))
    ));
    assert_eq!(
        decode_object(b"[1]", Format::Json).unwrap_err().to_string(),
        "the request body must be a JSON object, not a list"
    );
    assert!(matches!(
        decode_object(b"", Format::Yaml),
        Err(Error::NotAnObject("null"))
    ));
    assert!(matches!(
        decode(b"a: 1\n---\nb: 2\n", Format::Yaml),
        Err(Error::Syntax(_))
    ));
    let deep = "[".repeat(10_000);
    assert!(
        decode(deep.as_bytes(), Format::Json).is_err(),
        "deep nesting is an error, not a stack overflow"
    );
}

#[test]
fn yaml_bodies_decode_to_json() {
    let body = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  a: '1'\n  a: '2'\n  80: web\nbinaryData: null\n";
    let decoded = decode(body, Format::Yaml).unwrap();
    assert_eq!(
        decoded.value,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"a": "2", "80": "web"}, "binaryData": null})
    );
    assert_eq!(decoded.duplicates, vec!["data.a"]);
    let number = decode(b"replicas: 3\nratio: 0.5\nflag: true", Format::Yaml).unwrap();
    assert_eq!(
        number.value,
        json!({"replicas": 3, "ratio": 0.5, "flag": true})
    );
}

#[test]
fn unknown_fields_are_found_at_any_depth() {
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"anything": "goes"}, "creationTimestamp": null, "futureField": 1},
        "spec": {"replicas": 1, "foo": true, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "nginx", "imagePullPolicy": "Always", "bogus": 1}]}}},
        "extraTop": {}
    });
    let unknown = unknown_fields("apps", "v1", "Deployment", &deployment).unwrap();
    assert_eq!(
        unknown,
        vec![
            "extraTop",
            "metadata.futureField",
            "spec.foo",
            "spec.template.spec.containers[0].bogus"
        ]
    );
}

#[test]
fn free_form_fields_are_not_unknown() {
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "annotations": {"a": "b"},
        "managedFields": [{"manager": "kubectl", "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:x": {}}}}]},
        "data": {"x": "eA=="}, "stringData": {"y": "z"}, "type": "Opaque"});
    assert!(
        unknown_fields("", "v1", "Secret", &secret)
            .unwrap()
            .is_empty()
    );
    let revision = json!({"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": {"name": "r"},
                          "revision": 1, "data": {"spec": {"anything": {"nested": true}}}});
    assert!(
        unknown_fields("apps", "v1", "ControllerRevision", &revision)
            .unwrap()
            .is_empty()
    );
    assert!(
        unknown_fields(
            "metrics.k8s.io",
            "v1beta1",
            "PodMetrics",
            &json!({"whatever": 1})
        )
        .unwrap()
        .is_empty()
    );
}

#[test]
fn wrong_types_name_the_field() {
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                            "spec": {"replicas": "3", "selector": {}, "template": {}}});
    let error = unknown_fields("apps", "v1", "Deployment", &deployment).unwrap_err();
    let message = error.to_string();
    assert!(message.starts_with("Deployment in version \"v1\" cannot be handled as a Deployment: spec.replicas: invalid type: string \"3\""), "{message}");
    assert_eq!(error.to_status().code(), 400);
    let wrong_kind = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}});
    assert!(unknown_fields("", "v1", "ConfigMap", &wrong_kind).is_err());
}

#[test]
fn field_validation_modes() {
    let body = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm"},"data":{"a":"1"},"data":{"b":"2"},"spec":{}}"#;
    let strict = check(
        body,
        Format::Json,
        "",
        "v1",
        "ConfigMap",
        FieldValidation::Strict,
    )
    .unwrap_err();
    assert_eq!(
        strict.to_string(),
        "strict decoding error: unknown field \"spec\", duplicate field \"data\""
    );
    let warned = check(
        body,
        Format::Json,
        "",
        "v1",
        "ConfigMap",
        FieldValidation::Warn,
    )
    .unwrap();
    assert_eq!(
        warned.warnings,
        vec!["unknown field \"spec\"", "duplicate field \"data\""]
    );
    let ignored = check(
        body,
        Format::Json,
        "",
        "v1",
        "ConfigMap",
        FieldValidation::Ignore,
    )
    .unwrap();
    assert!(ignored.warnings.is_empty());
    assert_eq!(ignored.value["data"], json!({"b": "2"}));
    assert_eq!(FieldValidation::parse("").unwrap(), FieldValidation::Strict);
    assert_eq!(
        FieldValidation::parse("Warn").unwrap(),
        FieldValidation::Warn
    );
    assert!(FieldValidation::parse("strict").is_err());
}

#[test]
fn every_stored_kind_has_a_typed_model() {
    for resource in Registry::builtin().resources() {
        if !resource.stored {
            continue;
        }
        let minimal = json!({"apiVersion": resource.api_version(), "kind": resource.kind, "metadata": {"name": "x"}});
        assert!(
            typed::round_trip(&resource.group, &resource.version, &resource.kind, &minimal)
                .is_some(),
            "{} has no typed model",
            resource.kind
        );
    }
}

#[test]
fn yaml_apply_bodies_are_checked_like_json() {
    let body = b"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\n  replicas: 3\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: web\n        image: nginx\n        resources:\n          limits: {cpu: 1, memory: 128Mi}\n        imagePulPolicy: Always\n";
    let error = check(
        body,
        Format::Yaml,
        "apps",
        "v1",
        "Deployment",
        FieldValidation::Strict,
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "strict decoding error: unknown field \"spec.template.spec.containers[0].imagePulPolicy\", duplicate field \"spec.replicas\""
    );
    let warned = check(
        body,
        Format::Yaml,
        "apps",
        "v1",
        "Deployment",
        FieldValidation::Warn,
    )
    .unwrap();
    assert_eq!(warned.value["spec"]["replicas"], json!(3));
    assert_eq!(
        warned.value["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"],
        json!(1)
    );
}
