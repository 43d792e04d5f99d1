//! ReplicaSet plans: create, delete in Kubernetes' order, adopt, release, status.

use k8s_openapi::api::apps::v1::ReplicaSet;
use serde_json::json;

use super::*;

fn now() -> Timestamp {
    "2024-01-01T00:10:00Z".parse().unwrap_or_default()
}

fn rs(replicas: i32) -> ReplicaSet {
    serde_json::from_value(json!({
        "metadata": {"name": "web-abc", "namespace": "default", "uid": "rs-uid", "generation": 2},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}
    }))
    .unwrap_or_default()
}

fn pod(name: &str, owned: bool, node: &str, phase: &str, ready_at: Option<&str>) -> Pod {
    let mut value = json!({
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"), "labels": {"app": "web"},
            "creationTimestamp": "2024-01-01T00:00:00Z"},
        "spec": {"containers": [{"name": "c"}]},
        "status": {"phase": phase}
    });
    if owned {
        value["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc", "uid": "rs-uid", "controller": true}]);
    }
    if !node.is_empty() {
        value["spec"]["nodeName"] = json!(node);
    }
    if let Some(at) = ready_at {
        value["status"]["conditions"] =
            json!([{"type": "Ready", "status": "True", "lastTransitionTime": at}]);
    }
    serde_json::from_value(value).unwrap_or_default()
}

#[test]
fn creates_missing_pods_from_the_template() {
    let plan = plan(&rs(3), &[pod("a", true, "n1", "Running", None)], now());
    let creates: Vec<&Pod> = plan
        .changes
        .iter()
        .filter_map(|c| match c {
            Change::CreatePod(p) => Some(&**p),
            _ => None,
        })
        .collect();
    assert_eq!(creates.len(), 2);
    let p = creates[0];
    assert_eq!(p.metadata.generate_name.as_deref(), Some("web-abc-"));
    let owner = p.metadata.owner_references.clone().unwrap_or_default();
    assert_eq!(owner[0].uid, "rs-uid");
    assert_eq!(
        (owner[0].controller, owner[0].block_owner_deletion),
        (Some(true), Some(true))
    );
}

#[test]
fn deletes_surplus_pods_least_valuable_first() {
    let pods = vec![
        pod(
            "ready-old",
            true,
            "n1",
            "Running",
            Some("2024-01-01T00:01:00Z"),
        ),
        pod(
            "ready-new",
            true,
            "n2",
            "Running",
            Some("2024-01-01T00:05:00Z"),
        ),
        pod("not-ready", true, "n1", "Running", None),
        pod("pending", true, "n2", "Pending", None),
        pod("unscheduled", true, "", "Pending", None),
    ];
    let plan = plan(&rs(1), &pods, now());
    let deleted: Vec<String> = plan
        .changes
        .iter()
        .filter_map(|c| match c {
            Change::DeletePod { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        deleted,
        vec!["unscheduled", "pending", "not-ready", "ready-new"]
    );
    assert!(plan.changes.contains(&Change::Event(Record::normal(
        "SuccessfulDelete",
        "Deleted pod: unscheduled"
    ))));
}

#[test]
fn doubled_up_pods_go_first_among_equals() {
    let a = pod("a", true, "n1", "Running", Some("2024-01-01T00:01:00Z"));
    let b = pod("b", true, "n1", "Running", Some("2024-01-01T00:01:00Z"));
    let c = pod("c", true, "n2", "Running", Some("2024-01-01T00:01:00Z"));
    let chosen = pods_to_delete(&[&c, &a, &b], 1);
    let name = chosen[0].metadata.name.as_deref().unwrap_or_default();
    assert!(name == "a" || name == "b", "{name}");
}

#[test]
fn adopts_orphans_and_releases_mismatches() {
    let orphan = pod("orphan", false, "n1", "Running", None);
    let mut stray = pod("stray", true, "n1", "Running", None);
    stray.metadata.labels = Some([("app".to_string(), "other".to_string())].into());
    let plan = plan(&rs(1), &[orphan, stray], now());
    assert!(plan.changes.contains(&Change::AdoptPod {
        name: "orphan".into(),
        uid: "uid-orphan".into()
    }));
    assert!(plan.changes.contains(&Change::ReleasePod {
        name: "stray".into(),
        uid: "uid-stray".into()
    }));
    assert!(
        !plan
            .changes
            .iter()
            .any(|c| matches!(c, Change::CreatePod(_)))
    );
}

#[test]
fn terminal_and_deleting_pods_do_not_count() {
    let done = pod("done", true, "n1", "Failed", None);
    let mut going = pod("going", true, "n1", "Running", None);
    going.metadata.deletion_timestamp = Some(crate::workload::time(now()));
    let plan = plan(&rs(1), &[done, going], now());
    assert_eq!(
        plan.changes
            .iter()
            .filter(|c| matches!(c, Change::CreatePod(_)))
            .count(),
        1
    );
}

#[test]
fn status_with_min_ready_seconds() {
    let mut set = rs(2);
    if let Some(spec) = set.spec.as_mut() {
        spec.min_ready_seconds = Some(60);
    }
    let pods = vec![
        pod("a", true, "n1", "Running", Some("2024-01-01T00:00:00Z")),
        pod("b", true, "n1", "Running", Some("2024-01-01T00:09:50Z")),
    ];
    let plan = plan(&set, &pods, now());
    let status = plan
        .changes
        .iter()
        .find_map(|c| match c {
            Change::UpdateStatus(s) => Some(s.clone()),
            _ => None,
        })
        .unwrap_or_default();
    assert_eq!(
        (
            status.replicas,
            status.ready_replicas,
            status.available_replicas,
            status.fully_labeled_replicas,
            status.observed_generation
        ),
        (2, Some(2), Some(1), Some(2), Some(2))
    );
    assert_eq!(plan.requeue_after_seconds, Some(51));
}

#[test]
fn creations_go_out_in_doubling_batches() {
    let cases: &[(usize, usize, &[usize])] = &[
        (0, 1, &[]),
        (1, 1, &[1]),
        (2, 1, &[1, 1]),
        (3, 1, &[1, 2]),
        (20, 1, &[1, 2, 4, 8, 5]),
        (50, 1, &[1, 2, 4, 8, 16, 19]),
        (500, 1, &[1, 2, 4, 8, 16, 32, 64, 128, 245]),
        (10, 4, &[4, 6]),
        // A zero initial batch would never progress: it counts as one.
        (3, 0, &[1, 2]),
    ];
    for (total, initial, want) in cases {
        let got = slow_start_batches(*total, *initial);
        assert_eq!(got, want.to_vec(), "total {total}, initial {initial}");
        assert_eq!(got.iter().sum::<usize>(), *total);
    }
}
