//! Tests of the start-time breakdown: parsing `docker events` lines and cutting phases.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{ContainerEvent, Milestone, container_milestones, parse_event, phases};

fn at(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + ms)
}

fn event(pod: &str, kind: &str, action: &str, ms: u64) -> ContainerEvent {
    ContainerEvent {
        pod: pod.into(),
        kind: kind.into(),
        action: action.into(),
        at: at(ms),
    }
}

#[test]
fn parses_a_container_event_of_a_pod() {
    let line = r#"{"status":"start","id":"abc","from":"skiff-test/busybox:1","Type":"container","Action":"start","Actor":{"ID":"abc","Attributes":{"io.skiff.kind":"sandbox","io.skiff.pod.name":"r0-001","image":"x"}},"scope":"local","time":1700000000,"timeNano":1700000000250000000}"#;
    let parsed = parse_event(line).expect("a pod's container event");
    assert_eq!(parsed, event("r0-001", "sandbox", "start", 250));
}

#[test]
fn ignores_other_events_and_garbage() {
    for line in [
        "",
        "not json",
        r#"{"Type":"network","Action":"connect","Actor":{"Attributes":{"io.skiff.kind":"sandbox","io.skiff.pod.name":"p"}},"timeNano":1}"#,
        r#"{"Type":"container","Action":"start","Actor":{"Attributes":{"image":"x"}},"timeNano":1}"#,
        r#"{"Type":"container","Action":"start","Actor":{"Attributes":{"io.skiff.kind":"sandbox","io.skiff.pod.name":"p"}}}"#,
    ] {
        assert_eq!(parse_event(line), None, "{line:?}");
    }
}

#[test]
fn cuts_consecutive_phases_per_pod() {
    let created = HashMap::from([("a".to_string(), at(0)), ("b".to_string(), at(10))]);
    let events = vec![
        event("a", "sandbox", "create", 100),
        event("a", "sandbox", "start", 300),
        event("a", "container", "create", 350),
        // A restart later does not move the first start, even when reported out of order.
        event("a", "container", "start", 9_000),
        event("a", "container", "start", 500),
        event("a", "container", "die", 8_000),
        event("b", "sandbox", "create", 210),
        event("b", "sandbox", "start", 410),
        // b's app container never got created.
    ];
    let running = HashMap::from([("a".to_string(), at(700))]);
    let mut milestones = vec![Milestone::new("create request", created)];
    milestones.extend(container_milestones(&events));
    milestones.push(Milestone::new("Running seen", running));
    let got: Vec<(String, Vec<Duration>)> = phases(&milestones)
        .into_iter()
        .map(|(name, s)| {
            let mut l = s.latencies;
            l.sort();
            (name, l)
        })
        .collect();
    let ms = |v: &[u64]| {
        v.iter()
            .map(|m| Duration::from_millis(*m))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        got,
        vec![
            (
                "create request -> sandbox created".to_string(),
                ms(&[100, 200])
            ),
            (
                "sandbox created -> sandbox started".to_string(),
                ms(&[200, 200])
            ),
            ("sandbox started -> app created".to_string(), ms(&[50])),
            ("app created -> app started".to_string(), ms(&[150])),
            ("app started -> Running seen".to_string(), ms(&[200])),
        ]
    );
}
