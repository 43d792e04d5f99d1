//! Tests for the Node status the agent reports.

use super::*;

#[test]
fn status_reports_capacity_conditions_and_endpoint() {
    let facts = Facts {
        name: "n1".into(),
        internal_ip: "192.0.2.2".into(),
        hostname: "host".into(),
        cpu_millis: 2000,
        memory_bytes: 4 << 30,
        max_pods: 110,
        node_api_port: 10250,
        runtime_version: "docker://20.10.24".into(),
        memory_available_bytes: 2 << 30,
        disk_available_fraction: 0.5,
        ..Default::default()
    };
    let t0 = Timestamp::from_second(1_700_000_000).expect("time");
    let status = node_status(&facts, None, t0);
    let capacity = status.capacity.clone().unwrap_or_default();
    assert_eq!(capacity["cpu"].0, "2000m");
    assert_eq!(capacity["memory"].0, "4194304Ki");
    assert_eq!(capacity["pods"].0, "110");
    let conditions = status.conditions.clone().unwrap_or_default();
    let get = |t: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == t)
            .map(|c| c.status.clone())
    };
    assert_eq!(get("Ready").as_deref(), Some("True"));
    assert_eq!(get("MemoryPressure").as_deref(), Some("False"));
    assert_eq!(get("DiskPressure").as_deref(), Some("False"));
    assert_eq!(get("PIDPressure").as_deref(), Some("False"));
    assert_eq!(
        status
            .daemon_endpoints
            .and_then(|d| d.kubelet_endpoint)
            .map(|e| e.port),
        Some(10250)
    );

    let mut low = facts.clone();
    low.memory_available_bytes = 1 << 20;
    let t1 = Timestamp::from_second(1_700_000_100).expect("time");
    let later = node_status(&low, Some(&node_status(&facts, None, t0)), t1);
    let ready = later
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready")
        .expect("Ready");
    assert_eq!(
        ready.last_transition_time,
        Some(Time(t0)),
        "unchanged conditions keep their transition time"
    );
    let memory = later
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "MemoryPressure")
        .expect("MemoryPressure");
    assert_eq!(
        (memory.status.as_str(), memory.last_transition_time.clone()),
        ("True", Some(Time(t1)))
    );
}
