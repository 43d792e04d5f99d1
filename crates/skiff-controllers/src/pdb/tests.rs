//! PDB status arithmetic.

use serde_json::json;

use super::*;

fn pdb(rule: serde_json::Value) -> PodDisruptionBudget {
    let mut value = json!({"metadata": {"name": "db", "namespace": "default", "generation": 1}, "spec": {"selector": {"matchLabels": {"app": "db"}}}});
    if let Some(rule) = rule.as_object() {
        for (k, v) in rule {
            value["spec"][k] = v.clone();
        }
    }
    serde_json::from_value(value).unwrap_or_default()
}

fn pod(name: &str, ready: bool) -> Pod {
    serde_json::from_value(json!({"metadata": {"name": name, "namespace": "default", "labels": {"app": "db"}},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}})).unwrap_or_default()
}

#[test]
fn budgets() {
    let now = "2024-01-01T00:00:00Z".parse().unwrap_or_default();
    let pods = vec![pod("a", true), pod("b", true), pod("c", false)];
    let cases = [
        (json!({"minAvailable": 2}), (3, 2, 2, 0)),
        (json!({"minAvailable": 1}), (3, 2, 1, 1)),
        (json!({"minAvailable": "50%"}), (3, 2, 2, 0)),
        (json!({"maxUnavailable": 1}), (3, 2, 2, 0)),
        (json!({"maxUnavailable": "100%"}), (3, 2, 0, 2)),
    ];
    for (rule, (expected, healthy, desired, allowed)) in cases {
        let status = plan(&pdb(rule.clone()), &pods, now).unwrap_or_default();
        assert_eq!(
            (
                status.expected_pods,
                status.current_healthy,
                status.desired_healthy,
                status.disruptions_allowed
            ),
            (expected, healthy, desired, allowed),
            "{rule}"
        );
        let condition = status
            .conditions
            .unwrap_or_default()
            .pop()
            .map(|c| c.status);
        assert_eq!(
            condition.as_deref(),
            Some(if allowed > 0 { "True" } else { "False" })
        );
    }
    let mut settled = pdb(json!({"minAvailable": 1}));
    settled.status = plan(&settled, &pods, now);
    assert_eq!(plan(&settled, &pods, now), None);
}
