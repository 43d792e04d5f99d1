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
