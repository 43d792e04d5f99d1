//! Tests for the strategic merge patch: the bodies kubectl and the Python client send (see
//! KUBE-API.md §2.6, §2.9, §2.16), every directive, ordering, and the errors users read.

use serde_json::{Value, json};

use super::{Error, apply};
use crate::patch::schema::for_kind;

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {"name": "nginx", "image": "nginx:1.25", "imagePullPolicy": "IfNotPresent",
                         "ports": [{"containerPort": 80, "protocol": "TCP"}],
                         "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                        {"name": "sidecar", "image": "busybox", "args": ["sleep", "3600"]}
                    ],
                    "volumes": [{"name": "data", "emptyDir": {}}],
                    "tolerations": [{"key": "a", "operator": "Exists"}]
                }
            }
        },
        "status": {"replicas": 2, "conditions": [{"type": "Available", "status": "True"}, {"type": "Progressing", "status": "True"}]}
    })
}

fn patch_deployment(patch: Value) -> Value {
    apply(&deployment(), &patch, for_kind("apps", "Deployment")).expect("patch applies")
}

fn containers(deployment: &Value) -> &Value {
    &deployment["spec"]["template"]["spec"]["containers"]
}

#[test]
fn applies_kubectl_client_side_apply_update() {
    let patched = patch_deployment(json!({
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"kind\":\"Deployment\"}\n"}},
        "spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "nginx"}, {"name": "sidecar"}],
            "containers": [{"image": "nginx:1.26", "name": "nginx"}]
        }}}
    }));
    assert_eq!(
        patched["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
        json!("{\"kind\":\"Deployment\"}\n")
    );
    assert_eq!(containers(&patched)[0]["image"], json!("nginx:1.26"));
    // Fields the patch does not mention survive inside the merged element.
    assert_eq!(
        containers(&patched)[0]["env"],
        deployment()["spec"]["template"]["spec"]["containers"][0]["env"]
    );
    assert_eq!(
        containers(&patched)[1],
        deployment()["spec"]["template"]["spec"]["containers"][1]
    );
    assert_eq!(patched["status"], deployment()["status"]);
}

#[test]
fn applies_kubectl_set_image() {
    let patched = patch_deployment(json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "nginx"}, {"name": "sidecar"}],
        "containers": [{"image": "busybox:1.36", "name": "sidecar"}]
    }}}}));
    let names: Vec<&Value> = containers(&patched)
        .as_array()
        .expect("list")
        .iter()
        .map(|c| &c["name"])
        .collect();
    assert_eq!(names, [&json!("nginx"), &json!("sidecar")]);
    assert_eq!(containers(&patched)[1]["image"], json!("busybox:1.36"));
    assert_eq!(containers(&patched)[1]["args"], json!(["sleep", "3600"]));
}

#[test]
fn applies_kubectl_rollout_restart() {
    let patched = patch_deployment(json!({"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": "2025-05-01T10:00:00Z"
    }}}}}));
    let mut expected = deployment();
    expected["spec"]["template"]["metadata"]["annotations"] =
        json!({"kubectl.kubernetes.io/restartedAt": "2025-05-01T10:00:00Z"});
    assert_eq!(patched, expected);
}

#[test]
fn applies_kubectl_cordon_and_uncordon() {
    let node = json!({"metadata": {"name": "node1"}, "spec": {"podCIDR": "10.42.1.0/24"}});
    let cordoned = apply(
        &node,
        &json!({"spec": {"unschedulable": true}}),
        for_kind("", "Node"),
    )
    .expect("cordon");
    assert_eq!(
        cordoned["spec"],
        json!({"podCIDR": "10.42.1.0/24", "unschedulable": true})
    );
    let uncordoned = apply(
        &cordoned,
        &json!({"spec": {"unschedulable": false}}),
        for_kind("", "Node"),
    )
    .expect("uncordon");
    assert_eq!(uncordoned["spec"]["unschedulable"], json!(false));
}

#[test]
fn merges_service_ports_by_port_like_the_python_client_expects() {
    let service = json!({"metadata": {"name": "svc"}, "spec": {
        "ports": [{"name": "port", "port": 80, "protocol": "TCP", "targetPort": 80}], "selector": {"name": "svc"}
    }});
    let patch = json!({"metadata": {"name": "svc"}, "spec": {
        "ports": [{"name": "new", "port": 8080, "protocol": "TCP", "targetPort": 8080}], "selector": {"name": "svc"}
    }});
    let patched = apply(&service, &patch, for_kind("", "Service")).expect("patch applies");
    let ports: Vec<&Value> = patched["spec"]["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .map(|p| &p["port"])
        .collect();
    assert_eq!(ports, [&json!(8080), &json!(80)]);
}

#[test]
fn treats_unknown_kinds_and_fields_like_a_merge_patch() {
    let widget = json!({"spec": {"items": [{"name": "a", "x": 1}], "size": {"w": 1, "h": 2}}});
    let patch = json!({"spec": {"items": [{"name": "b"}], "size": {"h": null, "d": 3}}});
    let patched = apply(&widget, &patch, None).expect("patch applies");
    assert_eq!(
        patched,
        json!({"spec": {"items": [{"name": "b"}], "size": {"w": 1, "d": 3}}})
    );
    // Tolerations have no patch strategy: the list is replaced.
    let patched = patch_deployment(
        json!({"spec": {"template": {"spec": {"tolerations": [{"key": "b", "operator": "Exists"}]}}}}),
    );
    assert_eq!(
        patched["spec"]["template"]["spec"]["tolerations"],
        json!([{"key": "b", "operator": "Exists"}])
    );
}

#[test]
fn applies_directives() {
    let spec = |patched: &Value| patched["spec"]["template"]["spec"].clone();
    let cases = [
        // $patch: delete in a list element removes the element with that merge key.
        (
            json!({"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}}}),
            json!(["nginx"]),
        ),
        // $patch: replace in a list makes the other elements the whole list.
        (
            json!({"spec": {"template": {"spec": {"containers": [{"$patch": "replace"}, {"name": "only", "image": "x"}]}}}}),
            json!(["only"]),
        ),
        // $patch: merge is the default.
        (
            json!({"spec": {"template": {"spec": {"containers": [{"$patch": "merge"}, {"name": "new", "image": "x"}]}}}}),
            json!(["new", "nginx", "sidecar"]),
        ),
    ];
    for (patch, names) in cases {
        let patched = patch_deployment(patch.clone());
        let actual: Vec<Value> = spec(&patched)["containers"]
            .as_array()
            .expect("list")
            .iter()
            .map(|c| c["name"].clone())
            .collect();
        assert_eq!(Value::Array(actual), names, "{patch}");
    }

    // $patch: replace in an object replaces it whole; $patch: delete empties it.
    let patched = patch_deployment(
        json!({"spec": {"selector": {"$patch": "replace", "matchLabels": {"tier": "x"}}}}),
    );
    assert_eq!(
        patched["spec"]["selector"],
        json!({"matchLabels": {"tier": "x"}})
    );
    let patched = patch_deployment(json!({"metadata": {"labels": {"$patch": "delete"}}}));
    assert_eq!(patched["metadata"]["labels"], json!({}));

    // $retainKeys switches the deployment strategy to Recreate and drops rollingUpdate.
    let patched = patch_deployment(
        json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": null}}}),
    );
    assert_eq!(patched["spec"]["strategy"], json!({"type": "Recreate"}));
    // ... and replaces a volume's source, as kubectl sends for volumes.
    let patched = patch_deployment(json!({"spec": {"template": {"spec": {"volumes": [
        {"$retainKeys": ["configMap", "name"], "configMap": {"name": "settings"}, "name": "data"}
    ]}}}}));
    assert_eq!(
        spec(&patched)["volumes"],
        json!([{"name": "data", "configMap": {"name": "settings"}}])
    );

    // null deletes, also inside merged list elements.
    let patched = patch_deployment(
        json!({"spec": {"replicas": null, "template": {"spec": {"containers": [{"name": "nginx", "imagePullPolicy": null}]}}}}),
    );
    assert!(patched["spec"].get("replicas").is_none());
    assert!(containers(&patched)[0].get("imagePullPolicy").is_none());

    // A merged element's own lists merge by their keys (env by name).
    let patched = patch_deployment(json!({"spec": {"template": {"spec": {"containers": [
        {"name": "nginx", "$setElementOrder/env": [{"name": "B"}, {"name": "C"}, {"name": "A"}], "env": [{"name": "C", "value": "3"}]}
    ]}}}}));
    assert_eq!(
        containers(&patched)[0]["env"],
        json!([{"name": "B", "value": "2"}, {"name": "C", "value": "3"}, {"name": "A", "value": "1"}])
    );
}

#[test]
fn merges_primitive_lists_as_sets() {
    let object = json!({"metadata": {"name": "cm", "finalizers": ["a", "b"]}});
    let schema = for_kind("", "ConfigMap");
    let cases = [
        (
            json!({"metadata": {"finalizers": ["c", "a"]}}),
            json!(["c", "a", "b"]),
        ),
        (
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
            json!(["b"]),
        ),
        (
            json!({"metadata": {"$setElementOrder/finalizers": ["b", "c", "a"], "finalizers": ["c"]}}),
            json!(["b", "c", "a"]),
        ),
        (
            json!({"metadata": {"$setElementOrder/finalizers": ["c"], "$deleteFromPrimitiveList/finalizers": ["a", "b"], "finalizers": ["c"]}}),
            json!(["c"]),
        ),
        (json!({"metadata": {"finalizers": null}}), Value::Null),
    ];
    for (patch, finalizers) in cases {
        let patched = apply(&object, &patch, schema).expect("patch applies");
        assert_eq!(
            patched["metadata"]
                .get("finalizers")
                .cloned()
                .unwrap_or(Value::Null),
            finalizers,
            "{patch}"
        );
    }
}

#[test]
fn orders_merged_lists_like_kube_apiserver() {
    let schema = for_kind("", "Pod");
    let pod = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}});
    let names = |patch: Value| -> Vec<String> {
        let patched = apply(&pod, &patch, schema).expect("patch applies");
        patched["spec"]["containers"]
            .as_array()
            .expect("list")
            .iter()
            .map(|c| c["name"].as_str().unwrap_or("?").to_owned())
            .collect()
    };
    // Patch elements keep the patch order; live-only elements keep their live positions.
    assert_eq!(
        names(json!({"spec": {"containers": [{"name": "c"}, {"name": "a"}]}})),
        ["b", "c", "a"]
    );
    assert_eq!(
        names(json!({"spec": {"containers": [{"name": "d"}]}})),
        ["d", "a", "b", "c"]
    );
    assert_eq!(
        names(
            json!({"spec": {"$setElementOrder/containers": [{"name": "c"}, {"name": "b"}, {"name": "a"}]}})
        ),
        ["c", "b", "a"]
    );
    assert_eq!(
        names(
            json!({"spec": {"$setElementOrder/containers": [{"name": "a"}, {"name": "d"}, {"name": "b"}, {"name": "c"}], "containers": [{"name": "d"}]}})
        ),
        ["a", "d", "b", "c"]
    );
}

#[test]
fn never_lets_directives_into_the_result() {
    let patched = apply(
        &json!({}),
        &json!({"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "x"}], "containers": [{"name": "x", "env": [{"name": "gone", "$patch": "delete"}]}]}}}}),
        for_kind("apps", "Deployment"),
    )
    .expect("patch applies");
    assert_eq!(
        patched,
        json!({"spec": {"template": {"spec": {"containers": [{"name": "x", "env": []}]}}}})
    );
}

#[test]
fn reports_malformed_patches() {
    let schema = for_kind("apps", "Deployment");
    let cases = [
        (
            json!(["x"]),
            "a strategic merge patch must be a JSON object",
        ),
        (
            json!({"spec": {"$patch": "frobnicate"}}),
            "unknown $patch directive \"frobnicate\" at .spec",
        ),
        (
            json!({"spec": {"$frobnicate": 1}}),
            "unknown directive \"$frobnicate\" at .spec",
        ),
        (
            json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}),
            "the list item {\"image\":\"x\"} at .spec.template.spec.containers has no merge key \"name\"",
        ),
        (
            json!({"spec": {"template": {"spec": {"containers": [{"name": "x"}, "y"]}}}}),
            "items of the list at .spec.template.spec.containers must all be objects or all be scalars, and not lists",
        ),
        (
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}}),
            "$retainKeys at .spec.strategy must be a list naming every field the patch sets there",
        ),
        (
            json!({"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "nginx"}], "containers": [{"name": "sidecar"}]}}}}),
            "$setElementOrder/containers at .spec.template.spec: the order of the patch list does not match the directive",
        ),
        (
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}}),
            "$deleteFromPrimitiveList/finalizers at .metadata must be a list",
        ),
    ];
    for (patch, message) in cases {
        let error = apply(&deployment(), &patch, schema).expect_err("malformed patch");
        assert_eq!(error.to_string(), message, "{patch}");
        assert_eq!(error.code(), 400);
    }
}

#[test]
fn refuses_patches_nested_too_deep() {
    let mut patch = json!(1);
    for _ in 0..(crate::patch::MAX_DEPTH + 1) {
        patch = json!({"a": patch});
    }
    assert_eq!(apply(&json!({}), &patch, None), Err(Error::TooDeep));
}
