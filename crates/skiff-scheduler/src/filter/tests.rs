//! Every filter with kube-scheduler's exact reasons and codes.

use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::snapshot::Snapshot;
use crate::status::Code;
use crate::testing::*;

fn run(snapshot: &Snapshot, pod: k8s_openapi::api::core::v1::Pod, node: &str) -> Status {
    let cycle = cycle(snapshot, pod);
    let Some(info) = snapshot.node(node) else {
        panic!("no node {node}");
    };
    filter(&cycle, info)
}

fn fails(status: &Status, code: Code, reasons: &[&str]) {
    assert_eq!(status.code, code, "{status:?}");
    let got: Vec<&str> = status.reasons.iter().map(|r| r.as_ref()).collect();
    assert_eq!(got, reasons);
}

#[test]
fn resources_fit_table() {
    let snap = snapshot(
        vec![node("n1", "2", "4Gi")],
        vec![on(pod("used", "1500m", "3Gi"), "n1")],
    );
    let cases = [
        ("fits", "500m", "1Gi", Code::Success, vec![]),
        (
            "cpu",
            "600m",
            "1Gi",
            Code::Unschedulable,
            vec!["Insufficient cpu"],
        ),
        (
            "memory",
            "100m",
            "2Gi",
            Code::Unschedulable,
            vec!["Insufficient memory"],
        ),
        (
            "both",
            "1",
            "2Gi",
            Code::Unschedulable,
            vec!["Insufficient cpu", "Insufficient memory"],
        ),
        (
            "more than the node has",
            "3",
            "",
            Code::UnschedulableAndUnresolvable,
            vec!["Insufficient cpu"],
        ),
        ("no requests", "", "", Code::Success, vec![]),
    ];
    for (name, cpu, memory, code, reasons) in cases {
        let status = run(&snap, pod("p", cpu, memory), "n1");
        assert_eq!(status.code, code, "{name}: {status:?}");
        let got: Vec<&str> = status.reasons.iter().map(|r| r.as_ref()).collect();
        assert_eq!(got, reasons, "{name}");
    }
}

#[test]
fn too_many_pods() {
    let mut n = node("n1", "2", "4Gi");
    if let Some(status) = n.status.as_mut()
        && let Some(allocatable) = status.allocatable.as_mut()
    {
        allocatable.insert(
            "pods".into(),
            k8s_openapi::apimachinery::pkg::api::resource::Quantity("1".into()),
        );
    }
    let snap = snapshot(vec![n], vec![on(pod("a", "", ""), "n1")]);
    fails(
        &run(&snap, pod("p", "", ""), "n1"),
        Code::Unschedulable,
        &["Too many pods"],
    );
}

#[test]
fn terminal_pods_free_their_resources() {
    let mut done = on(pod("done", "2", ""), "n1");
    done.status = Some(k8s_openapi::api::core::v1::PodStatus {
        phase: Some("Succeeded".into()),
        ..Default::default()
    });
    let snap = snapshot(vec![node("n1", "2", "4Gi")], vec![done]);
    assert!(run(&snap, pod("p", "2", ""), "n1").is_success());
}

#[test]
fn node_name_and_unschedulable() {
    let mut cordoned = node("n2", "2", "4Gi");
    cordoned
        .spec
        .get_or_insert_with(Default::default)
        .unschedulable = Some(true);
    let snap = snapshot(vec![node("n1", "2", "4Gi"), cordoned], vec![]);
    fails(
        &run(&snap, on(pod("p", "", ""), "n1"), "n2"),
        Code::UnschedulableAndUnresolvable,
        &["node(s) were unschedulable"],
    );
    let mut pinned = on(pod("p", "", ""), "n1");
    pinned.spec.get_or_insert_with(Default::default).node_name = Some("n1".into());
    assert!(run(&snap, pinned, "n1").is_success());
    let tolerant = tolerating(
        pod("p", "", ""),
        "node.kubernetes.io/unschedulable",
        "Exists",
        "",
        "NoSchedule",
    );
    assert!(run(&snap, tolerant, "n2").is_success());
    let snap = snapshot(vec![node("n1", "2", "4Gi"), node("n3", "2", "4Gi")], vec![]);
    fails(
        &run(&snap, on(pod("p", "", ""), "n1"), "n3"),
        Code::UnschedulableAndUnresolvable,
        &["node(s) didn't match the requested node name"],
    );
}

#[test]
fn taints_and_tolerations() {
    let n = with_taint(node("n1", "2", "4Gi"), "dedicated", "gpu", "NoSchedule");
    let n = with_taint(n, "soft", "", "PreferNoSchedule");
    let snap = snapshot(vec![n], vec![]);
    fails(
        &run(&snap, pod("p", "", ""), "n1"),
        Code::UnschedulableAndUnresolvable,
        &["node(s) had untolerated taint {dedicated: gpu}"],
    );
    let cases = [
        (
            tolerating(pod("p", "", ""), "dedicated", "Equal", "gpu", "NoSchedule"),
            true,
        ),
        (
            tolerating(pod("p", "", ""), "dedicated", "Equal", "cpu", "NoSchedule"),
            false,
        ),
        (
            tolerating(pod("p", "", ""), "dedicated", "Exists", "", ""),
            true,
        ),
        (tolerating(pod("p", "", ""), "", "Exists", "", ""), true),
        (
            tolerating(pod("p", "", ""), "dedicated", "Exists", "", "NoExecute"),
            false,
        ),
    ];
    for (i, (p, ok)) in cases.into_iter().enumerate() {
        assert_eq!(run(&snap, p, "n1").is_success(), ok, "case {i}");
    }
    let snap = snapshot(
        vec![with_taint(
            node("n1", "2", "4Gi"),
            "node.kubernetes.io/unreachable",
            "",
            "NoExecute",
        )],
        vec![],
    );
    fails(
        &run(&snap, pod("p", "", ""), "n1"),
        Code::UnschedulableAndUnresolvable,
        &["node(s) had untolerated taint {node.kubernetes.io/unreachable: }"],
    );
}

#[test]
fn node_selector_and_affinity() {
    let n = with_labels(node("n1", "2", "4Gi"), &[("disk", "ssd"), ("cores", "8")]);
    let snap = snapshot(vec![n], vec![]);
    let with_affinity = |terms: serde_json::Value| {
        let mut p = pod("p", "", "");
        p.spec.get_or_insert_with(Default::default).affinity = serde_json::from_value(json!({
            "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}
        }))
        .ok();
        p
    };
    let cases = [
        (
            json!([{"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd", "nvme"]}]}]),
            true,
        ),
        (
            json!([{"matchExpressions": [{"key": "disk", "operator": "NotIn", "values": ["ssd"]}]}]),
            false,
        ),
        (
            json!([{"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}]),
            false,
        ),
        (
            json!([{"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]}]),
            true,
        ),
        (
            json!([{"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["4"]}]}]),
            true,
        ),
        (
            json!([{"matchExpressions": [{"key": "cores", "operator": "Lt", "values": ["4"]}]}]),
            false,
        ),
        (
            json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]),
            true,
        ),
        (
            json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}]),
            false,
        ),
        (
            json!([{"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}, {"matchExpressions": [{"key": "disk", "operator": "Exists"}]}]),
            true,
        ),
        (json!([]), false),
        (json!([{}]), false),
    ];
    for (i, (terms, ok)) in cases.into_iter().enumerate() {
        let status = run(&snap, with_affinity(terms), "n1");
        assert_eq!(status.is_success(), ok, "case {i}: {status:?}");
        if !ok {
            fails(
                &status,
                Code::UnschedulableAndUnresolvable,
                &["node(s) didn't match Pod's node affinity/selector"],
            );
        }
    }
    let mut p = pod("p", "", "");
    p.spec.get_or_insert_with(Default::default).node_selector =
        Some([("disk".to_string(), "hdd".to_string())].into());
    assert!(!run(&snap, p, "n1").is_success());
}

fn with_host_port(
    mut p: k8s_openapi::api::core::v1::Pod,
    port: i32,
    protocol: &str,
    ip: &str,
) -> k8s_openapi::api::core::v1::Pod {
    if let Some(c) = p.spec.as_mut().and_then(|s| s.containers.first_mut()) {
        c.ports
            .get_or_insert_with(Vec::new)
            .push(k8s_openapi::api::core::v1::ContainerPort {
                container_port: port,
                host_port: Some(port),
                protocol: Some(protocol.into()),
                host_ip: Some(ip.into()).filter(|i: &String| !i.is_empty()),
                name: None,
            });
    }
    p
}

#[test]
fn host_ports() {
    let snap = snapshot(
        vec![node("n1", "2", "4Gi")],
        vec![with_host_port(on(pod("a", "", ""), "n1"), 8080, "TCP", "")],
    );
    fails(
        &run(
            &snap,
            with_host_port(pod("p", "", ""), 8080, "TCP", ""),
            "n1",
        ),
        Code::Unschedulable,
        &["node(s) didn't have free ports for the requested pod ports"],
    );
    assert!(
        run(
            &snap,
            with_host_port(pod("p", "", ""), 8080, "UDP", ""),
            "n1"
        )
        .is_success()
    );
    assert!(
        run(
            &snap,
            with_host_port(pod("p", "", ""), 8081, "TCP", ""),
            "n1"
        )
        .is_success()
    );
    let snap = snapshot(
        vec![node("n1", "2", "4Gi")],
        vec![with_host_port(
            on(pod("a", "", ""), "n1"),
            8080,
            "TCP",
            "10.0.0.1",
        )],
    );
    assert!(
        run(
            &snap,
            with_host_port(pod("p", "", ""), 8080, "TCP", "10.0.0.2"),
            "n1"
        )
        .is_success()
    );
    assert!(
        !run(
            &snap,
            with_host_port(pod("p", "", ""), 8080, "TCP", "0.0.0.0"),
            "n1"
        )
        .is_success()
    );
}

fn with_pod_affinity(
    mut p: k8s_openapi::api::core::v1::Pod,
    kind: &str,
    app: &str,
    key: &str,
) -> k8s_openapi::api::core::v1::Pod {
    let affinity = json!({kind: {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key}
    ]}});
    p.spec.get_or_insert_with(Default::default).affinity = serde_json::from_value(affinity).ok();
    p
}

#[test]
fn inter_pod_affinity_rules() {
    let zone = |n: &str, z: &str| with_labels(node(n, "2", "4Gi"), &[("zone", z)]);
    let nodes = vec![zone("n1", "a"), zone("n2", "a"), zone("n3", "b")];
    let db = labelled(on(pod("db", "", ""), "n1"), &[("app", "db")]);
    let snap = snapshot(nodes.clone(), vec![db.clone()]);
    // Affinity to the db's zone: n2 shares it, n3 does not.
    let web = with_pod_affinity(pod("web", "", ""), "podAffinity", "db", "zone");
    assert!(run(&snap, web.clone(), "n2").is_success());
    fails(
        &run(&snap, web, "n3"),
        Code::UnschedulableAndUnresolvable,
        &["node(s) didn't match pod affinity rules"],
    );
    // Anti-affinity with db by hostname.
    let lonely = with_pod_affinity(
        pod("l", "", ""),
        "podAntiAffinity",
        "db",
        "kubernetes.io/hostname",
    );
    fails(
        &run(&snap, lonely.clone(), "n1"),
        Code::Unschedulable,
        &["node(s) didn't match pod anti-affinity rules"],
    );
    assert!(run(&snap, lonely, "n2").is_success());
    // An assigned pod's anti-affinity forbids its zone to matching pods.
    let guard = with_pod_affinity(
        labelled(on(pod("g", "", ""), "n3"), &[("app", "guard")]),
        "podAntiAffinity",
        "web",
        "zone",
    );
    let snap = snapshot(nodes.clone(), vec![db, guard]);
    let web = labelled(pod("w", "", ""), &[("app", "web")]);
    fails(
        &run(&snap, web.clone(), "n3"),
        Code::Unschedulable,
        &["node(s) didn't satisfy existing pods anti-affinity rules"],
    );
    assert!(run(&snap, web, "n1").is_success());
    // The first pod of a group with affinity to itself may go anywhere.
    let snap = snapshot(nodes, vec![]);
    let first = with_pod_affinity(
        labelled(pod("f", "", ""), &[("app", "cache")]),
        "podAffinity",
        "cache",
        "zone",
    );
    assert!(run(&snap, first, "n3").is_success());
}

fn with_spread(
    mut p: k8s_openapi::api::core::v1::Pod,
    key: &str,
    skew: i32,
    when: &str,
) -> k8s_openapi::api::core::v1::Pod {
    let constraint = json!([{"maxSkew": skew, "topologyKey": key, "whenUnsatisfiable": when,
        "labelSelector": {"matchLabels": {"app": "web"}}}]);
    p.spec
        .get_or_insert_with(Default::default)
        .topology_spread_constraints = serde_json::from_value(constraint).ok();
    p
}

#[test]
fn topology_spread_do_not_schedule() {
    let zone = |n: &str, z: &str| with_labels(node(n, "2", "4Gi"), &[("zone", z)]);
    let web = |name: &str, n: &str| labelled(on(pod(name, "", ""), n), &[("app", "web")]);
    let snap = snapshot(
        vec![zone("n1", "a"), zone("n2", "b"), node("bare", "2", "4Gi")],
        vec![web("w1", "n1"), web("w2", "n1")],
    );
    let incoming = with_spread(
        labelled(pod("w3", "", ""), &[("app", "web")]),
        "zone",
        1,
        "DoNotSchedule",
    );
    fails(
        &run(&snap, incoming.clone(), "n1"),
        Code::Unschedulable,
        &["node(s) didn't match pod topology spread constraints"],
    );
    assert!(run(&snap, incoming.clone(), "n2").is_success());
    fails(
        &run(&snap, incoming, "bare"),
        Code::UnschedulableAndUnresolvable,
        &["node(s) didn't match pod topology spread constraints (missing required label)"],
    );
    let soft = with_spread(
        labelled(pod("w3", "", ""), &[("app", "web")]),
        "zone",
        1,
        "ScheduleAnyway",
    );
    assert!(run(&snap, soft, "n1").is_success());
}

fn claim_pod(claim: &str) -> k8s_openapi::api::core::v1::Pod {
    let mut p = pod("p", "", "");
    p.spec.get_or_insert_with(Default::default).volumes = serde_json::from_value(json!([
        {"name": "data", "persistentVolumeClaim": {"claimName": claim}}
    ]))
    .ok();
    p
}

fn from<T: serde::de::DeserializeOwned + Default>(value: serde_json::Value) -> T {
    serde_json::from_value(value).unwrap_or_default()
}

fn volume_snapshot() -> Snapshot {
    let mut snap = snapshot(vec![node("n1", "2", "4Gi"), node("n2", "2", "4Gi")], vec![]);
    snap.upsert_storage_class(Arc::new(from(json!({"metadata": {"name": "local-path"},
        "provisioner": "rancher.io/local-path", "volumeBindingMode": "WaitForFirstConsumer"}))));
    snap.upsert_storage_class(Arc::new(from(json!({"metadata": {"name": "fast"},
        "provisioner": "x", "volumeBindingMode": "Immediate"}))));
    snap.upsert_pvc(Arc::new(from(
        json!({"metadata": {"name": "bound", "namespace": "default"},
        "spec": {"volumeName": "pv1", "storageClassName": "local-path"}}),
    )));
    snap.upsert_pvc(Arc::new(from(
        json!({"metadata": {"name": "wait", "namespace": "default"},
        "spec": {"storageClassName": "local-path"}}),
    )));
    snap.upsert_pvc(Arc::new(from(
        json!({"metadata": {"name": "now", "namespace": "default"},
        "spec": {"storageClassName": "fast"}}),
    )));
    snap.upsert_pv(Arc::new(from(json!({"metadata": {"name": "pv1"}, "spec": {"nodeAffinity": {"required":
        {"nodeSelectorTerms": [{"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["n1"]}]}]}}}}))));
    snap
}

#[test]
fn volume_binding() {
    let snap = volume_snapshot();
    assert!(run(&snap, claim_pod("bound"), "n1").is_success());
    fails(
        &run(&snap, claim_pod("bound"), "n2"),
        Code::UnschedulableAndUnresolvable,
        &["node(s) had volume node affinity conflict"],
    );
    assert!(run(&snap, claim_pod("wait"), "n2").is_success());
    let pre = |claim: &str| {
        Cycle::new(
            &snap,
            Arc::new(crate::snapshot::PodInfo::new(Arc::new(claim_pod(claim)))),
        )
        .err()
    };
    assert_eq!(
        pre("missing").map(|s| s.message()),
        Some("persistentvolumeclaim \"missing\" not found".to_string())
    );
    assert_eq!(
        pre("now").map(|s| s.message()),
        Some("pod has unbound immediate PersistentVolumeClaims".to_string())
    );
}

#[test]
fn filters_stop_at_the_first_failure_in_kube_scheduler_order() {
    // Both tainted and too small: only the taint is reported (TaintToleration runs before Fit).
    let snap = snapshot(
        vec![with_taint(node("n1", "1", "1Gi"), "a", "b", "NoSchedule")],
        vec![],
    );
    fails(
        &run(&snap, pod("p", "2", ""), "n1"),
        Code::UnschedulableAndUnresolvable,
        &["node(s) had untolerated taint {a: b}"],
    );
}
