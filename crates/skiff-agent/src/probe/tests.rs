//! Tests for the probe state machine: defaults, thresholds, initial delay, startup gating.

use super::*;
use k8s_openapi::api::core::v1::Container;
use serde_json::json;

fn t(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + seconds).expect("valid timestamp")
}

fn container(probes: serde_json::Value) -> Container {
    let mut c = json!({"name": "main", "image": "img:1"});
    if let (Some(obj), Some(extra)) = (c.as_object_mut(), probes.as_object()) {
        for (k, v) in extra {
            obj.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(c).expect("container")
}

#[test]
fn defaults_and_forced_thresholds() {
    let p: Probe =
        serde_json::from_value(json!({"exec": {"command": ["true"]}, "successThreshold": 3}))
            .expect("probe");
    let live = Timing::of(&p, ProbeKind::Liveness);
    assert_eq!(
        live,
        Timing {
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            success_threshold: 1,
            failure_threshold: 3,
        }
    );
    assert_eq!(Timing::of(&p, ProbeKind::Readiness).success_threshold, 3);
}

#[test]
fn readiness_flips_after_thresholds() {
    let c = container(json!({"readinessProbe": {"exec": {"command": ["true"]},
        "initialDelaySeconds": 5, "periodSeconds": 2, "successThreshold": 2, "failureThreshold": 2}}));
    let mut probes = ContainerProbes::new(&c);
    assert!(
        !probes.verdicts().ready,
        "not ready before the first success"
    );
    assert!(probes.due(t(0), t(4)).is_empty(), "initial delay");
    assert_eq!(probes.due(t(0), t(5)), vec![ProbeKind::Readiness]);
    let r = probes.get_mut(ProbeKind::Readiness).expect("readiness");
    assert!(
        !r.record(Outcome::Success, t(5)),
        "one success is not enough"
    );
    assert_eq!(r.next_due(t(0)), t(7));
    assert!(r.record(Outcome::Success, t(7)));
    assert!(probes.verdicts().ready);
    let r = probes.get_mut(ProbeKind::Readiness).expect("readiness");
    assert!(!r.record(Outcome::Failure, t(9)));
    assert!(r.record(Outcome::Failure, t(11)));
    assert!(!probes.verdicts().ready);
    assert!(!probes.verdicts().kill, "readiness never restarts");
}

#[test]
fn liveness_failure_asks_for_a_restart() {
    let c = container(json!({"livenessProbe": {"tcpSocket": {"port": 80}, "failureThreshold": 3}}));
    let mut probes = ContainerProbes::new(&c);
    assert!(
        probes.verdicts().ready && !probes.verdicts().kill,
        "alive until proven dead"
    );
    let l = probes.get_mut(ProbeKind::Liveness).expect("liveness");
    l.record(Outcome::Failure, t(1));
    l.record(Outcome::Failure, t(11));
    assert!(!probes.verdicts().kill);
    let l = probes.get_mut(ProbeKind::Liveness).expect("liveness");
    l.record(Outcome::Success, t(21));
    l.record(Outcome::Failure, t(31));
    l.record(Outcome::Failure, t(41));
    assert!(!probes.verdicts().kill, "a success resets the count");
    let l = probes.get_mut(ProbeKind::Liveness).expect("liveness");
    l.record(Outcome::Failure, t(51));
    assert!(probes.verdicts().kill);
}

#[test]
fn startup_gates_the_other_probes() {
    let c = container(json!({
        "startupProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1, "failureThreshold": 2},
        "livenessProbe": {"exec": {"command": ["true"]}},
        "readinessProbe": {"exec": {"command": ["true"]}},
    }));
    let mut probes = ContainerProbes::new(&c);
    assert_eq!(probes.due(t(0), t(0)), vec![ProbeKind::Startup]);
    assert!(!probes.verdicts().started && !probes.verdicts().ready);
    probes
        .get_mut(ProbeKind::Startup)
        .expect("startup")
        .record(Outcome::Success, t(0));
    assert!(probes.verdicts().started);
    assert_eq!(
        probes.due(t(0), t(0)),
        vec![ProbeKind::Liveness, ProbeKind::Readiness]
    );

    let mut failing = ContainerProbes::new(&c);
    let s = failing.get_mut(ProbeKind::Startup).expect("startup");
    s.record(Outcome::Failure, t(0));
    s.record(Outcome::Failure, t(1));
    assert!(
        failing.verdicts().kill,
        "startup failing past its threshold restarts"
    );
    assert!(failing.due(t(0), t(100)).is_empty());
    assert_eq!(failing.next_wake(t(0)), None);
}
