//! Tests for Table conversion: ages, the pod status logic, each printer's cells, row objects,
//! and that every row has one cell per column.

#![allow(clippy::unwrap_used)]

use serde_json::json;

use super::*;
use crate::registry::Registry;

fn now() -> Timestamp {
    "2026-01-01T12:00:00Z".parse().unwrap()
}

fn cells(group: &str, resource: &str, object: Value) -> Vec<Value> {
    let table = object_table(group, resource, &object, now(), IncludeObject::None, true);
    table["rows"][0]["cells"].as_array().unwrap().clone()
}

#[test]
fn human_durations_match_kubectl() {
    let cases = [
        (-5, "<invalid>"),
        (-1, "0s"),
        (5, "5s"),
        (119, "119s"),
        (182, "3m2s"),
        (300, "5m"),
        (600, "10m"),
        (179 * 60, "179m"),
        (5 * 3600, "5h"),
        (5 * 3600 + 30 * 60, "5h30m"),
        (10 * 3600, "10h"),
        (51 * 3600, "2d3h"),
        (48 * 3600, "2d"),
        (30 * 86400, "30d"),
        (800 * 86400, "2y70d"),
        (3000 * 86400, "8y"),
    ];
    for (seconds, expected) in cases {
        assert_eq!(human_duration(seconds), expected, "{seconds}");
    }
    assert_eq!(since("2026-01-01T11:59:55Z", now()), "5s");
    assert_eq!(since("", now()), "<unknown>");
}

fn pod(status: Value) -> Value {
    json!({"metadata": {"name": "web", "creationTimestamp": "2026-01-01T11:55:00Z"},
           "spec": {"containers": [{"name": "app"}], "nodeName": "n1"}, "status": status})
}

#[test]
fn pod_status_column() {
    let running = json!({"state": {"running": {}}, "ready": true, "restartCount": 0});
    let cases = [
        (json!({"phase": "Pending"}), "0/1", "Pending", "0"),
        (
            json!({"phase": "Pending", "containerStatuses": [{"state": {"waiting": {"reason": "ContainerCreating"}}, "ready": false}]}),
            "0/1",
            "ContainerCreating",
            "0",
        ),
        (
            json!({"phase": "Running", "containerStatuses": [running]}),
            "1/1",
            "Running",
            "0",
        ),
        (
            json!({"phase": "Running", "containerStatuses": [{"state": {"waiting": {"reason": "CrashLoopBackOff"}}, "restartCount": 5,
                    "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2026-01-01T11:55:00Z"}}}]}),
            "0/1",
            "CrashLoopBackOff",
            "5 (5m ago)",
        ),
        (
            json!({"phase": "Succeeded", "containerStatuses": [{"state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}),
            "0/1",
            "Completed",
            "0",
        ),
        (
            json!({"phase": "Failed", "containerStatuses": [{"state": {"terminated": {"exitCode": 137, "signal": 9}}}]}),
            "0/1",
            "Signal:9",
            "0",
        ),
        (
            json!({"phase": "Failed", "reason": "Evicted"}),
            "0/1",
            "Evicted",
            "0",
        ),
    ];
    for (status, ready, reason, restarts) in cases {
        let row = cells("", "pods", pod(status.clone()));
        assert_eq!(row[1], json!(ready), "{status}");
        assert_eq!(row[2], json!(reason), "{status}");
        assert_eq!(row[3], json!(restarts), "{status}");
        assert_eq!(row[4], json!("5m"));
    }
}

#[test]
fn pod_init_containers_and_deletion() {
    let mut with_init = pod(
        json!({"phase": "Pending", "initContainerStatuses": [{"name": "init", "state": {"running": {}}}]}),
    );
    with_init["spec"]["initContainers"] = json!([{"name": "init"}]);
    assert_eq!(cells("", "pods", with_init.clone())[2], json!("Init:0/1"));
    with_init["status"]["initContainerStatuses"][0]["state"] =
        json!({"waiting": {"reason": "CrashLoopBackOff"}});
    assert_eq!(
        cells("", "pods", with_init.clone())[2],
        json!("Init:CrashLoopBackOff")
    );
    with_init["status"]["initContainerStatuses"][0]["state"] =
        json!({"terminated": {"exitCode": 2}});
    assert_eq!(cells("", "pods", with_init)[2], json!("Init:ExitCode:2"));

    let mut sidecar = pod(json!({"phase": "Running",
        "initContainerStatuses": [{"name": "proxy", "started": true, "ready": true, "state": {"running": {}}}],
        "containerStatuses": [{"state": {"running": {}}, "ready": true}]}));
    sidecar["spec"]["initContainers"] = json!([{"name": "proxy", "restartPolicy": "Always"}]);
    let row = cells("", "pods", sidecar);
    assert_eq!(
        (row[1].clone(), row[2].clone()),
        (json!("2/2"), json!("Running"))
    );

    let mut deleting = pod(
        json!({"phase": "Running", "containerStatuses": [{"state": {"running": {}}, "ready": true}]}),
    );
    deleting["metadata"]["deletionTimestamp"] = json!("2026-01-01T11:59:00Z");
    assert_eq!(cells("", "pods", deleting)[2], json!("Terminating"));

    let mut wide = pod(
        json!({"phase": "Running", "podIPs": [{"ip": "10.42.0.7"}], "conditions": [{"type": "gate", "status": "True"}]}),
    );
    wide["spec"]["readinessGates"] = json!([{"conditionType": "gate"}, {"conditionType": "other"}]);
    let row = cells("", "pods", wide);
    assert_eq!(
        &row[5..],
        &[
            json!("10.42.0.7"),
            json!("n1"),
            json!("<none>"),
            json!("1/2")
        ]
    );
}

#[test]
fn workload_rows() {
    let deployment = json!({"metadata": {"name": "web", "creationTimestamp": "2026-01-01T11:00:00Z"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"spec": {"containers": [{"name": "a", "image": "nginx"}, {"name": "b", "image": "redis"}]}}},
        "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
    assert_eq!(
        cells("apps", "deployments", deployment),
        vec![
            json!("web"),
            json!("2/3"),
            json!(3),
            json!(2),
            json!("60m"),
            json!("a,b"),
            json!("nginx,redis"),
            json!("app=web")
        ]
    );
    let job = json!({"metadata": {"name": "pi"}, "spec": {"completions": 2, "template": {"spec": {"containers": []}}},
        "status": {"succeeded": 2, "startTime": "2026-01-01T11:00:00Z", "completionTime": "2026-01-01T11:00:42Z",
                   "conditions": [{"type": "Complete", "status": "True"}]}});
    let row = cells("batch", "jobs", job);
    assert_eq!(&row[1..4], &[json!("Complete"), json!("2/2"), json!("42s")]);
    let running = json!({"metadata": {"name": "q"}, "spec": {"parallelism": 3}, "status": {"startTime": "2026-01-01T11:59:00Z"}});
    let row = cells("batch", "jobs", running);
    assert_eq!(
        &row[1..4],
        &[json!("Running"), json!("0/1 of 3"), json!("60s")]
    );
    let cron = json!({"metadata": {"name": "tick"}, "spec": {"schedule": "*/5 * * * *", "suspend": false}, "status": {"active": [{}]}});
    let row = cells("batch", "cronjobs", cron);
    assert_eq!(
        &row[1..6],
        &[
            json!("*/5 * * * *"),
            json!("<none>"),
            json!("False"),
            json!(1),
            json!("<none>")
        ]
    );
}

#[test]
fn service_node_and_event_rows() {
    let service = json!({"metadata": {"name": "web"}, "spec": {"type": "LoadBalancer", "clusterIP": "10.43.0.5",
        "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}], "selector": {"app": "web"}}});
    let row = cells("", "services", service);
    assert_eq!(
        &row[1..5],
        &[
            json!("LoadBalancer"),
            json!("10.43.0.5"),
            json!("<pending>"),
            json!("80:30080/TCP,53/UDP")
        ]
    );
    assert_eq!(row[6], json!("app=web"));

    let node = json!({"metadata": {"name": "n1", "labels": {"node-role.kubernetes.io/control-plane": ""}},
        "spec": {"unschedulable": true},
        "status": {"conditions": [{"type": "Ready", "status": "True"}], "nodeInfo": {"kubeletVersion": "v1.33.0"},
                   "addresses": [{"type": "InternalIP", "address": "192.168.1.10"}]}});
    let row = cells("", "nodes", node);
    assert_eq!(
        &row[1..3],
        &[json!("Ready,SchedulingDisabled"), json!("control-plane")]
    );
    assert_eq!(row[5], json!("192.168.1.10"));
    assert_eq!(row[6], json!("<none>"));

    let event = json!({"metadata": {"name": "web.1"}, "type": "Normal", "reason": "Scheduled", "message": "assigned",
        "involvedObject": {"kind": "Pod", "name": "web"}, "source": {"component": "default-scheduler"},
        "lastTimestamp": "2026-01-01T11:59:30Z", "firstTimestamp": "2026-01-01T11:50:00Z", "count": 2});
    let row = cells("", "events", event);
    assert_eq!(
        row,
        vec![
            json!("30s"),
            json!("Normal"),
            json!("Scheduled"),
            json!("pod/web"),
            json!(""),
            json!("default-scheduler"),
            json!("assigned"),
            json!("10m"),
            json!(2),
            json!("web.1")
        ]
    );
    let new_event = json!({"metadata": {"name": "e"}, "type": "Warning", "reason": "Failed", "note": "boom",
        "regarding": {"kind": "Pod", "name": "x"}, "eventTime": "2026-01-01T11:59:00.000000Z", "reportingController": "skiff"});
    let row = cells("events.k8s.io", "events", new_event);
    assert_eq!(
        &row[0..7],
        &[
            json!("60s"),
            json!("Warning"),
            json!("Failed"),
            json!("pod/x"),
            json!(""),
            json!("skiff"),
            json!("boom")
        ]
    );
}

#[test]
fn other_rows() {
    let endpoints = json!({"metadata": {"name": "web"}, "subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}, {"ip": "10.0.0.3"}, {"ip": "10.0.0.4"}], "ports": [{"port": 80}]}]});
    assert_eq!(
        cells("", "endpoints", endpoints)[1],
        json!("10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 1 more...")
    );
    let secret = json!({"metadata": {"name": "s"}, "type": "Opaque", "data": {"a": "", "b": ""}});
    assert_eq!(
        &cells("", "secrets", secret)[1..3],
        &[json!("Opaque"), json!(2)]
    );
    let ingress = json!({"metadata": {"name": "i"}, "spec": {"ingressClassName": "skiff", "rules": [{"host": "a.com"}], "tls": [{}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "192.168.1.10"}]}}});
    assert_eq!(
        &cells("networking.k8s.io", "ingresses", ingress)[1..5],
        &[
            json!("skiff"),
            json!("a.com"),
            json!("192.168.1.10"),
            json!("80, 443")
        ]
    );
    let claim = json!({"metadata": {"name": "data"}, "spec": {"volumeName": "pv1", "storageClassName": "local-path", "volumeMode": "Filesystem"},
        "status": {"phase": "Bound", "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]}});
    assert_eq!(
        &cells("", "persistentvolumeclaims", claim)[1..7],
        &[
            json!("Bound"),
            json!("pv1"),
            json!("1Gi"),
            json!("RWO"),
            json!("local-path"),
            json!("<unset>")
        ]
    );
    let role = json!({"metadata": {"name": "r", "creationTimestamp": "2026-01-01T10:00:00Z"}});
    assert_eq!(
        cells("rbac.authorization.k8s.io", "roles", role),
        vec![json!("r"), json!("2026-01-01T10:00:00Z")]
    );
    assert_eq!(
        columns("rbac.authorization.k8s.io", "roles")
            .iter()
            .map(|c| c.name)
            .collect::<Vec<_>>(),
        vec!["Name", "Created At"]
    );
}

#[test]
fn tables_and_row_objects() {
    let object = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "resourceVersion": "7"}, "data": {"a": "1"}});
    let list = list_table(
        "",
        "configmaps",
        std::slice::from_ref(&object),
        &json!({"resourceVersion": "9", "continue": "abc"}),
        now(),
        IncludeObject::Metadata,
    );
    assert_eq!(list["kind"], json!("Table"));
    assert_eq!(list["apiVersion"], json!("meta.k8s.io/v1"));
    assert_eq!(
        list["metadata"],
        json!({"resourceVersion": "9", "continue": "abc"})
    );
    assert_eq!(
        list["columnDefinitions"][0],
        json!({"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace.", "priority": 0})
    );
    assert_eq!(
        list["rows"][0]["object"],
        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": {"name": "cfg", "resourceVersion": "7"}})
    );
    let full = object_table(
        "",
        "configmaps",
        &object,
        now(),
        IncludeObject::Object,
        false,
    );
    assert_eq!(full["rows"][0]["object"], object);
    assert!(full.get("columnDefinitions").is_none());
    assert_eq!(full["metadata"], json!({"resourceVersion": "7"}));
    let bare = object_table("", "configmaps", &object, now(), IncludeObject::None, true);
    assert!(bare["rows"][0].get("object").is_none());
    assert_eq!(IncludeObject::parse("").unwrap(), IncludeObject::Metadata);
    assert!(IncludeObject::parse("Everything").is_err());
    let finished = json!({"metadata": {"name": "p"}, "status": {"phase": "Succeeded"}});
    let table = object_table("", "pods", &finished, now(), IncludeObject::None, true);
    assert_eq!(
        table["rows"][0]["conditions"][0]["type"],
        json!("Completed")
    );
}

#[test]
fn every_printer_fills_every_column() {
    for resource in Registry::builtin().resources() {
        let empty = json!({"metadata": {"name": "x"}});
        let table = object_table(
            &resource.group,
            &resource.plural,
            &empty,
            now(),
            IncludeObject::None,
            true,
        );
        let n_columns = table["columnDefinitions"].as_array().unwrap().len();
        let n_cells = table["rows"][0]["cells"].as_array().unwrap().len();
        assert_eq!(n_columns, n_cells, "{}", resource.plural);
    }
}
