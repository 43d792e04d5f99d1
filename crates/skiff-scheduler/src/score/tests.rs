//! Raw and normalised scores.

use serde_json::json;

use super::*;
use crate::testing::*;

#[test]
fn least_allocated_and_balanced() {
    let snap = snapshot(
        vec![node("n1", "4", "8Gi")],
        vec![on(pod("a", "1", "2Gi"), "n1")],
    );
    let Some(n1) = snap.node("n1") else { panic!() };
    let c = cycle(&snap, pod("p", "1", "2Gi"));
    // cpu (4-2)/4 = 50, memory (8-4)/8 = 50
    assert_eq!(least_allocated(&c, n1), 50);
    assert_eq!(balanced_allocation(&c, n1), 100);
    let c = cycle(&snap, pod("p", "3", ""));
    // cpu fraction 1.0, memory 0.25 -> std 0.375 -> 62
    assert_eq!(balanced_allocation(&c, n1), 62);
}

#[test]
fn normalizers() {
    let mut s = vec![0, 1, 2];
    normalize_default(&mut s, true);
    assert_eq!(s, vec![100, 50, 0]);
    let mut s = vec![0, 0];
    normalize_default(&mut s, true);
    assert_eq!(s, vec![100, 100]);
    let mut s = vec![3, 6];
    normalize_default(&mut s, false);
    assert_eq!(s, vec![50, 100]);
}

#[test]
fn prefer_no_schedule_taints_and_preferred_affinity() {
    let snap = snapshot(
        vec![
            with_taint(
                with_labels(node("n1", "4", "8Gi"), &[("disk", "ssd")]),
                "soft",
                "",
                "PreferNoSchedule",
            ),
            node("n2", "4", "8Gi"),
        ],
        vec![],
    );
    let mut p = pod("p", "", "");
    p.spec.get_or_insert_with(Default::default).affinity = serde_json::from_value(json!({"nodeAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 50, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}}]
    }}))
    .ok();
    let c = cycle(&snap, p);
    let (Some(n1), Some(n2)) = (snap.node("n1"), snap.node("n2")) else {
        panic!()
    };
    assert_eq!(taint_toleration(&c, n1), 1);
    assert_eq!(taint_toleration(&c, n2), 0);
    assert_eq!(node_affinity(&c, n1), 50);
    // 3*(0) + 2*(100) on n1 vs 3*(100) + 2*(0) on n2 (resources equal): n2 wins.
    let totals = score(&snap, &c, &[n1, n2]);
    assert!(totals[1] > totals[0], "{totals:?}");
}

#[test]
fn preferred_pod_anti_affinity_pushes_away() {
    let snap = snapshot(
        vec![node("n1", "4", "8Gi"), node("n2", "4", "8Gi")],
        vec![labelled(on(pod("a", "", ""), "n1"), &[("app", "web")])],
    );
    let mut p = pod("p", "", "");
    p.spec.get_or_insert_with(Default::default).affinity = serde_json::from_value(json!({"podAntiAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "podAffinityTerm": {
            "labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}}]
    }}))
    .ok();
    let c = cycle(&snap, p);
    let by_topology = inter_pod_affinity_topology_scores(&snap, &c);
    let (Some(n1), Some(n2)) = (snap.node("n1"), snap.node("n2")) else {
        panic!()
    };
    assert_eq!(inter_pod_affinity(&by_topology, n1), -100);
    assert_eq!(inter_pod_affinity(&by_topology, n2), 0);
}

#[test]
fn soft_topology_spread_scores() {
    let zone = |n: &str, z: &str| with_labels(node(n, "2", "4Gi"), &[("zone", z)]);
    let web = |name: &str, n: &str| labelled(on(pod(name, "", ""), n), &[("app", "web")]);
    let snap = snapshot(
        vec![zone("n1", "a"), zone("n2", "b")],
        vec![web("w1", "n1"), web("w2", "n1")],
    );
    let mut p = labelled(pod("w3", "", ""), &[("app", "web")]);
    p.spec.get_or_insert_with(Default::default).topology_spread_constraints = serde_json::from_value(json!([
        {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {"matchLabels": {"app": "web"}}}
    ]))
    .ok();
    let c = cycle(&snap, p);
    let (Some(n1), Some(n2)) = (snap.node("n1"), snap.node("n2")) else {
        panic!()
    };
    // 2 * ln(4) = 2.77 -> 3; 0
    assert_eq!(topology_spread(&c, n1), Some(3));
    assert_eq!(topology_spread(&c, n2), Some(0));
}
