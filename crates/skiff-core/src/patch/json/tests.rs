//! Tests for JSON Patch: the RFC 6902 examples, the `kubectl rollout undo` body, and every
//! way a patch can be malformed or fail.

use serde_json::json;

use super::{Error, apply};

#[test]
fn applies_rfc_6902_examples() {
    let cases = [
        // A.1 add an object member
        (
            json!({"foo": "bar"}),
            json!([{"op": "add", "path": "/baz", "value": "qux"}]),
            json!({"baz": "qux", "foo": "bar"}),
        ),
        // A.2 add an array element
        (
            json!({"foo": ["bar", "baz"]}),
            json!([{"op": "add", "path": "/foo/1", "value": "qux"}]),
            json!({"foo": ["bar", "qux", "baz"]}),
        ),
        // A.3 remove an object member
        (
            json!({"baz": "qux", "foo": "bar"}),
            json!([{"op": "remove", "path": "/baz"}]),
            json!({"foo": "bar"}),
        ),
        // A.4 remove an array element
        (
            json!({"foo": ["bar", "qux", "baz"]}),
            json!([{"op": "remove", "path": "/foo/1"}]),
            json!({"foo": ["bar", "baz"]}),
        ),
        // A.5 replace a value
        (
            json!({"baz": "qux", "foo": "bar"}),
            json!([{"op": "replace", "path": "/baz", "value": "boo"}]),
            json!({"baz": "boo", "foo": "bar"}),
        ),
        // A.6 move a value
        (
            json!({"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}}),
            json!([{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}]),
            json!({"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}}),
        ),
        // A.7 move an array element
        (
            json!({"foo": ["all", "grass", "cows", "eat"]}),
            json!([{"op": "move", "from": "/foo/1", "path": "/foo/3"}]),
            json!({"foo": ["all", "cows", "eat", "grass"]}),
        ),
        // A.8 test a value
        (
            json!({"baz": "qux", "foo": ["a", 2, "c"]}),
            json!([{"op": "test", "path": "/baz", "value": "qux"}, {"op": "test", "path": "/foo/1", "value": 2}]),
            json!({"baz": "qux", "foo": ["a", 2, "c"]}),
        ),
        // A.10 add a nested member object
        (
            json!({"foo": "bar"}),
            json!([{"op": "add", "path": "/child", "value": {"grandchild": {}}}]),
            json!({"foo": "bar", "child": {"grandchild": {}}}),
        ),
        // A.16 add an array value
        (
            json!({"foo": ["bar"]}),
            json!([{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}]),
            json!({"foo": ["bar", ["abc", "def"]]}),
        ),
        // copy, and replacing the whole document
        (
            json!({"a": {"b": 1}}),
            json!([{"op": "copy", "from": "/a", "path": "/c"}]),
            json!({"a": {"b": 1}, "c": {"b": 1}}),
        ),
        (
            json!({"a": 1}),
            json!([{"op": "replace", "path": "", "value": [1]}]),
            json!([1]),
        ),
        // escaped pointer tokens: ~1 is "/" and ~0 is "~"
        (
            json!({"metadata": {"annotations": {"a/b": "1", "c~d": "2"}}}),
            json!([{"op": "remove", "path": "/metadata/annotations/a~1b"}, {"op": "replace", "path": "/metadata/annotations/c~0d", "value": "3"}]),
            json!({"metadata": {"annotations": {"c~d": "3"}}}),
        ),
        // test treats 1 and 1.0 as the same number; null is a value
        (
            json!({"n": 1, "z": null}),
            json!([{"op": "test", "path": "/n", "value": 1.0}, {"op": "test", "path": "/z", "value": null}]),
            json!({"n": 1, "z": null}),
        ),
        // an empty patch changes nothing
        (json!({"a": 1}), json!([]), json!({"a": 1})),
    ];
    for (document, patch, expected) in cases {
        assert_eq!(apply(&document, &patch), Ok(expected), "patch {patch}");
    }
}

#[test]
fn applies_the_rollout_undo_body() {
    let deployment = json!({
        "metadata": {"name": "web", "annotations": {"deployment.kubernetes.io/revision": "2"}},
        "spec": {"replicas": 2, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "nginx", "image": "nginx:1.26"}]}}}
    });
    let patch = json!([
        {"op": "replace", "path": "/spec/template", "value": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}]}}},
        {"op": "replace", "path": "/metadata/annotations", "value": {"deployment.kubernetes.io/revision": "2"}}
    ]);
    let patched = apply(&deployment, &patch).expect("patch applies");
    assert_eq!(
        patched["spec"]["template"]["spec"]["containers"][0]["image"],
        json!("nginx:1.25")
    );
    assert_eq!(patched["spec"]["replicas"], json!(2));
}

#[test]
fn refuses_malformed_patches_with_400() {
    let cases = [
        (
            json!({"op": "add"}),
            "invalid JSON patch: a JSON patch must be a JSON array of operations",
        ),
        (
            json!([1]),
            "invalid JSON patch: operation 0: must be a JSON object",
        ),
        (
            json!([{"path": "/a"}]),
            "invalid JSON patch: operation 0: missing \"op\"",
        ),
        (
            json!([{"op": "frobnicate", "path": "/a"}]),
            "invalid JSON patch: operation 0: unknown op \"frobnicate\"",
        ),
        (
            json!([{"op": "add", "value": 1}]),
            "invalid JSON patch: operation 0: add without \"path\"",
        ),
        (
            json!([{"op": "test", "path": "/a"}, {"op": "add", "path": "/a"}]),
            "invalid JSON patch: operation 0: test without \"value\"",
        ),
        (
            json!([{"op": "move", "path": "/a"}]),
            "invalid JSON patch: operation 0: move without \"from\"",
        ),
        (
            json!([{"op": "remove", "path": "a"}]),
            "invalid JSON patch: operation 0: path \"a\": a JSON pointer must be empty or start with \"/\"",
        ),
        (
            json!([{"op": "remove", "path": "/a~2"}]),
            "invalid JSON patch: operation 0: path \"/a~2\": \"~\" must be followed by \"0\" or \"1\"",
        ),
        (
            json!([{"op": "remove", "path": 7}]),
            "invalid JSON patch: operation 0: \"path\" must be a string",
        ),
    ];
    for (patch, message) in cases {
        let error = apply(&json!({"a": 1}), &patch).expect_err("malformed patch");
        assert_eq!(error.code(), 400, "{patch}");
        assert_eq!(error.to_string(), message, "{patch}");
    }
}

#[test]
fn reports_failing_operations_with_422() {
    let document = json!({"spec": {"replicas": 1, "list": ["a", "b"]}, "name": "x"});
    let cases = [
        (
            json!([{"op": "replace", "path": "/spec/missing", "value": 1}]),
            "JSON patch operation 0 (replace /spec/missing) failed: no value at /spec/missing",
        ),
        (
            json!([{"op": "remove", "path": "/nope/deeper"}]),
            "JSON patch operation 0 (remove /nope/deeper) failed: no value at /nope",
        ),
        (
            json!([{"op": "add", "path": "/spec/list/3", "value": "c"}]),
            "JSON patch operation 0 (add /spec/list/3) failed: index 3 is out of range at /spec/list/3 (the array has 3 items)",
        ),
        (
            json!([{"op": "remove", "path": "/spec/list/01"}]),
            "JSON patch operation 0 (remove /spec/list/01) failed: \"01\" is not an array index at /spec/list/01",
        ),
        (
            json!([{"op": "remove", "path": "/spec/list/-"}]),
            "JSON patch operation 0 (remove /spec/list/-) failed: \"-\" is not an array index at /spec/list/-",
        ),
        (
            json!([{"op": "add", "path": "/name/x", "value": 1}]),
            "JSON patch operation 0 (add /name/x) failed: /name is not an object or an array",
        ),
        (
            json!([{"op": "move", "from": "/spec", "path": "/spec/inner"}]),
            "JSON patch operation 0 (move /spec/inner) failed: a value cannot be moved into one of its own children",
        ),
        (
            json!([{"op": "remove", "path": ""}]),
            "JSON patch operation 0 (remove ) failed: the whole document cannot be removed",
        ),
        (
            json!([{"op": "replace", "path": "/spec/replicas", "value": 5}, {"op": "test", "path": "/spec/replicas", "value": 4}]),
            "JSON patch operation 1 (test /spec/replicas) failed: the value at /spec/replicas is not 4",
        ),
        (
            json!([{"op": "test", "path": "/absent", "value": "x"}]),
            "JSON patch operation 0 (test /absent) failed: the value at /absent is not \"x\"",
        ),
    ];
    for (patch, message) in cases {
        let error = apply(&document, &patch).expect_err("failing patch");
        assert_eq!(error.code(), 422, "{patch}");
        assert_eq!(error.to_string(), message, "{patch}");
    }
}

#[test]
fn is_all_or_nothing() {
    let document = json!({"a": 1});
    let patch =
        json!([{"op": "add", "path": "/b", "value": 2}, {"op": "remove", "path": "/missing"}]);
    assert!(matches!(
        apply(&document, &patch),
        Err(Error::Failed { index: 1, .. })
    ));
    assert_eq!(document, json!({"a": 1}));
}

#[test]
fn limits_the_number_of_operations() {
    let patch = serde_json::Value::Array(vec![
        json!({"op": "test", "path": "", "value": {}});
        super::MAX_OPERATIONS + 1
    ]);
    let error = apply(&json!({}), &patch).expect_err("too many operations");
    assert_eq!(error, Error::TooManyOperations(super::MAX_OPERATIONS + 1));
    assert_eq!(error.code(), 413);
}
