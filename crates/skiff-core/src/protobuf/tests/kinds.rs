//! One decoding case per kind that kubectl's typed clients create (`kubectl create <kind>`,
//! `auth can-i`, `create token`), each compared with the JSON the JSON API would carry.

use std::collections::BTreeMap;

use k8s_pb::api::{
    apps, authentication, authorization, batch, networking, policy, rbac, scheduling,
};
use serde_json::json;

use super::{core, decoded, go_meta, int_or_string_int, int_or_string_str, meta, quantity};

fn nginx_container() -> core::Container {
    core::Container {
        name: Some("nginx".into()),
        image: Some("nginx:1.27".into()),
        working_dir: Some(String::new()),
        ports: vec![core::ContainerPort {
            name: Some(String::new()),
            host_port: Some(0),
            container_port: Some(80),
            protocol: Some("TCP".into()),
            host_ip: Some(String::new()),
        }],
        env: vec![core::EnvVar {
            name: Some("MODE".into()),
            value: Some("prod".into()),
            value_from: None,
        }],
        resources: Some(core::ResourceRequirements {
            limits: BTreeMap::from([("memory".into(), quantity("128Mi"))]),
            requests: BTreeMap::from([("cpu".into(), quantity("100m"))]),
            claims: Vec::new(),
        }),
        termination_message_path: Some(String::new()),
        image_pull_policy: Some(String::new()),
        stdin: Some(false),
        tty: Some(false),
        ..Default::default()
    }
}

fn pod_template(labels: &[(&str, &str)]) -> Option<core::PodTemplateSpec> {
    Some(core::PodTemplateSpec {
        metadata: go_meta("", "", labels),
        spec: Some(core::PodSpec {
            containers: vec![nginx_container()],
            restart_policy: Some(String::new()),
            dns_policy: Some(String::new()),
            service_account_name: Some(String::new()),
            node_name: Some(String::new()),
            host_network: Some(false),
            scheduler_name: Some(String::new()),
            ..Default::default()
        }),
    })
}

fn nginx_json() -> serde_json::Value {
    json!({
        "name": "nginx", "image": "nginx:1.27",
        "ports": [{"containerPort": 80, "protocol": "TCP"}],
        "env": [{"name": "MODE", "value": "prod"}],
        "resources": {"limits": {"memory": "128Mi"}, "requests": {"cpu": "100m"}}
    })
}

fn selector(labels: &[(&str, &str)]) -> Option<meta::LabelSelector> {
    Some(meta::LabelSelector {
        match_labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        match_expressions: Vec::new(),
    })
}

#[test]
fn decodes_every_kind_kubectl_creates() {
    let app = [("app", "web")];
    let cases = vec![
        (
            decoded(
                "v1",
                "Namespace",
                &core::Namespace {
                    metadata: go_meta("team-a", "", &[]),
                    spec: Some(core::NamespaceSpec::default()),
                    status: Some(core::NamespaceStatus {
                        phase: Some(String::new()),
                        conditions: Vec::new(),
                    }),
                },
            ),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}, "spec": {}, "status": {}}),
        ),
        (
            decoded(
                "apps/v1",
                "Deployment",
                &apps::v1::Deployment {
                    metadata: go_meta("web", "default", &app),
                    spec: Some(apps::v1::DeploymentSpec {
                        replicas: Some(0),
                        selector: selector(&app),
                        template: pod_template(&app),
                        strategy: Some(apps::v1::DeploymentStrategy {
                            r#type: Some("RollingUpdate".into()),
                            rolling_update: Some(apps::v1::RollingUpdateDeployment {
                                max_unavailable: int_or_string_int(0),
                                max_surge: int_or_string_str("25%"),
                            }),
                        }),
                        min_ready_seconds: Some(0),
                        paused: Some(false),
                        ..Default::default()
                    }),
                    status: Some(apps::v1::DeploymentStatus::default()),
                },
            ),
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
                "spec": {
                    "replicas": 0,
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [nginx_json()]}},
                    "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}}
                },
                "status": {}
            }),
        ),
        (
            decoded(
                "v1",
                "Service",
                &core::Service {
                    metadata: go_meta("web", "default", &app),
                    spec: Some(core::ServiceSpec {
                        ports: vec![
                            core::ServicePort {
                                name: Some("http".into()),
                                protocol: Some("TCP".into()),
                                port: Some(80),
                                target_port: int_or_string_str("http"),
                                node_port: Some(0),
                                ..Default::default()
                            },
                            core::ServicePort {
                                name: Some("metrics".into()),
                                protocol: Some("TCP".into()),
                                port: Some(9090),
                                target_port: int_or_string_int(9090),
                                node_port: Some(0),
                                ..Default::default()
                            },
                        ],
                        selector: BTreeMap::from([("app".into(), "web".into())]),
                        cluster_ip: Some(String::new()),
                        r#type: Some("ClusterIP".into()),
                        session_affinity: Some(String::new()),
                        ..Default::default()
                    }),
                    status: Some(core::ServiceStatus::default()),
                },
            ),
            json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
                "spec": {
                    "ports": [
                        {"name": "http", "protocol": "TCP", "port": 80, "targetPort": "http"},
                        {"name": "metrics", "protocol": "TCP", "port": 9090, "targetPort": 9090}
                    ],
                    "selector": {"app": "web"},
                    "type": "ClusterIP"
                },
                "status": {}
            }),
        ),
        (
            decoded(
                "batch/v1",
                "CronJob",
                &batch::v1::CronJob {
                    metadata: go_meta("nightly", "default", &[]),
                    spec: Some(batch::v1::CronJobSpec {
                        schedule: Some("0 3 * * *".into()),
                        concurrency_policy: Some(String::new()),
                        job_template: Some(batch::v1::JobTemplateSpec {
                            metadata: go_meta("nightly", "", &[]),
                            spec: Some(batch::v1::JobSpec {
                                template: pod_template(&[]),
                                ..Default::default()
                            }),
                        }),
                        ..Default::default()
                    }),
                    status: Some(batch::v1::CronJobStatus::default()),
                },
            ),
            json!({
                "apiVersion": "batch/v1", "kind": "CronJob",
                "metadata": {"name": "nightly", "namespace": "default"},
                "spec": {
                    "schedule": "0 3 * * *",
                    "jobTemplate": {"metadata": {"name": "nightly"}, "spec": {"template": {"metadata": {}, "spec": {"containers": [nginx_json()]}}}}
                },
                "status": {}
            }),
        ),
        (
            decoded(
                "v1",
                "ServiceAccount",
                &core::ServiceAccount {
                    metadata: go_meta("builder", "ci", &[]),
                    automount_service_account_token: Some(false),
                    ..Default::default()
                },
            ),
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "builder", "namespace": "ci"}, "automountServiceAccountToken": false}),
        ),
        (
            decoded(
                "rbac.authorization.k8s.io/v1",
                "Role",
                &rbac::v1::Role {
                    metadata: go_meta("reader", "default", &[]),
                    rules: vec![rbac::v1::PolicyRule {
                        verbs: vec!["get".into(), "list".into()],
                        api_groups: vec![String::new()],
                        resources: vec!["pods".into()],
                        ..Default::default()
                    }],
                },
            ),
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                "metadata": {"name": "reader", "namespace": "default"},
                "rules": [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}]
            }),
        ),
        (
            decoded(
                "rbac.authorization.k8s.io/v1",
                "ClusterRoleBinding",
                &rbac::v1::ClusterRoleBinding {
                    metadata: go_meta("admins", "", &[]),
                    subjects: vec![rbac::v1::Subject {
                        kind: Some("User".into()),
                        api_group: Some("rbac.authorization.k8s.io".into()),
                        name: Some("alice".into()),
                        namespace: Some(String::new()),
                    }],
                    role_ref: Some(rbac::v1::RoleRef {
                        api_group: Some("rbac.authorization.k8s.io".into()),
                        kind: Some("ClusterRole".into()),
                        name: Some("admin".into()),
                    }),
                },
            ),
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": "admins"},
                "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"}],
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"}
            }),
        ),
        (
            decoded(
                "scheduling.k8s.io/v1",
                "PriorityClass",
                &scheduling::v1::PriorityClass {
                    metadata: go_meta("low", "", &[]),
                    value: Some(0),
                    global_default: Some(false),
                    description: Some(String::new()),
                    preemption_policy: None,
                },
            ),
            json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "low"}, "value": 0}),
        ),
        (
            decoded(
                "policy/v1",
                "PodDisruptionBudget",
                &policy::v1::PodDisruptionBudget {
                    metadata: go_meta("web", "default", &[]),
                    spec: Some(policy::v1::PodDisruptionBudgetSpec {
                        min_available: int_or_string_str("50%"),
                        selector: selector(&app),
                        ..Default::default()
                    }),
                    status: Some(policy::v1::PodDisruptionBudgetStatus::default()),
                },
            ),
            json!({
                "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {"minAvailable": "50%", "selector": {"matchLabels": {"app": "web"}}},
                "status": {}
            }),
        ),
        (
            decoded(
                "networking.k8s.io/v1",
                "Ingress",
                &networking::v1::Ingress {
                    metadata: go_meta("web", "default", &[]),
                    spec: Some(networking::v1::IngressSpec {
                        ingress_class_name: Some("skiff".into()),
                        rules: vec![networking::v1::IngressRule {
                            host: Some("example.com".into()),
                            ingress_rule_value: Some(networking::v1::IngressRuleValue {
                                http: Some(networking::v1::HttpIngressRuleValue {
                                    paths: vec![networking::v1::HttpIngressPath {
                                        path: Some("/".into()),
                                        path_type: Some("Prefix".into()),
                                        backend: Some(networking::v1::IngressBackend {
                                            service: Some(networking::v1::IngressServiceBackend {
                                                name: Some("web".into()),
                                                port: Some(networking::v1::ServiceBackendPort {
                                                    name: Some(String::new()),
                                                    number: Some(80),
                                                }),
                                            }),
                                            resource: None,
                                        }),
                                    }],
                                }),
                            }),
                        }],
                        ..Default::default()
                    }),
                    status: Some(networking::v1::IngressStatus::default()),
                },
            ),
            json!({
                "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {"ingressClassName": "skiff", "rules": [{"host": "example.com", "http": {"paths": [
                    {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}
                ]}}]},
                "status": {}
            }),
        ),
        (
            decoded(
                "authentication.k8s.io/v1",
                "TokenRequest",
                &authentication::v1::TokenRequest {
                    metadata: go_meta("builder", "ci", &[]),
                    spec: Some(authentication::v1::TokenRequestSpec {
                        audiences: vec!["https://kubernetes.default.svc".into()],
                        expiration_seconds: Some(3600),
                        bound_object_ref: None,
                    }),
                    status: Some(authentication::v1::TokenRequestStatus {
                        token: Some(String::new()),
                        expiration_timestamp: Some(meta::Time::default()),
                    }),
                },
            ),
            json!({
                "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "metadata": {"name": "builder", "namespace": "ci"},
                "spec": {"audiences": ["https://kubernetes.default.svc"], "expirationSeconds": 3600},
                // `token` has no omitempty in Go; the zero expirationTimestamp is left out.
                "status": {"token": ""}
            }),
        ),
        (
            decoded(
                "authorization.k8s.io/v1",
                "SelfSubjectAccessReview",
                &authorization::v1::SelfSubjectAccessReview {
                    metadata: go_meta("", "", &[]),
                    spec: Some(authorization::v1::SelfSubjectAccessReviewSpec {
                        resource_attributes: Some(authorization::v1::ResourceAttributes {
                            namespace: Some("default".into()),
                            verb: Some("create".into()),
                            group: Some(String::new()),
                            version: Some(String::new()),
                            resource: Some("pods".into()),
                            subresource: Some(String::new()),
                            name: Some(String::new()),
                            ..Default::default()
                        }),
                        non_resource_attributes: None,
                    }),
                    status: Some(authorization::v1::SubjectAccessReviewStatus {
                        allowed: Some(false),
                        denied: Some(false),
                        reason: Some(String::new()),
                        evaluation_error: Some(String::new()),
                    }),
                },
            ),
            json!({
                "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                "metadata": {},
                "spec": {"resourceAttributes": {"namespace": "default", "verb": "create", "resource": "pods"}},
                "status": {"allowed": false}
            }),
        ),
    ];
    for (actual, expected) in cases {
        assert_eq!(actual, expected, "{}", expected["kind"]);
    }
}

#[test]
fn decodes_jobs_and_cluster_wide_rbac() {
    let job = decoded(
        "batch/v1",
        "Job",
        &batch::v1::Job {
            metadata: go_meta("once", "default", &[]),
            spec: Some(batch::v1::JobSpec {
                parallelism: Some(1),
                completions: Some(1),
                backoff_limit: Some(0),
                template: pod_template(&[]),
                ..Default::default()
            }),
            status: Some(batch::v1::JobStatus {
                active: Some(0),
                succeeded: Some(0),
                failed: Some(0),
                ..Default::default()
            }),
        },
    );
    assert_eq!(job["spec"]["backoffLimit"], json!(0));
    assert_eq!(
        job["spec"]["template"]["spec"]["containers"][0],
        nginx_json()
    );
    assert_eq!(job["status"], json!({}));

    let rule = rbac::v1::PolicyRule {
        verbs: vec!["get".into()],
        non_resource_ur_ls: vec!["/healthz".into()],
        ..Default::default()
    };
    let cluster_role = decoded(
        "rbac.authorization.k8s.io/v1",
        "ClusterRole",
        &rbac::v1::ClusterRole {
            metadata: go_meta("health", "", &[]),
            rules: vec![rule],
            aggregation_rule: None,
        },
    );
    assert_eq!(
        cluster_role["rules"],
        json!([{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}])
    );

    let binding = decoded(
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
        &rbac::v1::RoleBinding {
            metadata: go_meta("read", "default", &[]),
            subjects: vec![rbac::v1::Subject {
                kind: Some("ServiceAccount".into()),
                api_group: Some(String::new()),
                name: Some("builder".into()),
                namespace: Some("ci".into()),
            }],
            role_ref: Some(rbac::v1::RoleRef {
                api_group: Some("rbac.authorization.k8s.io".into()),
                kind: Some("Role".into()),
                name: Some("reader".into()),
            }),
        },
    );
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "builder", "namespace": "ci"}])
    );
    assert_eq!(
        binding["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"})
    );
}

#[test]
fn flattens_embedded_structs() {
    let pod = core::Pod {
        metadata: go_meta("p", "default", &[]),
        spec: Some(core::PodSpec {
            containers: vec![core::Container {
                name: Some("app".into()),
                image: Some("busybox".into()),
                readiness_probe: Some(core::Probe {
                    handler: Some(core::ProbeHandler {
                        http_get: Some(core::HttpGetAction {
                            path: Some("/healthz".into()),
                            port: int_or_string_int(8080),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    period_seconds: Some(5),
                    ..Default::default()
                }),
                env: vec![core::EnvVar {
                    name: Some("KEY".into()),
                    value: Some(String::new()),
                    value_from: Some(core::EnvVarSource {
                        config_map_key_ref: Some(core::ConfigMapKeySelector {
                            local_object_reference: Some(core::LocalObjectReference {
                                name: Some("settings".into()),
                            }),
                            key: Some("a".into()),
                            optional: None,
                        }),
                        ..Default::default()
                    }),
                }],
                ..Default::default()
            }],
            volumes: vec![
                core::Volume {
                    name: Some("scratch".into()),
                    volume_source: Some(core::VolumeSource {
                        empty_dir: Some(core::EmptyDirVolumeSource::default()),
                        ..Default::default()
                    }),
                },
                core::Volume {
                    name: Some("config".into()),
                    volume_source: Some(core::VolumeSource {
                        config_map: Some(core::ConfigMapVolumeSource {
                            local_object_reference: Some(core::LocalObjectReference {
                                name: Some("settings".into()),
                            }),
                            default_mode: Some(420),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                },
            ],
            ..Default::default()
        }),
        status: None,
    };
    let spec = decoded("v1", "Pod", &pod)["spec"].clone();
    assert_eq!(
        spec,
        json!({
            "containers": [{
                "name": "app", "image": "busybox",
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 5},
                "env": [{"name": "KEY", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "a"}}}]
            }],
            "volumes": [
                {"name": "scratch", "emptyDir": {}},
                {"name": "config", "configMap": {"name": "settings", "defaultMode": 420}}
            ]
        })
    );
}
