//! Tests for the status patch: only the fields the agent owns, conditions merged by type.

use super::*;
use k8s_openapi::api::core::v1::PodCondition;

#[test]
fn the_status_patch_carries_only_owned_fields() {
    let mut pod = Pod::default();
    pod.metadata.uid = Some("u-1".into());
    let status = PodStatus {
        phase: Some("Running".into()),
        conditions: Some(vec![PodCondition {
            type_: "Ready".into(),
            status: "True".into(),
            ..Default::default()
        }]),
        pod_ip: Some("10.42.1.5".into()),
        nominated_node_name: Some("not-ours".into()),
        message: Some("not ours either".into()),
        ..Default::default()
    };
    let patch = status_patch(&pod, &status);
    assert_eq!(
        patch["metadata"]["uid"], "u-1",
        "the uid guards against patching a recreated pod"
    );
    let fields: Vec<&str> = patch["status"]
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    for owned in [
        "phase",
        "conditions",
        "podIP",
        "podIPs",
        "hostIP",
        "hostIPs",
        "startTime",
        "qosClass",
        "containerStatuses",
        "initContainerStatuses",
    ] {
        assert!(fields.contains(&owned), "{owned} missing from {fields:?}");
    }
    assert!(
        !fields.contains(&"nominatedNodeName") && !fields.contains(&"message"),
        "{fields:?}"
    );
    // Conditions are a list of objects with `type`: a strategic merge patch merges them by type,
    // so conditions written by other components survive.
    assert_eq!(patch["status"]["conditions"][0]["type"], "Ready");
}

#[test]
fn events_name_the_pod_and_the_node() {
    let mut pod = Pod::default();
    pod.metadata.name = Some("web".into());
    pod.metadata.namespace = Some("prod".into());
    pod.metadata.uid = Some("u-1".into());
    let now = k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).expect("time");
    let event = pod_event(
        &pod,
        "node-a",
        true,
        "Unhealthy",
        "Liveness probe failed: boom",
        now,
    );
    assert_eq!(event.metadata.namespace.as_deref(), Some("prod"));
    assert!(
        event
            .metadata
            .name
            .as_deref()
            .unwrap_or("")
            .starts_with("web.")
    );
    assert_eq!(event.involved_object.kind.as_deref(), Some("Pod"));
    assert_eq!(event.involved_object.uid.as_deref(), Some("u-1"));
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    assert_eq!(event.source.and_then(|s| s.host).as_deref(), Some("node-a"));
    assert_eq!(event.count, Some(1));
}
