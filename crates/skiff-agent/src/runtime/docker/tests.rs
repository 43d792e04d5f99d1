//! Tests for the pure parts of the Docker runtime: the Linux bridge behind a network, when a
//! kill's OOM flag may still be on its way.

use std::collections::HashMap;

use bollard::models::{ContainerInspectResponse, ContainerState, HostConfig};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::bridge::bridge_name;
use super::oom::oom_report_may_be_late;

fn exited(code: i64, oom: bool, memory: i64, finished: &str) -> ContainerInspectResponse {
    ContainerInspectResponse {
        state: Some(ContainerState {
            running: Some(false),
            exit_code: Some(code),
            oom_killed: Some(oom),
            finished_at: Some(finished.to_string()),
            ..Default::default()
        }),
        host_config: Some(HostConfig {
            memory: Some(memory),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn only_a_fresh_sigkill_under_a_memory_limit_waits_for_the_oom_flag() {
    let finished: Timestamp = "2026-11-29T02:31:42.84660594Z".parse().expect("a time");
    let soon = finished + SignedDuration::from_millis(50);
    let at = "2026-11-29T02:31:42.84660594Z";
    assert!(oom_report_may_be_late(
        &exited(137, false, 16 << 20, at),
        soon
    ));
    // Already flagged, another exit code, no limit: nothing to wait for.
    assert!(!oom_report_may_be_late(
        &exited(137, true, 16 << 20, at),
        soon
    ));
    assert!(!oom_report_may_be_late(
        &exited(1, false, 16 << 20, at),
        soon
    ));
    assert!(!oom_report_may_be_late(&exited(137, false, 0, at), soon));
    // An old exit (the agent restarted, or a later look): the flag would be there by now.
    let later = finished + SignedDuration::from_secs(5);
    assert!(!oom_report_may_be_late(
        &exited(137, false, 16 << 20, at),
        later
    ));
    // Docker's zero time for a container that never finished.
    let never = "0001-01-01T00:00:00Z";
    assert!(!oom_report_may_be_late(
        &exited(137, false, 16 << 20, never),
        soon
    ));
}

#[test]
fn a_bridge_network_is_br_and_the_short_id_unless_named() {
    let id = "38231529d17255c6a5d2e7f1bd0c6bd3f8b2c1e0aa55f3f4c0b3d2e1f0a9b8c7";
    assert_eq!(
        bridge_name(Some("bridge"), Some(id), None).as_deref(),
        Some("br-38231529d172")
    );
    let named = HashMap::from([(
        "com.docker.network.bridge.name".to_string(),
        "docker0".to_string(),
    )]);
    assert_eq!(
        bridge_name(Some("bridge"), Some(id), Some(&named)).as_deref(),
        Some("docker0")
    );
    let empty_name = HashMap::from([("com.docker.network.bridge.name".to_string(), String::new())]);
    assert_eq!(
        bridge_name(Some("bridge"), Some(id), Some(&empty_name)).as_deref(),
        Some("br-38231529d172")
    );
}

#[test]
fn other_drivers_and_odd_ids_have_no_bridge() {
    assert_eq!(
        bridge_name(Some("host"), Some("d3bb2da72722aa"), None),
        None
    );
    assert_eq!(bridge_name(None, Some("d3bb2da72722aa"), None), None);
    assert_eq!(bridge_name(Some("bridge"), Some("short"), None), None);
    assert_eq!(bridge_name(Some("bridge"), None, None), None);
}
