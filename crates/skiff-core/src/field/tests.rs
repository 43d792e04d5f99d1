//! Tests for field paths and the text of field errors.

#![allow(clippy::unwrap_used)]

use serde_json::json;

use super::*;

#[test]
fn paths_render_like_kubernetes() {
    let containers = Path::new("spec").child("template.spec.containers");
    let cases = [
        (
            containers.index(0).child("image"),
            "spec.template.spec.containers[0].image",
        ),
        (
            Path::new("metadata").child("labels").key("app"),
            "metadata.labels[app]",
        ),
        (Path::root(), ""),
        (Path::root().index(2), "[2]"),
    ];
    for (path, expected) in cases {
        assert_eq!(path.to_string(), expected);
    }
}

#[test]
fn error_bodies_follow_the_kubernetes_shape() {
    let replicas = Path::new("spec").child("replicas");
    let cases = [
        (
            Error::invalid(&replicas, -1, "must be greater than or equal to 0"),
            "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
        ),
        (
            Error::required(&Path::new("spec").child("containers"), ""),
            "spec.containers: Required value",
        ),
        (
            Error::not_supported(
                &Path::new("spec").child("restartPolicy"),
                "Sometimes",
                &["Always", "Never"],
            ),
            "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"Never\"",
        ),
        (
            Error::duplicate(
                &Path::new("spec").child("containers").index(1).child("name"),
                "web",
            ),
            "spec.containers[1].name: Duplicate value: \"web\"",
        ),
        (
            Error::forbidden(&Path::new("spec"), "pod updates may not change fields"),
            "spec: Forbidden: pod updates may not change fields",
        ),
        (
            Error::too_long(&Path::new("metadata").child("annotations"), 262144),
            "metadata.annotations: Too long: may not be more than 262144 bytes",
        ),
        (
            Error::invalid(&replicas, json!(null), ""),
            "spec.replicas: Invalid value: null",
        ),
    ];
    for (error, expected) in cases {
        assert_eq!(error.to_string(), expected);
    }
}

#[test]
fn cause_reasons_are_the_kubernetes_names() {
    assert_eq!(ErrorType::Invalid.cause_reason(), "FieldValueInvalid");
    assert_eq!(ErrorType::Required.cause_reason(), "FieldValueRequired");
    assert_eq!(
        ErrorType::NotSupported.cause_reason(),
        "FieldValueNotSupported"
    );
    assert_eq!(ErrorType::TooLong.cause_reason(), "FieldValueTooLong");
}
