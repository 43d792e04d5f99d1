//! Test fixtures: Services and EndpointSlices from compact descriptions.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{Value, json};

/// A Service `ns/name` with the given spec (JSON).
pub fn service(ns: &str, name: &str, spec: Value) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }))
    .expect("fixture service")
}

/// One endpoint: address, ready, node, hostname.
pub struct Ep<'a> {
    pub ip: &'a str,
    pub ready: bool,
    pub node: &'a str,
    pub hostname: Option<&'a str>,
}

pub fn ep<'a>(ip: &'a str, node: &'a str) -> Ep<'a> {
    Ep {
        ip,
        ready: true,
        node,
        hostname: None,
    }
}

/// An IPv4 slice of Service `ns/service` with ports `[(name, port, protocol)]`.
pub fn slice(
    ns: &str,
    service: &str,
    suffix: &str,
    ports: &[(&str, i32, &str)],
    endpoints: &[Ep<'_>],
) -> EndpointSlice {
    let ports: Vec<Value> = ports
        .iter()
        .map(|(name, port, protocol)| json!({"name": name, "port": port, "protocol": protocol}))
        .collect();
    let endpoints: Vec<Value> = endpoints
        .iter()
        .map(|e| {
            let mut v = json!({
                "addresses": [e.ip],
                "conditions": {"ready": e.ready, "serving": e.ready, "terminating": false},
                "nodeName": e.node,
            });
            if let Some(h) = e.hostname {
                v["hostname"] = json!(h);
            }
            v
        })
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": format!("{service}-{suffix}"), "namespace": ns,
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": ports,
    }))
    .expect("fixture slice")
}
