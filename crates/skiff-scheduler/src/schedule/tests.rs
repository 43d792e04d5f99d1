//! Whole decisions: the aggregate message, spreading, feasible-node search.

use std::sync::Arc;

use super::*;
use crate::testing::*;

fn schedule_one(snap: &Snapshot, p: Pod) -> Result<Decision, Error> {
    Algorithm::new()
        .schedule(snap, Arc::new(p))
        .map_err(|(e, _)| e)
}

#[test]
fn aggregate_message_for_three_nodes() {
    let snap = snapshot(
        vec![
            node("n1", "1", "4Gi"),
            node("n2", "1", "4Gi"),
            with_taint(node("n3", "8", "4Gi"), "key", "value", "NoSchedule"),
        ],
        vec![
            on(pod("a", "500m", ""), "n1"),
            on(pod("b", "500m", ""), "n2"),
        ],
    );
    let err = schedule_one(&snap, pod("p", "800m", "")).err();
    assert_eq!(
        err.map(|e| e.to_string()),
        Some("0/3 nodes are available: 1 node(s) had untolerated taint {key: value}, 2 Insufficient cpu.".to_string())
    );
}

#[test]
fn no_nodes() {
    let snap = snapshot(vec![], vec![]);
    assert_eq!(schedule_one(&snap, pod("p", "", "")), Err(Error::NoNodes));
    assert_eq!(
        Error::NoNodes.to_string(),
        "no nodes available to schedule pods"
    );
}

#[test]
fn spreads_replicas_and_prefers_the_emptier_node() {
    let mut snap = snapshot(
        vec![node("n1", "4", "8Gi"), node("n2", "4", "8Gi")],
        vec![on(pod("busy", "2", "4Gi"), "n1")],
    );
    let decision = schedule_one(&snap, pod("p", "100m", "100Mi"));
    assert_eq!(decision.map(|d| d.node), Ok("n2".to_string()));
    // Assuming pods one by one spreads them evenly over equal nodes.
    snap = snapshot(vec![node("n1", "4", "8Gi"), node("n2", "4", "8Gi")], vec![]);
    let mut algorithm = Algorithm::new();
    let mut counts = std::collections::HashMap::new();
    for i in 0..10 {
        let p = pod(&format!("p{i}"), "100m", "100Mi");
        let Ok(decision) = algorithm.schedule(&snap, Arc::new(p.clone())) else {
            panic!("unschedulable");
        };
        *counts.entry(decision.node.clone()).or_insert(0) += 1;
        snap.upsert_pod(Arc::new(assumed(&p, &decision.node)));
    }
    assert_eq!(counts.get("n1"), Some(&5));
    assert_eq!(counts.get("n2"), Some(&5));
}

#[test]
fn siblings_spread_by_default_constraints() {
    let owned = |name: &str| {
        let mut p = pod(name, "", "");
        p.metadata.owner_references = Some(vec![
            k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                api_version: "apps/v1".into(),
                kind: "ReplicaSet".into(),
                name: "rs".into(),
                uid: "rs-uid".into(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            },
        ]);
        p
    };
    // n2 is emptier for resources but already has two siblings; n1 has none.
    let snap = snapshot(
        vec![node("n1", "4", "8Gi"), node("n2", "4", "8Gi")],
        vec![
            on(owned("s1"), "n2"),
            on(owned("s2"), "n2"),
            on(pod("other", "1", "1Gi"), "n1"),
        ],
    );
    assert_eq!(
        schedule_one(&snap, owned("s3")).map(|d| d.node),
        Ok("n1".to_string())
    );
}

#[test]
fn feasible_nodes_to_find_follows_the_adaptive_rule() {
    let a = Algorithm::new();
    assert_eq!(a.feasible_nodes_to_find(50), 50);
    assert_eq!(a.feasible_nodes_to_find(100), 100);
    assert_eq!(a.feasible_nodes_to_find(1000), 420);
    assert_eq!(a.feasible_nodes_to_find(5000), 500);
    assert_eq!(a.feasible_nodes_to_find(10000), 500);
}

#[test]
fn unschedulable_returns_the_cycle_for_preemption() {
    let snap = snapshot(
        vec![node("n1", "1", "1Gi")],
        vec![on(pod("a", "1", ""), "n1")],
    );
    let result = Algorithm::new().schedule(&snap, Arc::new(pod("p", "1", "")));
    assert!(matches!(result, Err((Error::Fit(_), Some(_)))));
}
