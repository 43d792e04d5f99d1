//! Tests for server-side apply and update ownership: the managedFields kubectl expects, the
//! conflict it prints, force, removal of fields no longer applied, list maps, subresources.

use serde_json::{Value, json};

use super::{Error, Request, Update, apply, parse_body, update};
use crate::managed_fields::{self, Operation};
use crate::patch::schema::for_kind;

const T1: &str = "2025-05-01T10:00:00Z";
const T2: &str = "2025-05-01T11:00:00Z";

fn request<'a>(manager: &'a str, force: bool, time: &'a str) -> Request<'a> {
    Request {
        manager,
        force,
        time,
        subresource: None,
        schema: for_kind("apps", "Deployment"),
    }
}

fn deployment(replicas: i64, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": image, "ports": [{"containerPort": 80}]}]}
            }
        }
    })
}

fn entry<'a>(object: &'a Value, manager: &str) -> &'a Value {
    object["metadata"]["managedFields"]
        .as_array()
        .and_then(|entries| {
            entries
                .iter()
                .find(|entry| entry["manager"] == json!(manager))
        })
        .unwrap_or(&Value::Null)
}

#[test]
fn creates_with_an_apply_entry_in_fields_v1() {
    let created = apply(
        None,
        &deployment(2, "nginx:1.26"),
        &request("kubectl", false, T1),
    )
    .expect("applies");
    assert_eq!(created["spec"]["replicas"], json!(2));
    assert_eq!(
        entry(&created, "kubectl"),
        &json!({
            "manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1", "time": T1, "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {
                    "f:replicas": {},
                    "f:selector": {},
                    "f:template": {
                        "f:metadata": {"f:labels": {"f:app": {}}},
                        "f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {
                            ".": {}, "f:image": {}, "f:name": {},
                            "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}
                        }}}
                    }
                }
            }
        })
    );
}

#[test]
fn reports_conflicts_with_client_side_apply_like_kubectl_expects() {
    let csa = Update {
        manager: "kubectl-client-side-apply",
        api_version: "apps/v1",
        time: T1,
        subresource: None,
        schema: for_kind("apps", "Deployment"),
    };
    let live = update(None, &deployment(2, "nginx:1.26"), &csa).expect("records the create");
    assert_eq!(
        entry(&live, "kubectl-client-side-apply")["operation"],
        json!("Update")
    );

    // The same values are no conflict: ownership is shared.
    let shared = apply(
        Some(&live),
        &deployment(2, "nginx:1.26"),
        &request("kubectl", false, T2),
    )
    .expect("applies");
    assert_eq!(
        shared["metadata"]["managedFields"].as_array().map(Vec::len),
        Some(2)
    );

    let error = apply(
        Some(&live),
        &deployment(3, "nginx:1.26"),
        &request("kubectl", false, T2),
    )
    .expect_err("conflict");
    assert_eq!(error.code(), 409);
    assert_eq!(
        error.to_string(),
        "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas"
    );
    let Error::Conflict(conflicts) = &error else {
        panic!("not a conflict: {error}")
    };
    assert_eq!(conflicts[0].field, ".spec.replicas");
    assert_eq!(
        conflicts[0].message(),
        "conflict with \"kubectl-client-side-apply\" using apps/v1"
    );
    assert_eq!(super::Conflict::REASON, "FieldManagerConflict");

    let error = apply(
        Some(&live),
        &deployment(3, "nginx:1.27"),
        &request("kubectl", false, T2),
    )
    .expect_err("conflicts");
    assert_eq!(
        error.to_string(),
        "Apply failed with 2 conflicts: conflicts with \"kubectl-client-side-apply\" using apps/v1:\n- .spec.replicas\n- .spec.template.spec.containers[name=\"nginx\"].image"
    );

    // force takes the fields over.
    let forced = apply(
        Some(&live),
        &deployment(3, "nginx:1.27"),
        &request("kubectl", true, T2),
    )
    .expect("forced");
    assert_eq!(forced["spec"]["replicas"], json!(3));
    let csa_fields = managed_fields::FieldSet::from_fields_v1(
        &entry(&forced, "kubectl-client-side-apply")["fieldsV1"],
    )
    .expect("fields");
    assert!(!csa_fields.contains(&vec!["f:spec".into(), "f:replicas".into()]));
    assert!(csa_fields.contains(&vec![
        "f:metadata".into(),
        "f:labels".into(),
        "f:app".into()
    ]));
}

#[test]
fn reapplying_changes_own_fields_and_removes_dropped_ones() {
    let mut config = deployment(2, "nginx:1.26");
    config["metadata"]["annotations"] = json!({"team": "a", "tier": "web"});
    let live = apply(None, &config, &request("kubectl", false, T1)).expect("creates");

    let mut next = deployment(2, "nginx:1.27");
    next["metadata"]["annotations"] = json!({"team": "a"});
    let applied = apply(Some(&live), &next, &request("kubectl", false, T2)).expect("applies");
    assert_eq!(applied["metadata"]["annotations"], json!({"team": "a"}));
    assert_eq!(
        applied["spec"]["template"]["spec"]["containers"][0]["image"],
        json!("nginx:1.27")
    );
    assert_eq!(entry(&applied, "kubectl")["time"], json!(T2));

    // Without annotations at all, the emptied map goes too.
    let bare = apply(
        Some(&applied),
        &deployment(2, "nginx:1.27"),
        &request("kubectl", false, T2),
    )
    .expect("applies");
    assert!(bare["metadata"].get("annotations").is_none());

    // A field another manager also owns stays.
    let labeller = Update {
        manager: "kubectl-annotate",
        api_version: "apps/v1",
        time: T2,
        subresource: None,
        schema: for_kind("apps", "Deployment"),
    };
    let mut annotated = live.clone();
    annotated["metadata"]["annotations"]["tier"] = json!("frontend");
    let annotated = update(Some(&live), &annotated, &labeller).expect("records");
    let kept = apply(Some(&annotated), &next, &request("kubectl", false, T2)).expect("applies");
    assert_eq!(
        kept["metadata"]["annotations"],
        json!({"team": "a", "tier": "frontend"})
    );
}

#[test]
fn an_unchanged_reapply_keeps_the_time() {
    let live = apply(
        None,
        &deployment(1, "nginx"),
        &request("kubectl", false, T1),
    )
    .expect("creates");
    let again = apply(
        Some(&live),
        &deployment(1, "nginx"),
        &request("kubectl", false, T2),
    )
    .expect("applies");
    assert_eq!(again, live);
}

#[test]
fn merges_list_maps_by_key_with_defaults() {
    let mut live = deployment(1, "nginx");
    live["spec"]["template"]["spec"]["containers"] = json!([
        {"name": "sidecar", "image": "busybox"},
        {"name": "nginx", "image": "nginx", "ports": [{"containerPort": 80, "protocol": "TCP", "name": "http"}], "imagePullPolicy": "IfNotPresent"}
    ]);
    let live = update(
        None,
        &live,
        &Update {
            manager: "other",
            api_version: "apps/v1",
            time: T1,
            subresource: None,
            schema: for_kind("apps", "Deployment"),
        },
    )
    .expect("records");
    let mut config = deployment(1, "nginx");
    config["spec"]["template"]["spec"]["containers"] = json!([{"name": "nginx", "image": "nginx", "ports": [{"containerPort": 80}, {"containerPort": 443}]}]);
    let merged = apply(Some(&live), &config, &request("kubectl", false, T2)).expect("applies");
    assert_eq!(
        merged["spec"]["template"]["spec"]["containers"],
        json!([
            {"name": "sidecar", "image": "busybox"},
            {"name": "nginx", "image": "nginx", "imagePullPolicy": "IfNotPresent",
             "ports": [{"containerPort": 80, "protocol": "TCP", "name": "http"}, {"containerPort": 443}]}
        ])
    );
}

#[test]
fn merges_finalizers_as_a_set() {
    let schema = for_kind("", "ConfigMap");
    let live = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "finalizers": ["a"]}});
    let config = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "finalizers": ["b"]}, "data": {"k": "v"}});
    let merged = apply(
        Some(&live),
        &config,
        &Request {
            manager: "m",
            force: false,
            time: T1,
            subresource: None,
            schema,
        },
    )
    .expect("applies");
    assert_eq!(merged["metadata"]["finalizers"], json!(["a", "b"]));
    assert_eq!(
        entry(&merged, "m")["fieldsV1"],
        json!({"f:data": {"f:k": {}}, "f:metadata": {"f:finalizers": {"v:\"b\"": {}}}})
    );
}

#[test]
fn ignores_managed_fields_in_the_body_and_status_for_the_main_resource() {
    let mut config = deployment(1, "nginx");
    config["metadata"]["managedFields"] =
        json!([{"manager": "evil", "operation": "Apply", "fieldsV1": {}}]);
    config["status"] = json!({"replicas": 9});
    let created = apply(None, &config, &request("kubectl", false, T1)).expect("applies");
    assert!(created.get("status").is_none());
    assert_eq!(
        created["metadata"]["managedFields"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    let status = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 5}, "status": {"replicas": 1}});
    let controller = Request {
        manager: "deployment-controller",
        force: false,
        time: T2,
        subresource: Some("status"),
        schema: for_kind("apps", "Deployment"),
    };
    let with_status = apply(Some(&created), &status, &controller).expect("applies status");
    assert_eq!(with_status["status"], json!({"replicas": 1}));
    assert_eq!(with_status["spec"]["replicas"], json!(1));
    let entry = entry(&with_status, "deployment-controller");
    assert_eq!(entry["subresource"], json!("status"));
    assert_eq!(entry["fieldsV1"], json!({"f:status": {"f:replicas": {}}}));
}

#[test]
fn records_updates_and_takes_fields_from_other_managers() {
    let schema = for_kind("apps", "Deployment");
    let live = apply(
        None,
        &deployment(2, "nginx"),
        &request("kubectl", false, T1),
    )
    .expect("creates");
    let mut scaled = live.clone();
    scaled["spec"]["replicas"] = json!(5);
    let scaled = update(
        Some(&live),
        &scaled,
        &Update {
            manager: "kubectl-scale",
            api_version: "apps/v1",
            time: T2,
            subresource: None,
            schema,
        },
    )
    .expect("records");
    let scaler = entry(&scaled, "kubectl-scale");
    assert_eq!(scaler["operation"], json!("Update"));
    assert_eq!(scaler["fieldsV1"], json!({"f:spec": {"f:replicas": {}}}));
    let applier = managed_fields::parse(&scaled).expect("entries");
    let applier = applier
        .iter()
        .find(|entry| entry.is("kubectl", Operation::Apply, None))
        .expect("applier");
    assert!(
        !applier
            .fields
            .contains(&vec!["f:spec".into(), "f:replicas".into()])
    );

    // An update that changes nothing adds no entry; an empty managedFields list resets them.
    let same = update(
        Some(&scaled),
        &scaled,
        &Update {
            manager: "noop",
            api_version: "apps/v1",
            time: T2,
            subresource: None,
            schema,
        },
    )
    .expect("records");
    assert_eq!(same, scaled);
    let mut reset = scaled.clone();
    reset["metadata"]["managedFields"] = json!([]);
    let reset = update(
        Some(&scaled),
        &reset,
        &Update {
            manager: "x",
            api_version: "apps/v1",
            time: T2,
            subresource: None,
            schema,
        },
    )
    .expect("resets");
    assert!(reset["metadata"].get("managedFields").is_none());
}

#[test]
fn refuses_invalid_applies() {
    let cases = [
        (
            json!({"kind": "Deployment"}),
            "kubectl",
            "the applied configuration must be an object with apiVersion and kind",
        ),
        (
            json!([1]),
            "kubectl",
            "the applied configuration must be an object with apiVersion and kind",
        ),
        (
            deployment(1, "nginx"),
            "",
            "PATCH requests of type apply require a fieldManager",
        ),
        (
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}),
            "kubectl",
            ".spec.template.spec.containers: associative list with keys has an element that omits key field \"name\"",
        ),
        (
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"template": {"spec": {"containers": [{"name": "a"}, {"name": "a"}]}}}}),
            "kubectl",
            ".spec.template.spec.containers: duplicate entries for key [name=\"a\"]",
        ),
    ];
    for (config, manager, message) in cases {
        let error = apply(None, &config, &request(manager, false, T1)).expect_err("invalid");
        assert_eq!(error.to_string(), message);
    }
}

#[test]
fn parses_json_and_yaml_bodies() {
    let json_body =
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"data":{"a":"1"}}"#;
    let yaml_body = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  a: \"1\"\n";
    assert_eq!(
        parse_body(json_body).expect("json"),
        parse_body(yaml_body).expect("yaml")
    );
    assert!(matches!(parse_body(b"a: [1"), Err(Error::InvalidBody(_))));
}
