//! Tests for validation: each case is a valid object with one change and the exact error lines
//! users will read.

use serde_json::{Value, json};

use super::*;
use crate::defaults;
use crate::registry::Registry;

fn resource(group: &str, kind: &str) -> Resource {
    Registry::builtin()
        .by_group_kind(group, kind)
        .cloned()
        .unwrap_or_else(|| panic!("{kind}"))
}

fn messages(group: &str, kind: &str, mut object: Value) -> Vec<String> {
    defaults::apply(group, kind, &mut object);
    validate_create(&resource(group, kind), &object)
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn pod() -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default"},
           "spec": {"containers": [{"name": "app", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]}})
}

fn deployment() -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
           "spec": {"selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}},
                                 "spec": {"containers": [{"name": "app", "image": "nginx"}]}}}})
}

/// Apply a JSON-pointer edit to a copy of `base`.
fn with(base: &Value, pointer: &str, value: Value) -> Value {
    let mut object = base.clone();
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let target = object
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("{parent}"));
    match target {
        Value::Object(map) => {
            if value.is_null() {
                map.remove(key);
            } else {
                map.insert(key.to_string(), value);
            }
        }
        Value::Array(items) => items[key.parse::<usize>().unwrap()] = value,
        _ => panic!("{pointer}"),
    }
    object
}

#[test]
fn valid_objects_pass() {
    assert!(messages("", "Pod", pod()).is_empty());
    assert!(messages("apps", "Deployment", deployment()).is_empty());
}

#[test]
fn pod_errors() {
    let base = pod();
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            with(&base, "/spec/containers", json!([])),
            vec!["spec.containers: Required value"],
        ),
        (
            with(&base, "/spec/containers/0/image", json!("")),
            vec!["spec.containers[0].image: Required value"],
        ),
        (
            with(&base, "/spec/containers/0/name", Value::Null),
            vec!["spec.containers[0].name: Required value"],
        ),
        (
            with(
                &base,
                "/spec/containers",
                json!([{"name": "a", "image": "x"}, {"name": "a", "image": "y"}]),
            ),
            vec!["spec.containers[1].name: Duplicate value: \"a\""],
        ),
        (
            with(
                &base,
                "/spec/containers/0/ports/0/containerPort",
                json!(70000),
            ),
            vec![
                "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
            ],
        ),
        (
            with(&base, "/spec/containers/0/ports/0/protocol", json!("HTTP")),
            vec![
                "spec.containers[0].ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"TCP\", \"UDP\", \"SCTP\"",
            ],
        ),
        (
            with(&base, "/spec/restartPolicy", json!("Sometimes")),
            vec![
                "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
            ],
        ),
        (
            with(
                &base,
                "/spec/containers/0/volumeMounts",
                json!([{"name": "data", "mountPath": "/data"}]),
            ),
            vec!["spec.containers[0].volumeMounts[0].name: Not found: \"data\""],
        ),
        (
            with(
                &base,
                "/spec/containers/0/resources",
                json!({"limits": {"cpu": "1"}, "requests": {"cpu": "2"}}),
            ),
            vec![
                "spec.containers[0].resources.requests[cpu]: Invalid value: \"2\": must be less than or equal to cpu limit of 1",
            ],
        ),
        (
            with(
                &base,
                "/spec/containers/0/resources",
                json!({"limits": {"memory": "lots"}}),
            ),
            vec![
                "spec.containers[0].resources.limits[memory]: Invalid value: \"lots\": must be a valid quantity, e.g. '500m', '1.5', '128Mi' or '2Gi'",
                // Defaulting copied the limit into the requests.
                "spec.containers[0].resources.requests[memory]: Invalid value: \"lots\": must be a valid quantity, e.g. '500m', '1.5', '128Mi' or '2Gi'",
            ],
        ),
        (
            with(
                &base,
                "/spec/containers/0/readinessProbe",
                json!({"periodSeconds": -1, "exec": {"command": ["true"]}}),
            ),
            vec![
                "spec.containers[0].readinessProbe.periodSeconds: Invalid value: -1: must be greater than or equal to 0",
            ],
        ),
        (
            with(&base, "/spec/containers/0/livenessProbe", json!({})),
            vec!["spec.containers[0].livenessProbe: Required value: must specify a handler type"],
        ),
        (
            with(
                &base,
                "/spec/tolerations",
                json!([{"key": "k", "operator": "Exists", "value": "v"}]),
            ),
            vec![
                "spec.tolerations[0].operator: Invalid value: \"Exists\": value must be empty when `operator` is 'Exists'",
            ],
        ),
        (
            with(&base, "/spec/volumes", json!([{"name": "s", "secret": {}}])),
            vec!["spec.volumes[0].secret.secretName: Required value"],
        ),
        (
            with(&base, "/metadata/name", json!("Web")),
            vec![
                "metadata.name: Invalid value: \"Web\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com')",
            ],
        ),
        (
            with(&base, "/metadata/namespace", Value::Null),
            vec!["metadata.namespace: Required value"],
        ),
    ];
    for (object, expected) in cases {
        assert_eq!(messages("", "Pod", object), expected);
    }
    let nameless = with(&base, "/metadata/name", Value::Null);
    assert_eq!(
        messages("", "Pod", nameless.clone()),
        vec!["metadata.name: Required value: name or generateName is required"]
    );
    assert!(
        messages(
            "",
            "Pod",
            with(&nameless, "/metadata/generateName", json!("web-"))
        )
        .is_empty()
    );
}

#[test]
fn deployment_errors() {
    let base = deployment();
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            with(&base, "/spec/replicas", json!(-1)),
            vec!["spec.replicas: Invalid value: -1: must be greater than or equal to 0"],
        ),
        (
            with(&base, "/spec/selector", Value::Null),
            vec!["spec.selector: Required value"],
        ),
        (
            with(&base, "/spec/selector", json!({})),
            vec!["spec.selector: Invalid value: {}: empty selector is invalid for deployment"],
        ),
        (
            with(
                &base,
                "/spec/template/metadata/labels",
                json!({"app": "other"}),
            ),
            vec![
                "spec.template.metadata.labels: Invalid value: {\"app\":\"other\"}: `selector` does not match template `labels`",
            ],
        ),
        (
            with(&base, "/spec/template/spec/restartPolicy", json!("Never")),
            vec![
                "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
            ],
        ),
        (
            with(
                &base,
                "/spec/strategy",
                json!({"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}),
            ),
            vec![
                "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'",
            ],
        ),
        (
            with(
                &base,
                "/spec/strategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}}),
            ),
            vec![
                "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"0%\": may not be 0 when `maxSurge` is 0",
            ],
        ),
    ];
    for (object, expected) in cases {
        assert_eq!(messages("apps", "Deployment", object), expected);
    }
    let mut broken = with(&base, "/spec/replicas", json!(-1));
    broken = with(&broken, "/spec/template/spec/containers/0/image", json!(""));
    defaults::apply("apps", "Deployment", &mut broken);
    let status = check_create(&resource("apps", "Deployment"), &broken).unwrap_err();
    assert_eq!(
        status.message,
        "Deployment.apps \"web\" is invalid: [spec.replicas: Invalid value: -1: must be greater than or equal to 0, \
         spec.template.spec.containers[0].image: Required value]"
    );
    assert_eq!(
        status.to_json()["details"]["causes"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}
