//! Node lifecycle timing with an injected clock: Unknown after the grace period, taints,
//! eviction after tolerationSeconds, recovery.

use serde_json::json;

use super::*;

fn at(s: &str) -> Timestamp {
    s.parse().unwrap_or_default()
}

fn config() -> Config {
    Config {
        grace_period: SignedDuration::from_secs(40),
        started: at("2024-01-01T00:00:00Z"),
    }
}

fn node(taints: serde_json::Value) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": "n1"},
        "spec": {"taints": taints},
        "status": {"conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": "2024-01-01T00:00:00Z"},
            {"type": "MemoryPressure", "status": "False"}]}
    }))
    .unwrap_or_default()
}

fn lease(renewed: &str) -> Lease {
    serde_json::from_value(json!({"metadata": {"name": "n1", "namespace": "kube-node-lease"}, "spec": {"renewTime": renewed}})).unwrap_or_default()
}

fn pod(name: &str, toleration_seconds: Option<i64>) -> Pod {
    let mut value = json!({"metadata": {"name": name, "namespace": "default", "uid": name},
        "spec": {"nodeName": "n1", "containers": [{"name": "c"}]},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
    if let Some(seconds) = toleration_seconds {
        value["spec"]["tolerations"] = json!([
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": seconds},
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": seconds}
        ]);
    }
    serde_json::from_value(value).unwrap_or_default()
}

#[test]
fn fresh_lease_means_no_change_and_a_requeue_at_the_deadline() {
    let p = plan(
        &config(),
        &[node(json!([]))],
        &[lease("2024-01-01T00:00:30Z")],
        &[] as &[Pod],
        at("2024-01-01T00:00:50Z"),
    );
    assert!(p.changes.is_empty(), "{:?}", p.changes);
    assert_eq!(p.requeue_after_seconds, Some(21));
}

#[test]
fn expired_lease_makes_the_node_unknown_and_tainted() {
    let now = at("2024-01-01T00:01:11Z");
    let p = plan(
        &config(),
        &[node(json!([]))],
        &[lease("2024-01-01T00:00:30Z")],
        &[pod("web", Some(300))],
        now,
    );
    let conditions = p
        .changes
        .iter()
        .find_map(|c| match c {
            Change::SetConditions { conditions, .. } => Some(conditions.clone()),
            _ => None,
        })
        .unwrap_or_default();
    assert!(conditions.iter().all(|c| c.status == "Unknown"));
    assert_eq!(
        conditions[0].message.as_deref(),
        Some("Kubelet stopped posting node status.")
    );
    let taints = p
        .changes
        .iter()
        .find_map(|c| match c {
            Change::SetTaints { taints, .. } => Some(taints.clone()),
            _ => None,
        })
        .unwrap_or_default();
    let keys: Vec<(&str, &str)> = taints
        .iter()
        .map(|t| (t.key.as_str(), t.effect.as_str()))
        .collect();
    assert_eq!(
        keys,
        vec![(UNREACHABLE, "NoSchedule"), (UNREACHABLE, "NoExecute")]
    );
    assert!(p.changes.contains(&Change::MarkPodNotReady {
        namespace: "default".into(),
        name: "web".into()
    }));
    // The pod tolerates it for 300 s from now.
    assert_eq!(p.requeue_after_seconds, Some(301));
}

#[test]
fn pods_are_evicted_when_their_toleration_runs_out() {
    let tainted = node(
        json!([{"key": UNREACHABLE, "effect": "NoExecute", "timeAdded": "2024-01-01T00:01:00Z"},
        {"key": UNREACHABLE, "effect": "NoSchedule", "timeAdded": "2024-01-01T00:01:00Z"}]),
    );
    let leases = [lease("2024-01-01T00:00:00Z")];
    let pods = [
        pod("short", Some(10)),
        pod("long", Some(300)),
        pod("forever", None),
        pod("none", Some(0)),
    ];
    let mut forever = pods[2].clone();
    forever
        .spec
        .get_or_insert_with(Default::default)
        .tolerations = serde_json::from_value(json!([{"operator": "Exists"}])).ok();
    let mut untolerated = pods[2].clone();
    untolerated.metadata.name = Some("untolerated".into());
    let pods = [
        pods[0].clone(),
        pods[1].clone(),
        forever,
        pods[3].clone(),
        untolerated,
    ];
    let evicted = |now: &str| -> Vec<String> {
        plan(
            &config(),
            std::slice::from_ref(&tainted),
            &leases,
            &pods,
            at(now),
        )
        .changes
        .iter()
        .filter_map(|c| match c {
            Change::EvictPod { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect()
    };
    assert_eq!(evicted("2024-01-01T00:01:05Z"), vec!["none", "untolerated"]);
    assert_eq!(
        evicted("2024-01-01T00:01:10Z"),
        vec!["short", "none", "untolerated"]
    );
    assert_eq!(
        evicted("2024-01-01T00:06:00Z"),
        vec!["short", "long", "none", "untolerated"]
    );
}

#[test]
fn a_new_leader_gives_nodes_a_grace_period() {
    let mut c = config();
    c.started = at("2024-01-01T01:00:00Z");
    let p = plan(
        &c,
        &[node(json!([]))],
        &[lease("2024-01-01T00:00:00Z")],
        &[] as &[Pod],
        at("2024-01-01T01:00:10Z"),
    );
    assert!(p.changes.is_empty());
    assert_eq!(p.requeue_after_seconds, Some(31));
}

#[test]
fn recovery_removes_the_taints_and_not_ready_nodes_get_not_ready_taints() {
    let tainted = node(
        json!([{"key": UNREACHABLE, "effect": "NoExecute"}, {"key": "custom", "effect": "NoSchedule"}]),
    );
    let p = plan(
        &config(),
        &[tainted],
        &[lease("2024-01-01T00:00:50Z")],
        &[] as &[Pod],
        at("2024-01-01T00:01:00Z"),
    );
    let taints = p
        .changes
        .iter()
        .find_map(|c| match c {
            Change::SetTaints { taints, .. } => Some(taints.clone()),
            _ => None,
        })
        .unwrap_or_default();
    assert_eq!(
        taints.iter().map(|t| t.key.as_str()).collect::<Vec<_>>(),
        vec!["custom"]
    );
    let mut sick = node(json!([]));
    if let Some(c) = sick
        .status
        .as_mut()
        .and_then(|s| s.conditions.as_mut())
        .and_then(|c| c.first_mut())
    {
        c.status = "False".into();
    }
    let p = plan(
        &config(),
        &[sick],
        &[lease("2024-01-01T00:00:50Z")],
        &[] as &[Pod],
        at("2024-01-01T00:01:00Z"),
    );
    let taints = p
        .changes
        .iter()
        .find_map(|c| match c {
            Change::SetTaints { taints, .. } => Some(taints.clone()),
            _ => None,
        })
        .unwrap_or_default();
    assert!(taints.iter().all(|t| t.key == NOT_READY) && taints.len() == 2);
}
