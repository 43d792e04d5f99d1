//! Tests for validation: each case is a valid object with one change and the exact error lines
//! users will read.

#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};

use super::*;
use crate::defaults;
use crate::registry::Registry;

fn resource(group: &str, kind: &str) -> Resource {
    Registry::builtin()
        .by_group_kind(group, kind)
        .cloned()
        .unwrap_or_else(|| panic!("{kind}"))
}

pub(super) fn messages(group: &str, kind: &str, mut object: Value) -> Vec<String> {
    defaults::apply(group, kind, &mut object);
    validate_create(&resource(group, kind), &object)
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn pod() -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default"},
           "spec": {"containers": [{"name": "app", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]}})
}

fn deployment() -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
           "spec": {"selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}},
                                 "spec": {"containers": [{"name": "app", "image": "nginx"}]}}}})
}

/// Apply a JSON-pointer edit to a copy of `base`.
pub(super) fn with(base: &Value, pointer: &str, value: Value) -> Value {
    let mut object = base.clone();
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let target = object
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("{parent}"));
    match target {
        Value::Object(map) => {
            if value.is_null() {
                map.remove(key);
            } else {
                map.insert(key.to_string(), value);
            }
        }
        Value::Array(items) => items[key.parse::<usize>().unwrap()] = value,
        _ => panic!("{pointer}"),
    }
    object
}

#[test]
fn valid_objects_pass() {
    assert!(messages("", "Pod", pod()).is_empty());
    assert!(messages("apps", "Deployment", deployment()).is_empty());
}

#[test]
fn pod_errors() {
    let base = pod();
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            with(&base, "/spec/containers", json!([])),
            vec!["spec.containers: Required value"],
        ),
        (
            with(&base, "/spec/containers/0/image", json!("")),
            vec!["spec.containers[0].image: Required value"],
        ),
        (
            with(&base, "/spec/containers/0/name", Value::Null),
            vec!["spec.containers[0].name: Required value"],
        ),
        (
            with(
                &base,
                "/spec/containers",
                json!([{"name": "a", "image": "x"}, {"name": "a", "image": "y"}]),
            ),
            vec!["spec.containers[1].name: Duplicate value: \"a\""],
        ),
        (
            with(
                &base,
                "/spec/containers/0/ports/0/containerPort",
                json!(70000),
            ),
            vec![
                "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
            ],
        ),
        (
            with(&base, "/spec/containers/0/ports/0/protocol", json!("HTTP")),
            vec![
                "spec.containers[0].ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"TCP\", \"UDP\", \"SCTP\"",
            ],
        ),
        (
            with(&base, "/spec/restartPolicy", json!("Sometimes")),
            vec![
                "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
            ],
        ),
        (
            with(
                &base,
                "/spec/containers/0/volumeMounts",
                json!([{"name": "data", "mountPath": "/data"}]),
            ),
            vec!["spec.containers[0].volumeMounts[0].name: Not found: \"data\""],
        ),
        (
            with(
                &base,
                "/spec/containers/0/resources",
                json!({"limits": {"cpu": "1"}, "requests": {"cpu": "2"}}),
            ),
            vec![
                "spec.containers[0].resources.requests[cpu]: Invalid value: \"2\": must be less than or equal to cpu limit of 1",
            ],
        ),
        (
            with(
                &base,
                "/spec/containers/0/resources",
                json!({"limits": {"memory": "lots"}}),
            ),
            vec![
                "spec.containers[0].resources.limits[memory]: Invalid value: \"lots\": must be a valid quantity, e.g. '500m', '1.5', '128Mi' or '2Gi'",
                // Defaulting copied the limit into the requests.
                "spec.containers[0].resources.requests[memory]: Invalid value: \"lots\": must be a valid quantity, e.g. '500m', '1.5', '128Mi' or '2Gi'",
            ],
        ),
        (
            with(
                &base,
                "/spec/containers/0/readinessProbe",
                json!({"periodSeconds": -1, "exec": {"command": ["true"]}}),
            ),
            vec![
                "spec.containers[0].readinessProbe.periodSeconds: Invalid value: -1: must be greater than or equal to 0",
            ],
        ),
        (
            with(&base, "/spec/containers/0/livenessProbe", json!({})),
            vec!["spec.containers[0].livenessProbe: Required value: must specify a handler type"],
        ),
        (
            with(
                &base,
                "/spec/tolerations",
                json!([{"key": "k", "operator": "Exists", "value": "v"}]),
            ),
            vec![
                "spec.tolerations[0].operator: Invalid value: \"Exists\": value must be empty when `operator` is 'Exists'",
            ],
        ),
        (
            with(&base, "/spec/volumes", json!([{"name": "s", "secret": {}}])),
            vec!["spec.volumes[0].secret.secretName: Required value"],
        ),
        (
            with(&base, "/metadata/name", json!("Web")),
            vec![
                "metadata.name: Invalid value: \"Web\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com')",
            ],
        ),
        (
            with(&base, "/metadata/namespace", Value::Null),
            vec!["metadata.namespace: Required value"],
        ),
    ];
    for (object, expected) in cases {
        assert_eq!(messages("", "Pod", object), expected);
    }
    let nameless = with(&base, "/metadata/name", Value::Null);
    assert_eq!(
        messages("", "Pod", nameless.clone()),
        vec!["metadata.name: Required value: name or generateName is required"]
    );
    assert!(
        messages(
            "",
            "Pod",
            with(&nameless, "/metadata/generateName", json!("web-"))
        )
        .is_empty()
    );
}

#[test]
fn stateful_set_mounts_may_name_claim_templates() {
    let set = json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "db"}}, "serviceName": "db",
                 "template": {"metadata": {"labels": {"app": "db"}},
                              "spec": {"containers": [{"name": "db", "image": "db",
                                  "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}},
                 "volumeClaimTemplates": [{"metadata": {"name": "data"},
                     "spec": {"accessModes": ["ReadWriteOnce"],
                              "resources": {"requests": {"storage": "1Gi"}}}}]}});
    assert_eq!(
        messages("apps", "StatefulSet", set.clone()),
        Vec::<String>::new()
    );
    // A mount naming neither a volume nor a claim template is still refused.
    let other = with(
        &set,
        "/spec/template/spec/containers/0/volumeMounts/0/name",
        json!("logs"),
    );
    assert_eq!(
        messages("apps", "StatefulSet", other),
        vec!["spec.template.spec.containers[0].volumeMounts[0].name: Not found: \"logs\""]
    );
}

#[test]
fn deployment_errors() {
    let base = deployment();
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            with(&base, "/spec/replicas", json!(-1)),
            vec!["spec.replicas: Invalid value: -1: must be greater than or equal to 0"],
        ),
        (
            with(&base, "/spec/selector", Value::Null),
            vec!["spec.selector: Required value"],
        ),
        (
            with(&base, "/spec/selector", json!({})),
            vec!["spec.selector: Invalid value: {}: empty selector is invalid for deployment"],
        ),
        (
            with(
                &base,
                "/spec/template/metadata/labels",
                json!({"app": "other"}),
            ),
            vec![
                "spec.template.metadata.labels: Invalid value: {\"app\":\"other\"}: `selector` does not match template `labels`",
            ],
        ),
        (
            with(&base, "/spec/template/spec/restartPolicy", json!("Never")),
            vec![
                "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
            ],
        ),
        (
            with(
                &base,
                "/spec/strategy",
                json!({"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}),
            ),
            vec![
                "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'",
            ],
        ),
        (
            with(
                &base,
                "/spec/strategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}}),
            ),
            vec![
                "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"0%\": may not be 0 when `maxSurge` is 0",
            ],
        ),
    ];
    for (object, expected) in cases {
        assert_eq!(messages("apps", "Deployment", object), expected);
    }
    let mut broken = with(&base, "/spec/replicas", json!(-1));
    broken = with(&broken, "/spec/template/spec/containers/0/image", json!(""));
    defaults::apply("apps", "Deployment", &mut broken);
    let status = check_create(&resource("apps", "Deployment"), &broken).unwrap_err();
    assert_eq!(
        status.message,
        "Deployment.apps \"web\" is invalid: [spec.replicas: Invalid value: -1: must be greater than or equal to 0, \
         spec.template.spec.containers[0].image: Required value]"
    );
    assert_eq!(
        status.to_json()["details"]["causes"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn job_and_cron_job_errors() {
    let job = json!({"metadata": {"name": "pi", "namespace": "default"}, "spec": {"template": {"spec": {
        "restartPolicy": "Never", "containers": [{"name": "pi", "image": "perl"}]}}}});
    let mut created = job.clone();
    defaults::apply("batch", "Job", &mut created);
    defaults::job_selector(&mut created, "uid-1");
    assert!(validate_create(&resource("batch", "Job"), &created).is_empty());
    let always = with(
        &created,
        "/spec/template/spec/restartPolicy",
        json!("Always"),
    );
    assert_eq!(
        validate_create(&resource("batch", "Job"), &always)
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        vec![
            "spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\""
        ]
    );
    assert_eq!(
        messages("batch", "Job", job),
        vec!["spec.selector: Required value"]
    );

    let cron = json!({"metadata": {"name": "tick", "namespace": "default"}, "spec": {"schedule": "*/5 * * * *",
        "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "busybox"}]}}}}}});
    assert!(messages("batch", "CronJob", cron.clone()).is_empty());
    let schedules = [
        ("@hourly", None),
        ("0 0 * * MON-FRI", None),
        ("0 0 ? * sun", None),
        ("@every 1h30m", None),
        (
            "* * * *",
            Some("expected exactly 5 fields, found 4: * * * *"),
        ),
        ("61 * * * *", Some("minute value 61 out of range (0-59)")),
        (
            "*/0 * * * *",
            Some("step of range should be a positive number: */0"),
        ),
        (
            "TZ=UTC 0 0 * * *",
            Some("cannot use TZ or CRON_TZ in schedule, use timeZone field instead"),
        ),
        (
            "@fortnightly",
            Some("unrecognized descriptor: @fortnightly"),
        ),
        (
            "5-1 * * * *",
            Some("beginning of range (5) beyond end of range (1): 5-1"),
        ),
    ];
    for (schedule, reason) in schedules {
        let got = messages(
            "batch",
            "CronJob",
            with(&cron, "/spec/schedule", json!(schedule)),
        );
        match reason {
            None => assert!(got.is_empty(), "{schedule}: {got:?}"),
            Some(reason) => assert_eq!(
                got,
                vec![format!(
                    "spec.schedule: Invalid value: {}: {reason}",
                    field::quote(schedule)
                )]
            ),
        }
    }
    let long_name = with(&cron, "/metadata/name", json!("c".repeat(53)));
    assert_eq!(messages("batch", "CronJob", long_name).len(), 1);
}

#[test]
fn config_and_scope_errors() {
    let config_map = json!({"metadata": {"name": "cfg", "namespace": "default"}, "data": {"ok.key": "1", "bad key": "2"}, "binaryData": {"ok.key": "eA=="}});
    assert_eq!(
        messages("", "ConfigMap", config_map),
        vec![
            "data[bad key]: Invalid value: \"bad key\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name', 'KEY_NAME' or 'key-name')",
            "binaryData[ok.key]: Invalid value: \"ok.key\": duplicate of key present in another data map",
        ]
    );
    let tls = json!({"metadata": {"name": "t", "namespace": "default"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "eA=="}});
    assert_eq!(
        messages("", "Secret", tls),
        vec!["data[tls.key]: Required value"]
    );
    let claim = json!({"metadata": {"name": "c", "namespace": "default"}, "spec": {}});
    assert_eq!(
        messages("", "PersistentVolumeClaim", claim),
        vec![
            "spec.accessModes: Required value: at least 1 access mode is required",
            "spec.resources[storage]: Required value",
        ]
    );
    let node = json!({"metadata": {"name": "n1", "namespace": "default"}});
    assert_eq!(
        messages("", "Node", node),
        vec!["metadata.namespace: Forbidden: not allowed on this type"]
    );
    let namespace = json!({"metadata": {"name": "team.a"}});
    assert_eq!(messages("", "Namespace", namespace).len(), 1);
    let role = json!({"metadata": {"name": "system:reader", "namespace": "default"}, "rules": [{"apiGroups": [""], "resources": ["pods"]}]});
    assert_eq!(
        messages("rbac.authorization.k8s.io", "Role", role),
        vec!["rules[0].verbs: Required value: verbs must contain at least one value"]
    );
    let hpa = json!({"metadata": {"name": "h", "namespace": "default"}, "spec": {"minReplicas": 3, "maxReplicas": 2, "scaleTargetRef": {"kind": "Deployment", "name": "web"}}});
    assert_eq!(
        messages("autoscaling", "HorizontalPodAutoscaler", hpa),
        vec!["spec.maxReplicas: Invalid value: 2: must be greater than or equal to `minReplicas`"]
    );
}

#[test]
fn virtual_resources_need_no_metadata() {
    let review = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                        "spec": {"resourceAttributes": {"verb": "get", "resource": "pods"}}});
    assert!(
        validate_create(
            &resource("authorization.k8s.io", "SelfSubjectAccessReview"),
            &review
        )
        .is_empty()
    );
}

#[test]
fn stateful_set_mounts_may_name_its_claim_templates() {
    let sts = json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"serviceName": "web", "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "app", "image": "nginx",
                                  "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}},
                 "volumeClaimTemplates": [{"metadata": {"name": "data"},
                     "spec": {"accessModes": ["ReadWriteOnce"],
                              "resources": {"requests": {"storage": "1Gi"}}}}]}});
    assert_eq!(
        messages("apps", "StatefulSet", sts.clone()),
        Vec::<String>::new()
    );
    let other = with(
        &sts,
        "/spec/volumeClaimTemplates/0/metadata/name",
        json!("logs"),
    );
    assert_eq!(
        messages("apps", "StatefulSet", other),
        vec!["spec.template.spec.containers[0].volumeMounts[0].name: Not found: \"data\""]
    );
}
