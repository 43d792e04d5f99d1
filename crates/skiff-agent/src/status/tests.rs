//! Tests for the pod status computation: phases, reasons, conditions, probes, transition times.

use super::*;
use crate::labels::Identity;
use crate::plan::{Failure, ProbeVerdicts};
use serde_json::json;

fn t(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + seconds).expect("valid timestamp")
}

fn pod(spec: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "u1"},
        "spec": spec,
    }))
    .expect("valid pod")
}

fn container(kind: Kind, name: &str, attempt: u32, state: ContainerState) -> ObservedContainer {
    ObservedContainer {
        id: format!("{}-{name}-{attempt}", kind.as_label()),
        identity: Identity {
            node: "n1".into(),
            pod_uid: "u1".into(),
            namespace: "default".into(),
            pod_name: "web".into(),
            container_name: name.into(),
            kind,
            attempt,
            sandbox_id: (kind != Kind::Sandbox).then(|| "sandbox-POD-0".to_string()),
            spec_hash: None,
            grace_seconds: None,
        },
        image: "img:1".into(),
        image_id: "sha256:feed".into(),
        state,
        ip: (kind == Kind::Sandbox).then(|| "10.42.3.7".to_string()),
        pid: None,
    }
}

fn sandbox() -> ObservedContainer {
    container(
        Kind::Sandbox,
        "POD",
        0,
        ContainerState::Running { started_at: t(0) },
    )
}

fn exited(code: i64, at: i64, oom: bool) -> ContainerState {
    ContainerState::Exited {
        exit_code: code,
        started_at: Some(t(at - 1)),
        finished_at: t(at),
        oom_killed: oom,
        error: None,
    }
}

fn compute_with(
    p: &Pod,
    observed: &[ObservedContainer],
    memory: &PodMemory,
    waiting: &BTreeMap<String, Waiting>,
) -> PodStatus {
    compute(&Input {
        pod: p,
        observed,
        memory,
        waiting,
        host_ip: "192.0.2.2",
        now: t(100),
    })
}

fn cond(status: &PodStatus, kind: &str) -> String {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == kind)
        .map(|c| c.status.clone())
        .unwrap_or_default()
}

#[test]
fn a_running_pod_is_ready_with_its_ip() {
    let p = pod(json!({"containers": [{"name": "main", "image": "img:1"}]}));
    let observed = [
        sandbox(),
        container(
            Kind::App,
            "main",
            0,
            ContainerState::Running { started_at: t(5) },
        ),
    ];
    let s = compute_with(&p, &observed, &PodMemory::default(), &BTreeMap::new());
    assert_eq!(s.phase.as_deref(), Some("Running"));
    assert_eq!(s.pod_ip.as_deref(), Some("10.42.3.7"));
    assert_eq!(s.host_ip.as_deref(), Some("192.0.2.2"));
    for c in [
        "PodReadyToStartContainers",
        "Initialized",
        "ContainersReady",
        "Ready",
        "PodScheduled",
    ] {
        assert_eq!(cond(&s, c), "True", "{c}");
    }
    let cs = &s.container_statuses.as_ref().expect("statuses")[0];
    assert!(cs.ready);
    assert_eq!(
        cs.container_id.as_deref(),
        Some("docker://container-main-0")
    );
    assert_eq!(cs.restart_count, 0);
    assert_eq!(s.qos_class.as_deref(), Some("BestEffort"));
    assert_eq!(s.start_time, Some(Time(t(100))));
}

#[test]
fn crash_loop_shows_waiting_with_the_last_termination() {
    let p = pod(json!({"containers": [{"name": "main", "image": "img:1"}]}));
    let observed = [
        sandbox(),
        container(Kind::App, "main", 2, exited(1, 50, false)),
        container(Kind::App, "main", 1, exited(1, 30, false)),
    ];
    let waiting = BTreeMap::from([(
        "main".to_string(),
        Waiting {
            reason: "CrashLoopBackOff".into(),
            message: "back-off 20s restarting failed container=main".into(),
        },
    )]);
    let s = compute_with(&p, &observed, &PodMemory::default(), &waiting);
    let cs = &s.container_statuses.as_ref().expect("statuses")[0];
    assert_eq!(cs.restart_count, 2);
    let state = cs.state.as_ref().expect("state");
    assert_eq!(
        state.waiting.as_ref().and_then(|w| w.reason.as_deref()),
        Some("CrashLoopBackOff")
    );
    let last = cs
        .last_state
        .as_ref()
        .and_then(|l| l.terminated.as_ref())
        .expect("last terminated");
    assert_eq!((last.exit_code, last.reason.as_deref()), (1, Some("Error")));
    assert_eq!(
        s.phase.as_deref(),
        Some("Running"),
        "a crash-looping pod with Always is Running"
    );
    assert_eq!(cond(&s, "Ready"), "False");
}

#[test]
fn termination_reasons_and_terminal_phases() {
    let cases = [
        ("Never", 0, false, "Completed", "Succeeded"),
        ("Never", 2, false, "Error", "Failed"),
        ("Never", 137, true, "OOMKilled", "Failed"),
        ("OnFailure", 0, false, "Completed", "Succeeded"),
    ];
    for (policy, code, oom, reason, phase) in cases {
        let p = pod(
            json!({"restartPolicy": policy, "containers": [{"name": "main", "image": "img:1"}]}),
        );
        let observed = [
            sandbox(),
            container(Kind::App, "main", 0, exited(code, 40, oom)),
        ];
        let s = compute_with(&p, &observed, &PodMemory::default(), &BTreeMap::new());
        let cs = &s.container_statuses.as_ref().expect("statuses")[0];
        let term = cs
            .state
            .as_ref()
            .and_then(|st| st.terminated.as_ref())
            .expect("terminated");
        assert_eq!(term.reason.as_deref(), Some(reason), "{policy} {code}");
        assert_eq!(term.exit_code as i64, code);
        assert_eq!(s.phase.as_deref(), Some(phase), "{policy} {code}");
    }
}

#[test]
fn pending_while_initializing() {
    let p = pod(json!({
        "initContainers": [{"name": "setup", "image": "img:1"}],
        "containers": [{"name": "main", "image": "img:1"}],
    }));
    let observed = [
        sandbox(),
        container(
            Kind::Init,
            "setup",
            0,
            ContainerState::Running { started_at: t(3) },
        ),
    ];
    let waiting = BTreeMap::from([(
        "main".to_string(),
        Waiting {
            reason: "PodInitializing".into(),
            message: String::new(),
        },
    )]);
    let s = compute_with(&p, &observed, &PodMemory::default(), &waiting);
    assert_eq!(s.phase.as_deref(), Some("Pending"));
    assert_eq!(cond(&s, "Initialized"), "False");
    let main = &s.container_statuses.as_ref().expect("statuses")[0];
    assert_eq!(
        main.state
            .as_ref()
            .and_then(|st| st.waiting.as_ref())
            .and_then(|w| w.reason.as_deref()),
        Some("PodInitializing")
    );

    let observed = [
        sandbox(),
        container(Kind::Init, "setup", 0, exited(0, 4, false)),
        container(
            Kind::App,
            "main",
            0,
            ContainerState::Running { started_at: t(5) },
        ),
    ];
    let s = compute_with(&p, &observed, &PodMemory::default(), &BTreeMap::new());
    assert_eq!(cond(&s, "Initialized"), "True");
    let init = &s.init_container_statuses.as_ref().expect("init statuses")[0];
    assert_eq!(
        init.state
            .as_ref()
            .and_then(|st| st.terminated.as_ref())
            .and_then(|t| t.reason.as_deref()),
        Some("Completed")
    );
}

#[test]
fn readiness_and_startup_probes_gate_ready_and_started() {
    let p = pod(json!({"containers": [{
        "name": "main", "image": "img:1",
        "readinessProbe": {"exec": {"command": ["true"]}},
        "startupProbe": {"exec": {"command": ["true"]}},
    }]}));
    let observed = [
        sandbox(),
        container(
            Kind::App,
            "main",
            0,
            ContainerState::Running { started_at: t(5) },
        ),
    ];
    let mut memory = PodMemory::default();
    let s = compute_with(&p, &observed, &memory, &BTreeMap::new());
    let cs = &s.container_statuses.as_ref().expect("statuses")[0];
    assert_eq!((cs.ready, cs.started), (false, Some(false)));
    memory.probes.insert(
        "container-main-0".into(),
        ProbeVerdicts {
            ready: true,
            started: true,
            kill: false,
        },
    );
    let s = compute_with(&p, &observed, &memory, &BTreeMap::new());
    let cs = &s.container_statuses.as_ref().expect("statuses")[0];
    assert_eq!((cs.ready, cs.started), (true, Some(true)));
    assert_eq!(cond(&s, "Ready"), "True");
}

#[test]
fn start_failures_show_as_waiting_reasons() {
    let p = pod(json!({"containers": [{"name": "main", "image": "img:1"}]}));
    let mut memory = PodMemory::default();
    memory.failures.insert(
        "main".into(),
        Failure {
            reason: "CreateContainerConfigError".into(),
            message: "configmap \"cfg\" not found".into(),
            at: t(2),
            fresh: true,
        },
    );
    let s = compute_with(&p, &[sandbox()], &memory, &BTreeMap::new());
    let w = s.container_statuses.as_ref().expect("statuses")[0]
        .state
        .as_ref()
        .and_then(|st| st.waiting.clone())
        .expect("waiting");
    assert_eq!(w.reason.as_deref(), Some("CreateContainerConfigError"));
    assert_eq!(s.phase.as_deref(), Some("Pending"));
}

#[test]
fn transition_times_are_kept_while_a_condition_holds() {
    let mut p = pod(json!({"containers": [{"name": "main", "image": "img:1"}]}));
    let observed = [
        sandbox(),
        container(
            Kind::App,
            "main",
            0,
            ContainerState::Running { started_at: t(5) },
        ),
    ];
    p.status = Some(PodStatus {
        conditions: Some(vec![PodCondition {
            type_: "Ready".into(),
            status: "True".into(),
            last_transition_time: Some(Time(t(7))),
            ..Default::default()
        }]),
        start_time: Some(Time(t(1))),
        ..Default::default()
    });
    let s = compute_with(&p, &observed, &PodMemory::default(), &BTreeMap::new());
    let ready = s
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready")
        .expect("Ready");
    assert_eq!(ready.last_transition_time, Some(Time(t(7))));
    assert_eq!(s.start_time, Some(Time(t(1))));
}

#[test]
fn host_network_pods_use_the_host_ip() {
    let p = pod(json!({"hostNetwork": true, "containers": [{"name": "main", "image": "img:1"}]}));
    let s = compute_with(&p, &[sandbox()], &PodMemory::default(), &BTreeMap::new());
    assert_eq!(s.pod_ip.as_deref(), Some("192.0.2.2"));
}

#[test]
fn qos_classes() {
    let with = |resources: serde_json::Value| {
        let p = pod(json!({"containers": [{"name": "m", "image": "i", "resources": resources}]}));
        qos_class(p.spec.as_ref().expect("spec"))
    };
    assert_eq!(with(json!({})), "BestEffort");
    assert_eq!(
        with(json!({"limits": {"cpu": "1", "memory": "1Gi"}})),
        "Guaranteed"
    );
    assert_eq!(with(json!({"requests": {"cpu": "100m"}})), "Burstable");
}

#[test]
fn a_status_fed_back_as_the_old_one_computes_the_same_and_keeps_the_bindings_time() {
    let mut p = pod(json!({"containers": [{"name": "main", "image": "img:1"}]}));
    // The binding's condition, as the API server wrote it.
    p.status = Some(PodStatus {
        conditions: Some(vec![PodCondition {
            type_: "PodScheduled".into(),
            status: "True".into(),
            last_transition_time: Some(Time(t(1))),
            ..Default::default()
        }]),
        ..Default::default()
    });
    let observed = [
        sandbox(),
        container(
            Kind::App,
            "main",
            0,
            ContainerState::Running { started_at: t(5) },
        ),
    ];
    let memory = PodMemory::default();
    let waiting = BTreeMap::new();
    let first = compute_with(&p, &observed, &memory, &waiting);
    let scheduled = |s: &PodStatus| {
        s.conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "PodScheduled")
            .and_then(|c| c.last_transition_time.clone())
    };
    assert_eq!(scheduled(&first), Some(Time(t(1))));
    // The worker keeps what it wrote as the pod's status; a later resync must find nothing
    // to write (it used to drop PodScheduled, then add it back with a new time, forever).
    p.status = Some(first.clone());
    let later = compute(&Input {
        pod: &p,
        observed: &observed,
        memory: &memory,
        waiting: &waiting,
        host_ip: "192.0.2.2",
        now: t(200),
    });
    assert_eq!(later, first);
}
