//! Builders of nodes, pods and snapshots for the unit tests (compiled only for tests).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Container, Node, Pod, ResourceRequirements, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde_json::json;

use crate::cycle::Cycle;
use crate::snapshot::{PodInfo, Snapshot};

/// A node with `cpu` (e.g. "2") and `memory` (e.g. "4Gi") allocatable, room for 110 pods, and
/// the hostname label.
pub fn node(name: &str, cpu: &str, memory: &str) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": "110"}}
    }))
    .unwrap_or_default()
}

/// Add labels to a node.
pub fn with_labels(mut node: Node, labels: &[(&str, &str)]) -> Node {
    let map = node.metadata.labels.get_or_insert_with(BTreeMap::new);
    for (k, v) in labels {
        map.insert((*k).into(), (*v).into());
    }
    node
}

/// Add a taint to a node.
pub fn with_taint(mut node: Node, key: &str, value: &str, effect: &str) -> Node {
    let spec = node.spec.get_or_insert_with(Default::default);
    spec.taints.get_or_insert_with(Vec::new).push(Taint {
        key: key.into(),
        value: Some(value.into()).filter(|v: &String| !v.is_empty()),
        effect: effect.into(),
        time_added: None,
    });
    node
}

/// A pending pod in `default` with one container requesting `cpu` and `memory` ("" for none).
pub fn pod(name: &str, cpu: &str, memory: &str) -> Pod {
    let mut requests = BTreeMap::new();
    if !cpu.is_empty() {
        requests.insert("cpu".to_string(), Quantity(cpu.into()));
    }
    if !memory.is_empty() {
        requests.insert("memory".to_string(), Quantity(memory.into()));
    }
    let mut pod = Pod::default();
    pod.metadata.name = Some(name.into());
    pod.metadata.namespace = Some("default".into());
    pod.metadata.uid = Some(format!("uid-{name}"));
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.containers = vec![Container {
        name: "c".into(),
        image: Some("busybox".into()),
        resources: Some(ResourceRequirements {
            requests: Some(requests),
            ..Default::default()
        }),
        ..Default::default()
    }];
    pod
}

/// Bind a pod to a node.
pub fn on(mut pod: Pod, node: &str) -> Pod {
    pod.spec.get_or_insert_with(Default::default).node_name = Some(node.into());
    pod
}

/// Set labels on a pod.
pub fn labelled(mut pod: Pod, labels: &[(&str, &str)]) -> Pod {
    let map = pod.metadata.labels.get_or_insert_with(BTreeMap::new);
    for (k, v) in labels {
        map.insert((*k).into(), (*v).into());
    }
    pod
}

/// Set a pod's priority.
pub fn priority(mut pod: Pod, value: i32) -> Pod {
    pod.spec.get_or_insert_with(Default::default).priority = Some(value);
    pod
}

/// Add a toleration to a pod.
pub fn tolerating(mut pod: Pod, key: &str, operator: &str, value: &str, effect: &str) -> Pod {
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.tolerations
        .get_or_insert_with(Vec::new)
        .push(Toleration {
            key: Some(key.into()).filter(|k: &String| !k.is_empty()),
            operator: Some(operator.into()),
            value: Some(value.into()).filter(|v: &String| !v.is_empty()),
            effect: Some(effect.into()).filter(|e: &String| !e.is_empty()),
            toleration_seconds: None,
        });
    pod
}

/// A snapshot of nodes and assigned pods.
pub fn snapshot(nodes: Vec<Node>, pods: Vec<Pod>) -> Snapshot {
    let mut snapshot = Snapshot::new();
    for node in nodes {
        snapshot.upsert_node(Arc::new(node));
    }
    for pod in pods {
        snapshot.upsert_pod(Arc::new(pod));
    }
    snapshot
}

/// The cycle of a pod (panics in tests if the pre-filter fails).
pub fn cycle(snapshot: &Snapshot, pod: Pod) -> Cycle {
    match Cycle::new(snapshot, Arc::new(PodInfo::new(Arc::new(pod)))) {
        Ok(cycle) => cycle,
        Err(status) => panic!("pre-filter failed: {status:?}"),
    }
}
