//! DaemonSet node eligibility, one pod per node, rolling update within maxUnavailable.

use serde_json::json;

use super::*;

fn now() -> Timestamp {
    "2024-01-01T00:00:00Z".parse().unwrap_or_default()
}

fn ds(extra: serde_json::Value) -> DaemonSet {
    let mut value = json!({
        "metadata": {"name": "agent", "namespace": "kube-system", "uid": "ds-uid", "generation": 1},
        "spec": {"selector": {"matchLabels": {"app": "agent"}},
            "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {"containers": [{"name": "c", "image": "v1"}]}}}
    });
    if let (Some(spec), Some(extra)) = (value.pointer_mut("/spec/template/spec"), extra.as_object())
    {
        for (k, v) in extra {
            spec[k] = v.clone();
        }
    }
    serde_json::from_value(value).unwrap_or_default()
}

fn node(name: &str, labels: serde_json::Value, taints: serde_json::Value) -> Node {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": labels}, "spec": {"taints": taints}}),
    )
    .unwrap_or_default()
}

#[test]
fn eligibility() {
    let plain = ds(json!({}));
    let cases = [
        (node("a", json!({}), json!([])), true),
        (
            node(
                "b",
                json!({}),
                json!([{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]),
            ),
            true,
        ),
        (
            node(
                "c",
                json!({}),
                json!([{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]),
            ),
            true,
        ),
        (
            node(
                "d",
                json!({}),
                json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]),
            ),
            false,
        ),
        (
            node(
                "e",
                json!({}),
                json!([{"key": "dedicated", "value": "db", "effect": "PreferNoSchedule"}]),
            ),
            true,
        ),
    ];
    for (n, want) in &cases {
        assert_eq!(should_run(&plain, n), *want, "{:?}", n.metadata.name);
    }
    let selective = ds(json!({"nodeSelector": {"disk": "ssd"}}));
    assert!(should_run(
        &selective,
        &node("a", json!({"disk": "ssd"}), json!([]))
    ));
    assert!(!should_run(
        &selective,
        &node("a", json!({"disk": "hdd"}), json!([]))
    ));
    let tolerant = ds(json!({"tolerations": [{"key": "dedicated", "operator": "Exists"}]}));
    assert!(should_run(&tolerant, &cases[3].0));
}

#[test]
fn one_pod_per_eligible_node_pinned_by_affinity() {
    let nodes = vec![
        node("a", json!({}), json!([])),
        node("b", json!({}), json!([])),
        node(
            "tainted",
            json!({}),
            json!([{"key": "x", "effect": "NoSchedule"}]),
        ),
    ];
    let outcome = plan(&ds(json!({})), &nodes, &[], &[], now());
    let created: Vec<&String> = outcome
        .changes
        .iter()
        .filter_map(|c| match c {
            Change::CreatePod { node, .. } => Some(node),
            _ => None,
        })
        .collect();
    assert_eq!(created, vec!["a", "b"]);
    let Some(Change::CreatePod { pod, .. }) = outcome
        .changes
        .iter()
        .find(|c| matches!(c, Change::CreatePod { .. }))
    else {
        panic!()
    };
    assert_eq!(node_of(pod), "a");
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.clone())
        .unwrap_or_default();
    assert!(
        tolerations
            .iter()
            .any(|t| t.key.as_deref() == Some("node.kubernetes.io/unreachable"))
    );
    let status = outcome
        .changes
        .iter()
        .find_map(|c| match c {
            Change::UpdateStatus(s) => Some(s.clone()),
            _ => None,
        })
        .unwrap_or_default();
    assert_eq!(
        (
            status.desired_number_scheduled,
            status.current_number_scheduled
        ),
        (2, 0)
    );
}

fn daemon_pod(name: &str, node: &str, hash: &str, ready: bool) -> Pod {
    let mut value = json!({
        "metadata": {"name": name, "namespace": "kube-system", "uid": name, "labels": {"app": "agent", "controller-revision-hash": hash},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent", "uid": "ds-uid", "controller": true}]},
        "spec": {"nodeName": node, "containers": [{"name": "c"}]},
        "status": {"phase": "Running"}
    });
    if ready {
        value["status"]["conditions"] = json!([{"type": "Ready", "status": "True"}]);
    }
    serde_json::from_value(value).unwrap_or_default()
}

#[test]
fn removes_duplicates_and_misscheduled_pods() {
    let nodes = vec![
        node("a", json!({}), json!([])),
        node("t", json!({}), json!([{"key": "x", "effect": "NoExecute"}])),
    ];
    let set = ds(json!({}));
    let first = plan(&set, &nodes, &[], &[], now());
    let hash = first
        .changes
        .iter()
        .find_map(|c| match c {
            Change::Revision(crate::statefulset::Change::CreateRevision(r)) => r
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(REVISION_LABEL).cloned()),
            _ => None,
        })
        .unwrap_or_default();
    let pods = vec![
        daemon_pod("p1", "a", &hash, true),
        daemon_pod("p2", "a", &hash, true),
        daemon_pod("p3", "t", &hash, true),
    ];
    let outcome = plan(&set, &nodes, &pods, &[], now());
    let deleted: Vec<&String> = outcome
        .changes
        .iter()
        .filter_map(|c| match c {
            Change::DeletePod { name, .. } => Some(name),
            _ => None,
        })
        .collect();
    assert_eq!(deleted.len(), 2);
    assert!(deleted.contains(&&"p3".to_string()));
}

#[test]
fn rolling_update_respects_max_unavailable() {
    let nodes: Vec<Node> = (0..4)
        .map(|i| node(&format!("n{i}"), json!({}), json!([])))
        .collect();
    let set = ds(json!({}));
    let old_pods: Vec<Pod> = (0..4)
        .map(|i| daemon_pod(&format!("p{i}"), &format!("n{i}"), "old", true))
        .collect();
    let outcome = plan(&set, &nodes, &old_pods, &[], now());
    let deleted = outcome
        .changes
        .iter()
        .filter(|c| matches!(c, Change::DeletePod { .. }))
        .count();
    assert_eq!(deleted, 1, "maxUnavailable defaults to 1");
    // One already unavailable: no budget left for available ones, but the unavailable old one goes.
    let mut pods = old_pods.clone();
    pods[0] = daemon_pod("p0", "n0", "old", false);
    let outcome = plan(&set, &nodes, &pods, &[], now());
    let deleted: Vec<&String> = outcome
        .changes
        .iter()
        .filter_map(|c| match c {
            Change::DeletePod { name, .. } => Some(name),
            _ => None,
        })
        .collect();
    assert_eq!(deleted, vec!["p0"]);
}
