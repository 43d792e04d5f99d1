//! The downward API: pod fields (`fieldRef`) and container resources (`resourceFieldRef`) as
//! strings, shared by environment variables and downwardAPI/projected volumes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// What the pod object alone does not say.
#[derive(Clone, Debug, Default)]
pub struct NodeFacts {
    pub node_name: String,
    pub host_ip: String,
    /// The pod's IP once its sandbox runs.
    pub pod_ip: Option<String>,
    /// Allocatable CPU (millicores) and memory (bytes): the value of unset limits.
    pub allocatable_cpu_millis: i64,
    pub allocatable_memory_bytes: i64,
}

fn format_map(map: &BTreeMap<String, String>) -> String {
    // As the kubelet writes them: key="value" lines, sorted, values quoted Go-style.
    map.iter()
        .map(|(k, v)| format!("{k}={}\n", serde_json::Value::String(v.clone())))
        .collect()
}

fn subscript<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = path.strip_prefix(prefix)?;
    let inner = rest.strip_prefix("['")?.strip_suffix("']")?;
    Some(inner)
}

/// The value of a `fieldRef.fieldPath`. `in_volume` allows the whole-map fields
/// (`metadata.labels`, `metadata.annotations`) that only volumes may use.
pub fn field(pod: &Pod, path: &str, facts: &NodeFacts, in_volume: bool) -> Result<String, String> {
    let meta = &pod.metadata;
    let empty = BTreeMap::new();
    let labels = meta.labels.as_ref().unwrap_or(&empty);
    let annotations = meta.annotations.as_ref().unwrap_or(&empty);
    let spec = pod.spec.as_ref();
    let value = match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" if in_volume => format_map(labels),
        "metadata.annotations" if in_volume => format_map(annotations),
        "spec.nodeName" => spec
            .and_then(|s| s.node_name.clone())
            .unwrap_or_else(|| facts.node_name.clone()),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" | "status.hostIPs" => facts.host_ip.clone(),
        "status.podIP" | "status.podIPs" => facts.pod_ip.clone().unwrap_or_default(),
        other => {
            if let Some(key) = subscript(other, "metadata.labels") {
                labels.get(key).cloned().unwrap_or_default()
            } else if let Some(key) = subscript(other, "metadata.annotations") {
                annotations.get(key).cloned().unwrap_or_default()
            } else {
                return Err(format!("unsupported fieldPath: {other}"));
            }
        }
    };
    Ok(value)
}

/// A quantity in base units (cores or bytes) as a float.
pub fn quantity(q: &Quantity) -> Option<f64> {
    skiff_core::validation::parse_quantity(&q.0)
}

/// The value of a `resourceFieldRef` (`limits.cpu`, `requests.memory`, ...) divided by `divisor`
/// and rounded up, as the kubelet computes it.
pub fn resource(
    container: &Container,
    resource: &str,
    divisor: Option<&Quantity>,
    facts: &NodeFacts,
) -> Result<String, String> {
    let resources = container.resources.clone().unwrap_or_default();
    let limits = resources.limits.unwrap_or_default();
    let requests = resources.requests.unwrap_or_default();
    let (map, name) = match resource.split_once('.') {
        Some(("limits", name)) => (&limits, name),
        Some(("requests", name)) => (&requests, name),
        _ => return Err(format!("unsupported resource: {resource}")),
    };
    let value = match map.get(name).and_then(quantity) {
        Some(v) => v,
        None => match (resource.starts_with("limits"), name) {
            (true, "cpu") => facts.allocatable_cpu_millis as f64 / 1000.0,
            (true, "memory") => facts.allocatable_memory_bytes as f64,
            (false, "cpu") | (false, "memory") => 0.0,
            _ => 0.0,
        },
    };
    let divisor = divisor
        .and_then(quantity)
        .filter(|d| *d > 0.0)
        .unwrap_or(1.0);
    let scaled = (value / divisor).ceil();
    // A requested CPU below one divisor unit still reads 1, as in the kubelet.
    let scaled = if name == "cpu" && value > 0.0 {
        scaled.max(1.0)
    } else {
        scaled
    };
    Ok(format!("{}", scaled as i64))
}
