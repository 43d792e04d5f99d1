//! Tests for Status errors: codes, reasons, the exact message shapes and the JSON.

#![allow(clippy::unwrap_used)]

use serde_json::json;

use super::*;
use crate::field::Path;

#[test]
fn constructors_pick_code_reason_and_message() {
    let cases = [
        (Error::bad_request("bad"), 400, "BadRequest", "bad"),
        (Error::unauthorized(""), 401, "Unauthorized", "Unauthorized"),
        (
            Error::forbidden("", "pods", "x", "User \"bob\" cannot get resource \"pods\""),
            403,
            "Forbidden",
            "pods \"x\" is forbidden: User \"bob\" cannot get resource \"pods\"",
        ),
        (
            Error::not_found("", "pods", "x"),
            404,
            "NotFound",
            "pods \"x\" not found",
        ),
        (
            Error::not_found("apps", "deployments", "web"),
            404,
            "NotFound",
            "deployments.apps \"web\" not found",
        ),
        (
            Error::already_exists("", "configmaps", "x"),
            409,
            "AlreadyExists",
            "configmaps \"x\" already exists",
        ),
        (
            Error::conflict_modified("", "configmaps", "x"),
            409,
            "Conflict",
            "Operation cannot be fulfilled on configmaps \"x\": the object has been modified; please apply your changes to the latest version and try again",
        ),
        (
            Error::expired("too old resource version: 1 (5)"),
            410,
            "Expired",
            "too old resource version: 1 (5)",
        ),
        (Error::gone("gone"), 410, "Gone", "gone"),
        (
            Error::request_entity_too_large("limit is 3145728"),
            413,
            "RequestEntityTooLarge",
            "Request entity too large: limit is 3145728",
        ),
        (
            Error::method_not_allowed(),
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        ),
        (
            Error::not_acceptable(&["application/json"]),
            406,
            "NotAcceptable",
            "only the following media types are accepted: application/json",
        ),
        (
            Error::too_many_requests("slow down", 1),
            429,
            "TooManyRequests",
            "slow down",
        ),
        (
            Error::internal("boom"),
            500,
            "InternalError",
            "Internal error occurred: boom",
        ),
        (
            Error::service_unavailable("no leader"),
            503,
            "ServiceUnavailable",
            "no leader",
        ),
        (
            Error::timeout("request did not complete", 2),
            504,
            "Timeout",
            "Timeout: request did not complete",
        ),
    ];
    for (error, code, reason, message) in cases {
        assert_eq!(error.code(), code, "{message}");
        assert_eq!(error.reason.as_str(), reason);
        assert_eq!(error.message, message);
        assert_eq!(error.to_json()["code"], json!(code));
    }
}

#[test]
fn not_found_serialises_like_kubernetes() {
    let status = Error::not_found("apps", "deployments", "web").to_json();
    assert_eq!(
        status,
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "deployments.apps \"web\" not found", "reason": "NotFound",
            "details": {"name": "web", "group": "apps", "kind": "deployments"}, "code": 404
        })
    );
}

#[test]
fn invalid_lists_every_cause() {
    let replicas = Path::new("spec").child("replicas");
    let single = Error::invalid(
        "apps",
        "Deployment",
        "x",
        &[field::Error::invalid(
            &replicas,
            -1,
            "must be greater than or equal to 0",
        )],
    );
    assert_eq!(
        single.message,
        "Deployment.apps \"x\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"
    );
    assert_eq!(
        single.to_json()["details"],
        json!({"name": "x", "group": "apps", "kind": "Deployment", "causes": [
            {"reason": "FieldValueInvalid", "message": "Invalid value: -1: must be greater than or equal to 0", "field": "spec.replicas"}
        ]})
    );

    let containers = Path::new("spec").child("containers");
    let several = Error::invalid(
        "",
        "Pod",
        "p",
        &[
            field::Error::required(&containers.index(0).child("image"), ""),
            field::Error::required(&containers.index(0).child("name"), ""),
        ],
    );
    assert_eq!(
        several.message,
        "Pod \"p\" is invalid: [spec.containers[0].image: Required value, spec.containers[0].name: Required value]"
    );
    assert_eq!(several.code(), 422);
}

#[test]
fn retry_after_and_success() {
    let status = Error::too_many_requests("Cannot evict pod", 10).to_json();
    assert_eq!(status["details"], json!({"retryAfterSeconds": 10}));
    let details = Details {
        name: "p".into(),
        kind: "pods".into(),
        uid: "u1".into(),
        ..Details::default()
    };
    assert_eq!(
        success(Some(&details)),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
               "details": {"name": "p", "kind": "pods", "uid": "u1"}, "code": 200})
    );
}

#[test]
fn causes_can_be_added() {
    let cause = Cause {
        reason: "FieldManagerConflict".into(),
        message: "conflict with \"kubectl\"".into(),
        field: ".spec.replicas".into(),
    };
    let error = Error::conflict("apps", "deployments", "web", "Apply failed with 1 conflict")
        .with_causes(vec![cause]);
    assert_eq!(error.code(), 409);
    assert_eq!(
        error.to_json()["details"]["causes"][0]["reason"],
        json!("FieldManagerConflict")
    );
    let bare = Error::bad_request("x").with_causes(vec![]);
    assert_eq!(bare.to_json()["details"], json!({}));
}
