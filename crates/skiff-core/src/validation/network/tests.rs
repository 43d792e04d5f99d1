//! Tests for Service and Ingress validation.

#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};

use crate::validation::tests::{messages, with};

fn service() -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
           "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})
}

#[test]
fn service_errors() {
    let base = service();
    assert!(messages("", "Service", base.clone()).is_empty());
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            with(&base, "/spec/ports", json!([])),
            vec!["spec.ports: Required value"],
        ),
        (
            with(&base, "/spec/ports", json!([{"port": 80}, {"port": 443}])),
            vec![
                "spec.ports[0].name: Required value",
                "spec.ports[1].name: Required value",
            ],
        ),
        (
            with(
                &base,
                "/spec/ports",
                json!([{"name": "a", "port": 80}, {"name": "b", "port": 80}]),
            ),
            vec!["spec.ports[1]: Duplicate value: \"80/TCP\""],
        ),
        (
            with(&base, "/spec/ports/0/nodePort", json!(30080)),
            vec!["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"],
        ),
        (
            with(
                &with(&base, "/spec/type", json!("NodePort")),
                "/spec/ports/0/nodePort",
                json!(80),
            ),
            vec![
                "spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767",
            ],
        ),
        (
            with(&base, "/spec/type", json!("Magic")),
            vec![
                "spec.type: Unsupported value: \"Magic\": supported values: \"ClusterIP\", \"NodePort\", \"LoadBalancer\", \"ExternalName\"",
            ],
        ),
        (
            with(&base, "/spec/clusterIP", json!("10.43.0.999")),
            vec![
                "spec.clusterIP: Invalid value: \"10.43.0.999\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            ],
        ),
        (
            with(&base, "/spec/externalTrafficPolicy", json!("Local")),
            vec![
                "spec.externalTrafficPolicy: Invalid value: \"Local\": may only be set when `type` is 'NodePort' or 'LoadBalancer'",
            ],
        ),
        (
            with(&base, "/metadata/name", json!("1web")),
            vec![
                "metadata.name: Invalid value: \"1web\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name' or 'abc-123')",
            ],
        ),
        (
            with(&base, "/spec/ports/0/targetPort", json!("http_port")),
            vec![
                "spec.ports[0].targetPort: Invalid value: \"http_port\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
            ],
        ),
    ];
    for (object, expected) in cases {
        assert_eq!(messages("", "Service", object), expected);
    }
    let headless = with(
        &with(&base, "/spec/ports", json!([])),
        "/spec/clusterIP",
        json!("None"),
    );
    assert!(messages("", "Service", headless).is_empty());
    let external = json!({"metadata": {"name": "ext", "namespace": "default"}, "spec": {"type": "ExternalName"}});
    assert_eq!(
        messages("", "Service", external),
        vec!["spec.externalName: Required value"]
    );
}

#[test]
fn ingress_errors() {
    let base = json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {"rules": [{"host": "example.com", "http": {"paths": [
        {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}});
    assert!(messages("networking.k8s.io", "Ingress", base.clone()).is_empty());
    let path = "/spec/rules/0/http/paths/0";
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            with(&base, &format!("{path}/pathType"), Value::Null),
            vec![
                "spec.rules[0].http.paths[0].pathType: Required value: pathType must be specified",
            ],
        ),
        (
            with(&base, &format!("{path}/pathType"), json!("Regex")),
            vec![
                "spec.rules[0].http.paths[0].pathType: Unsupported value: \"Regex\": supported values: \"Exact\", \"ImplementationSpecific\", \"Prefix\"",
            ],
        ),
        (
            with(&base, &format!("{path}/path"), json!("api")),
            vec![
                "spec.rules[0].http.paths[0].path: Invalid value: \"api\": must be an absolute path",
            ],
        ),
        (
            with(
                &base,
                &format!("{path}/backend/service/port"),
                json!({"name": "http", "number": 80}),
            ),
            vec![
                "spec.rules[0].http.paths[0].backend.service.port: Invalid value: \"\": cannot set both port name & port number",
            ],
        ),
        (
            with(&base, &format!("{path}/backend/service/name"), json!("")),
            vec!["spec.rules[0].http.paths[0].backend.service.name: Required value"],
        ),
        (
            with(&base, "/spec/rules/0/http/paths", json!([])),
            vec!["spec.rules[0].http.paths: Required value"],
        ),
        (
            with(&base, "/spec/rules/0/host", json!("10.0.0.1")),
            vec![
                "spec.rules[0].host: Invalid value: \"10.0.0.1\": must be a DNS name, not an IP address",
            ],
        ),
    ];
    for (object, expected) in cases {
        assert_eq!(messages("networking.k8s.io", "Ingress", object), expected);
    }
    let wildcard = with(&base, "/spec/rules/0/host", json!("*.example.com"));
    assert!(messages("networking.k8s.io", "Ingress", wildcard).is_empty());
}
