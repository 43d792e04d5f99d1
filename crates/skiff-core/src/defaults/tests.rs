//! Tests for defaulting: the values filled in per kind, that explicit values survive, and that
//! applying defaults twice changes nothing.

#![allow(clippy::unwrap_used)]

use serde_json::json;

use super::*;

fn defaulted(group: &str, kind: &str, mut object: Value) -> Value {
    apply(group, kind, &mut object);
    let once = object.clone();
    apply(group, kind, &mut object);
    assert_eq!(object, once, "defaulting {kind} is idempotent");
    object
}

#[test]
fn pods_get_spec_container_and_admission_defaults() {
    let pod = defaulted(
        "",
        "Pod",
        json!({"metadata": {"name": "p"}, "spec": {
        "containers": [{"name": "c", "image": "nginx", "ports": [{"containerPort": 80}],
                        "livenessProbe": {"httpGet": {"port": 80}},
                        "resources": {"limits": {"cpu": "1"}}}],
        "volumes": [{"name": "scratch"}, {"name": "cfg", "configMap": {"name": "cfg"}}]}}),
    );
    let spec = &pod["spec"];
    for (field, value) in [
        ("restartPolicy", json!("Always")),
        ("dnsPolicy", json!("ClusterFirst")),
        ("terminationGracePeriodSeconds", json!(30)),
        ("schedulerName", json!("default-scheduler")),
        ("securityContext", json!({})),
        ("serviceAccountName", json!("default")),
        ("serviceAccount", json!("default")),
        ("enableServiceLinks", json!(true)),
        ("priority", json!(0)),
    ] {
        assert_eq!(spec[field], value, "{field}");
    }
    let container = &spec["containers"][0];
    assert_eq!(container["imagePullPolicy"], json!("Always"));
    assert_eq!(
        container["terminationMessagePath"],
        json!("/dev/termination-log")
    );
    assert_eq!(container["terminationMessagePolicy"], json!("File"));
    assert_eq!(container["ports"][0]["protocol"], json!("TCP"));
    assert_eq!(container["resources"]["requests"], json!({"cpu": "1"}));
    assert_eq!(
        container["livenessProbe"],
        json!({"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1,
               "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
    );
    assert_eq!(spec["volumes"][0]["emptyDir"], json!({}));
    assert_eq!(spec["volumes"][1]["configMap"]["defaultMode"], json!(420));
    let tolerations = spec["tolerations"].as_array().unwrap();
    assert_eq!(tolerations.len(), 2);
    assert_eq!(tolerations[0]["key"], json!("node.kubernetes.io/not-ready"));
    assert_eq!(tolerations[1]["tolerationSeconds"], json!(300));
}

#[test]
fn image_pull_policies() {
    let cases = [
        ("nginx", "Always"),
        ("nginx:latest", "Always"),
        ("nginx:1.27", "IfNotPresent"),
        ("registry:5000/app", "Always"),
        ("registry:5000/app:v1", "IfNotPresent"),
        ("app@sha256:abc", "IfNotPresent"),
    ];
    for (image, policy) in cases {
        assert_eq!(image_pull_policy(image), policy, "{image}");
    }
}

#[test]
fn explicit_values_are_kept() {
    let pod = defaulted(
        "",
        "Pod",
        json!({"spec": {"restartPolicy": "Never", "serviceAccountName": "robot",
        "containers": [{"name": "c", "image": "nginx", "imagePullPolicy": "Never"}]}}),
    );
    assert_eq!(pod["spec"]["restartPolicy"], json!("Never"));
    assert_eq!(pod["spec"]["serviceAccount"], json!("robot"));
    assert_eq!(
        pod["spec"]["containers"][0]["imagePullPolicy"],
        json!("Never")
    );
    let deployment = defaulted(
        "apps",
        "Deployment",
        json!({"spec": {"replicas": 0, "strategy": {"type": "Recreate"}}}),
    );
    assert_eq!(deployment["spec"]["replicas"], json!(0));
    assert_eq!(deployment["spec"]["strategy"], json!({"type": "Recreate"}));
}

#[test]
fn workload_defaults() {
    let deployment = defaulted(
        "apps",
        "Deployment",
        json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}}}),
    );
    let spec = &deployment["spec"];
    assert_eq!(spec["replicas"], json!(1));
    assert_eq!(spec["revisionHistoryLimit"], json!(10));
    assert_eq!(spec["progressDeadlineSeconds"], json!(600));
    assert_eq!(
        spec["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
    );
    let template = &spec["template"]["spec"];
    assert_eq!(template["restartPolicy"], json!("Always"));
    assert!(
        template.get("serviceAccountName").is_none(),
        "templates get no pod-only defaults"
    );
    assert!(template.get("tolerations").is_none());

    let stateful = defaulted(
        "apps",
        "StatefulSet",
        json!({"spec": {"volumeClaimTemplates": [{"spec": {}}]}}),
    );
    assert_eq!(
        stateful["spec"]["podManagementPolicy"],
        json!("OrderedReady")
    );
    assert_eq!(
        stateful["spec"]["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
    );
    assert_eq!(
        stateful["spec"]["persistentVolumeClaimRetentionPolicy"],
        json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
    );
    assert_eq!(
        stateful["spec"]["volumeClaimTemplates"][0]["spec"]["volumeMode"],
        json!("Filesystem")
    );

    let daemon = defaulted("apps", "DaemonSet", json!({"spec": {}}));
    assert_eq!(
        daemon["spec"]["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
    );

    let job = defaulted("batch", "Job", json!({"spec": {"template": {"spec": {}}}}));
    for (field, value) in [
        ("completions", json!(1)),
        ("parallelism", json!(1)),
        ("backoffLimit", json!(6)),
        ("completionMode", json!("NonIndexed")),
        ("suspend", json!(false)),
        ("podReplacementPolicy", json!("TerminatingOrFailed")),
    ] {
        assert_eq!(job["spec"][field], value, "{field}");
    }
    let parallel = defaulted("batch", "Job", json!({"spec": {"parallelism": 3}}));
    assert!(
        parallel["spec"].get("completions").is_none(),
        "a work queue job keeps completions unset"
    );

    let cron = defaulted(
        "batch",
        "CronJob",
        json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}}}}),
    );
    assert_eq!(cron["spec"]["concurrencyPolicy"], json!("Allow"));
    assert_eq!(cron["spec"]["successfulJobsHistoryLimit"], json!(3));
    assert_eq!(cron["spec"]["failedJobsHistoryLimit"], json!(1));
    assert_eq!(
        cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["dnsPolicy"],
        json!("ClusterFirst")
    );
}

#[test]
fn job_selectors_use_the_uid() {
    let mut job = json!({"metadata": {"name": "pi"}, "spec": {"template": {"metadata": {"labels": {"app": "pi"}}}}});
    job_selector(&mut job, "u-1");
    assert_eq!(
        job["spec"]["selector"],
        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}})
    );
    assert_eq!(
        job["spec"]["template"]["metadata"]["labels"],
        json!({"app": "pi", "batch.kubernetes.io/controller-uid": "u-1", "batch.kubernetes.io/job-name": "pi",
               "controller-uid": "u-1", "job-name": "pi"})
    );
    let mut manual =
        json!({"spec": {"manualSelector": true, "selector": {"matchLabels": {"a": "b"}}}});
    job_selector(&mut manual, "u-2");
    assert_eq!(
        manual["spec"]["selector"],
        json!({"matchLabels": {"a": "b"}})
    );
}

#[test]
fn service_defaults() {
    let service = defaulted(
        "",
        "Service",
        json!({"spec": {"ports": [{"port": 80}, {"port": 443, "targetPort": "https"}]}}),
    );
    let spec = &service["spec"];
    assert_eq!(spec["type"], json!("ClusterIP"));
    assert_eq!(spec["sessionAffinity"], json!("None"));
    assert_eq!(spec["ipFamilies"], json!(["IPv4"]));
    assert_eq!(spec["ipFamilyPolicy"], json!("SingleStack"));
    assert_eq!(spec["internalTrafficPolicy"], json!("Cluster"));
    assert!(spec.get("externalTrafficPolicy").is_none());
    assert_eq!(
        spec["ports"][0],
        json!({"port": 80, "protocol": "TCP", "targetPort": 80})
    );
    assert_eq!(spec["ports"][1]["targetPort"], json!("https"));

    let node_port = defaulted(
        "",
        "Service",
        json!({"spec": {"type": "NodePort", "sessionAffinity": "ClientIP"}}),
    );
    assert_eq!(node_port["spec"]["externalTrafficPolicy"], json!("Cluster"));
    assert_eq!(
        node_port["spec"]["sessionAffinityConfig"],
        json!({"clientIP": {"timeoutSeconds": 10800}})
    );
    let external = defaulted(
        "",
        "Service",
        json!({"spec": {"type": "ExternalName", "externalName": "example.com"}}),
    );
    assert!(external["spec"].get("ipFamilies").is_none());
}

#[test]
fn other_kinds() {
    assert_eq!(defaulted("", "Secret", json!({}))["type"], json!("Opaque"));
    let namespace = defaulted("", "Namespace", json!({"metadata": {"name": "team"}}));
    assert_eq!(
        namespace["metadata"]["labels"],
        json!({"kubernetes.io/metadata.name": "team"})
    );
    assert_eq!(namespace["status"], json!({"phase": "Active"}));
    assert_eq!(namespace["spec"], json!({"finalizers": ["kubernetes"]}));
    let claim = defaulted("", "PersistentVolumeClaim", json!({"spec": {}}));
    assert_eq!(claim["spec"]["volumeMode"], json!("Filesystem"));
    assert_eq!(claim["status"]["phase"], json!("Pending"));
    let policy = defaulted(
        "networking.k8s.io",
        "NetworkPolicy",
        json!({"spec": {"egress": [{"ports": [{"port": 53}]}]}}),
    );
    assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(
        policy["spec"]["egress"][0]["ports"][0]["protocol"],
        json!("TCP")
    );
    let binding = defaulted(
        "rbac.authorization.k8s.io",
        "RoleBinding",
        json!({"subjects": [{"kind": "User", "name": "bob"}, {"kind": "ServiceAccount", "name": "default"}]}),
    );
    assert_eq!(
        binding["subjects"][0]["apiGroup"],
        json!("rbac.authorization.k8s.io")
    );
    assert_eq!(binding["subjects"][1]["apiGroup"], json!(""));
    let wrong_types = defaulted("apps", "Deployment", json!({"spec": "not an object"}));
    assert_eq!(wrong_types["spec"], json!("not an object"));
}
