//! Tests for ingress routing: prefix semantics, hosts and wildcards, longest match, default backend, classes, backends, round-robin.

use std::net::SocketAddr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use serde_json::{Value, json};

use super::*;

fn ingress(name: &str, class: Option<&str>, spec: Value) -> Ingress {
    let mut spec = spec;
    if let Some(c) = class {
        spec["ingressClassName"] = json!(c);
    }
    serde_json::from_value(
        json!({"metadata": {"name": name, "namespace": "default"}, "spec": spec}),
    )
    .expect("ingress")
}

fn service(name: &str, ports: Value) -> Service {
    serde_json::from_value(json!({"metadata": {"name": name, "namespace": "default"},
        "spec": {"clusterIP": "10.43.0.1", "ports": ports}}))
    .expect("service")
}

fn slice(service: &str, port_name: &str, port: u16, ips: &[&str]) -> EndpointSlice {
    let endpoints: Vec<Value> = ips
        .iter()
        .map(|ip| json!({"addresses": [ip], "conditions": {"ready": true}}))
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": format!("{service}-x"), "namespace": "default",
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4", "endpoints": endpoints,
        "ports": [{"name": port_name, "port": port, "protocol": "TCP"}]
    }))
    .expect("slice")
}

fn path(path: &str, kind: &str, service: &str) -> Value {
    json!({"path": path, "pathType": kind, "backend": {"service": {"name": service, "port": {"number": 80}}}})
}

fn selector() -> ClassSelector {
    ClassSelector {
        class_name: "skiff".into(),
        is_default: false,
    }
}

fn services() -> (Vec<Service>, Vec<EndpointSlice>) {
    let names = ["a", "b", "c", "d", "e", "wild", "fallback"];
    let services = names
        .iter()
        .map(|n| service(n, json!([{"name": "http", "port": 80}])))
        .collect();
    let slices = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            slice(
                n,
                "http",
                8000 + u16::try_from(i).expect("small"),
                &["10.42.0.1"],
            )
        })
        .collect();
    (services, slices)
}

fn table(ingresses: &[Ingress]) -> RouteTable {
    let (services, slices) = services();
    RouteTable::build(&selector(), ingresses, &services, &slices)
}

fn routed(t: &RouteTable, host: &str, path: &str) -> Option<String> {
    t.route(host, path)
        .map(|b| b.service.trim_start_matches("default/").to_string())
}

#[test]
fn element_wise_prefix_matching() {
    for (prefix, path, expected) in [
        ("/", "/anything", true),
        ("/foo", "/foo", true),
        ("/foo", "/foo/", true),
        ("/foo", "/foo/bar", true),
        ("/foo", "/foobar", false),
        ("/foo/", "/foo", true),
        ("/foo/bar", "/foo", false),
        ("/aaa/bb", "/aaa/bbb", false),
        ("/aaa/bbb/", "/aaa/bbb/ccc", true),
    ] {
        assert_eq!(prefix_matches(prefix, path), expected, "{prefix} vs {path}");
    }
}

#[test]
fn hosts_paths_and_longest_match() {
    let t = table(&[ingress(
        "one",
        Some("skiff"),
        json!({
        "defaultBackend": {"service": {"name": "fallback", "port": {"number": 80}}},
        "rules": [
            {"host": "shop.example.com", "http": {"paths": [
                path("/", "Prefix", "a"),
                path("/api", "Prefix", "b"),
                path("/api/v2/exact", "Exact", "c"),
                path("/api/v2", "ImplementationSpecific", "d")]}},
            {"host": "*.example.com", "http": {"paths": [path("/", "Prefix", "wild")]}},
            {"http": {"paths": [path("/any", "Prefix", "e")]}}
        ]}),
    )]);
    assert_eq!(routed(&t, "shop.example.com", "/"), Some("a".into()));
    assert_eq!(
        routed(&t, "SHOP.example.com:8443", "/index.html"),
        Some("a".into())
    );
    assert_eq!(routed(&t, "shop.example.com", "/api"), Some("b".into()));
    assert_eq!(routed(&t, "shop.example.com", "/api/v1"), Some("b".into()));
    assert_eq!(routed(&t, "shop.example.com", "/apiv1"), Some("a".into()));
    assert_eq!(
        routed(&t, "shop.example.com", "/api/v2/exact"),
        Some("c".into())
    );
    assert_eq!(
        routed(&t, "shop.example.com", "/api/v2/exact/more"),
        Some("d".into())
    );
    // Wildcards match exactly one label.
    assert_eq!(routed(&t, "blog.example.com", "/x"), Some("wild".into()));
    assert_eq!(routed(&t, "a.blog.example.com", "/any"), Some("e".into()));
    assert_eq!(routed(&t, "example.com", "/any"), Some("e".into()));
    // No host rule and no path: the default backend.
    assert_eq!(routed(&t, "other.org", "/nothing"), Some("fallback".into()));
}

#[test]
fn exact_beats_prefix_of_the_same_length_and_older_ingress_wins_ties() {
    let mut first = ingress(
        "first",
        Some("skiff"),
        json!({"rules": [{"host": "h", "http": {"paths": [path("/p", "Prefix", "a")]}}]}),
    );
    first.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        "2024-01-01T00:00:00Z".parse().expect("time"),
    ));
    let mut second = ingress(
        "second",
        Some("skiff"),
        json!({"rules": [{"host": "h", "http": {"paths": [
        path("/p", "Prefix", "b"), path("/p", "Exact", "c")]}}]}),
    );
    second.metadata.creation_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            "2024-06-01T00:00:00Z".parse().expect("time"),
        ));
    let t = table(&[second, first]);
    assert_eq!(routed(&t, "h", "/p"), Some("c".into()));
    assert_eq!(routed(&t, "h", "/p/q"), Some("a".into()));
}

#[test]
fn no_match_without_default_backend_is_none() {
    let t = table(&[ingress(
        "i",
        Some("skiff"),
        json!({"rules": [{"host": "h", "http": {"paths": [path("/x", "Exact", "a")]}}]}),
    )]);
    assert!(t.route("h", "/y").is_none());
    assert!(t.route("h", "/x/").is_none());
}

#[test]
fn class_selection() {
    let default_class: IngressClass = serde_json::from_value(json!({
        "metadata": {"name": "skiff", "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
        "spec": {"controller": "skiff.io/ingress"}
    }))
    .expect("class");
    let unclassed = ingress(
        "none",
        None,
        json!({"rules": [{"host": "u", "http": {"paths": [path("/", "Prefix", "a")]}}]}),
    );
    let other = ingress(
        "other",
        Some("nginx"),
        json!({"rules": [{"host": "o", "http": {"paths": [path("/", "Prefix", "a")]}}]}),
    );
    let mut legacy = ingress(
        "legacy",
        None,
        json!({"rules": [{"host": "l", "http": {"paths": [path("/", "Prefix", "a")]}}]}),
    );
    legacy.metadata.annotations =
        Some([(LEGACY_CLASS_ANNOTATION.to_string(), "skiff".to_string())].into());
    let (services, slices) = services();
    let all = [unclassed, other, legacy];

    let t = RouteTable::build(&selector(), &all, &services, &slices);
    assert!(t.route("u", "/").is_none());
    assert!(t.route("o", "/").is_none());
    assert!(t.route("l", "/").is_some());

    let as_default = ClassSelector::from_classes("skiff", &[default_class]);
    assert!(as_default.is_default);
    let t = RouteTable::build(&as_default, &all, &services, &slices);
    assert!(t.route("u", "/").is_some());
    assert!(t.route("o", "/").is_none());
}

#[test]
fn backends_resolve_named_ports_and_ready_endpoints_and_report_problems() {
    let services = vec![service(
        "web",
        json!([{"name": "http", "port": 80}, {"name": "admin", "port": 9000}]),
    )];
    let mut slices = vec![slice("web", "admin", 9090, &["10.42.0.5", "10.42.0.6"])];
    let not_ready: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"name": "web-y", "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.42.0.7"], "conditions": {"ready": false}}],
        "ports": [{"name": "admin", "port": 9090}]
    }))
    .expect("slice");
    slices.push(not_ready);
    let i = ingress(
        "i",
        Some("skiff"),
        json!({"rules": [{"host": "h", "http": {"paths": [
            {"path": "/admin", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"name": "admin"}}}},
            {"path": "/missing", "pathType": "Prefix", "backend": {"service": {"name": "nope", "port": {"number": 80}}}}
        ]}}]}),
    );
    let t = RouteTable::build(&selector(), &[i], &services, &slices);
    let backend = t.route("h", "/admin").expect("routed");
    let expected: Vec<SocketAddr> = vec![
        "10.42.0.5:9090".parse().expect("a"),
        "10.42.0.6:9090".parse().expect("a"),
    ];
    assert_eq!(backend.endpoints, expected);
    assert_eq!(backend.ingress, "default/i");
    assert!(t.route("h", "/missing").is_none());
    assert_eq!(t.problems.len(), 1);
    assert!(t.problems[0].message.contains("nope"));
}

#[test]
fn round_robin_attempt_order() {
    let endpoints: Vec<SocketAddr> = vec![
        "10.0.0.1:1".parse().expect("a"),
        "10.0.0.2:1".parse().expect("a"),
        "10.0.0.3:1".parse().expect("a"),
    ];
    let backend = Backend::new("i".into(), "s".into(), endpoints.clone());
    let first: Vec<_> = (0..3).map(|_| backend.attempt_order()[0]).collect();
    assert_eq!(first, endpoints);
    assert_eq!(backend.attempt_order(), endpoints);
    let order = backend.attempt_order();
    assert_eq!(order, vec![endpoints[1], endpoints[2], endpoints[0]]);
    assert!(
        Backend::new("i".into(), "s".into(), vec![])
            .attempt_order()
            .is_empty()
    );
}

#[test]
fn host_normalization() {
    assert_eq!(normalize_host("Example.COM:443"), "example.com");
    assert_eq!(normalize_host("example.com."), "example.com");
    assert_eq!(normalize_host("[::1]:8080"), "[::1]");
}
