//! Table-style tests for the pod sync planner, over hand-built observed containers and fixed
//! clocks.

use super::*;
use crate::labels::Identity;
use serde_json::json;

const UID: &str = "uid-1";

fn t(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + seconds).expect("valid timestamp")
}

fn pod(spec: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default", "uid": UID},
        "spec": spec,
    }))
    .expect("valid pod")
}

fn simple_pod(policy: &str) -> Pod {
    pod(json!({
        "restartPolicy": policy,
        "containers": [{"name": "main", "image": "img:1"}],
    }))
}

struct C {
    kind: Kind,
    name: &'static str,
    attempt: u32,
    sandbox: &'static str,
    state: ContainerState,
    image: &'static str,
}

fn running(since: i64) -> ContainerState {
    ContainerState::Running {
        started_at: t(since),
    }
}

fn exited(code: i64, at: i64) -> ContainerState {
    ContainerState::Exited {
        exit_code: code,
        started_at: Some(t(at - 1)),
        finished_at: t(at),
        oom_killed: false,
        error: None,
    }
}

fn observed(list: &[C]) -> Vec<ObservedContainer> {
    list.iter()
        .map(|c| {
            let id = format!("{}-{}-{}", c.kind.as_label(), c.name, c.attempt);
            ObservedContainer {
                id: if c.kind == Kind::Sandbox {
                    c.sandbox.to_string()
                } else {
                    id
                },
                identity: Identity {
                    node: "n1".into(),
                    pod_uid: UID.into(),
                    namespace: "default".into(),
                    pod_name: "web".into(),
                    container_name: c.name.into(),
                    kind: c.kind,
                    attempt: c.attempt,
                    sandbox_id: (c.kind != Kind::Sandbox).then(|| c.sandbox.to_string()),
                    spec_hash: None,
                    grace_seconds: Some(30),
                },
                image: c.image.into(),
                image_id: "sha256:abc".into(),
                state: c.state.clone(),
                ip: (c.kind == Kind::Sandbox).then(|| "10.42.0.5".to_string()),
                pid: None,
            }
        })
        .collect()
}

fn sandbox(attempt: u32, id: &'static str, state: ContainerState) -> C {
    C {
        kind: Kind::Sandbox,
        name: "POD",
        attempt,
        sandbox: id,
        state,
        image: "skiff/sandbox:1",
    }
}

fn app(name: &'static str, attempt: u32, state: ContainerState) -> C {
    C {
        kind: Kind::App,
        name,
        attempt,
        sandbox: "sb0",
        state,
        image: "img:1",
    }
}

fn init(name: &'static str, attempt: u32, state: ContainerState) -> C {
    C {
        kind: Kind::Init,
        name,
        attempt,
        sandbox: "sb0",
        state,
        image: "img:1",
    }
}

fn images_present() -> HashMap<String, bool> {
    HashMap::from([("img:1".to_string(), true)])
}

fn run(pod: &Pod, list: &[C], memory: &PodMemory, now: i64) -> Plan {
    let observed = observed(list);
    let images = images_present();
    plan_pod(&Input {
        pod,
        observed: &observed,
        memory,
        images: &images,
        gone: false,
        now: t(now),
    })
}

fn starts(plan: &Plan) -> Vec<(String, Kind, u32)> {
    plan.actions
        .iter()
        .filter_map(|a| match a {
            RuntimeAction::StartContainer {
                name,
                kind,
                attempt,
                ..
            } => Some((name.clone(), *kind, *attempt)),
            _ => None,
        })
        .collect()
}

fn stops(plan: &Plan) -> Vec<(String, StopReason)> {
    plan.actions
        .iter()
        .filter_map(|a| match a {
            RuntimeAction::StopContainer { id, reason, .. } => Some((id.clone(), *reason)),
            _ => None,
        })
        .collect()
}

fn removes(plan: &Plan) -> Vec<String> {
    plan.actions
        .iter()
        .filter_map(|a| match a {
            RuntimeAction::RemoveContainer { id } => Some(id.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_new_pod_gets_a_sandbox_first() {
    let plan = run(&simple_pod("Always"), &[], &PodMemory::default(), 0);
    assert_eq!(
        plan.actions,
        vec![RuntimeAction::CreateSandbox { attempt: 0 }]
    );
    assert_eq!(plan.waiting["main"].reason, "ContainerCreating");
}

#[test]
fn app_containers_start_in_a_running_sandbox() {
    let p = pod(json!({"containers": [
        {"name": "a", "image": "img:1"}, {"name": "b", "image": "img:1"}]}));
    let plan = run(
        &p,
        &[sandbox(0, "sb0", running(0))],
        &PodMemory::default(),
        1,
    );
    assert_eq!(
        starts(&plan),
        vec![("a".into(), Kind::App, 0), ("b".into(), Kind::App, 0)]
    );
}

#[test]
fn running_pod_needs_nothing() {
    let plan = run(
        &simple_pod("Always"),
        &[sandbox(0, "sb0", running(0)), app("main", 0, running(1))],
        &PodMemory::default(),
        100,
    );
    assert_eq!(plan, Plan::default());
}

#[test]
fn init_containers_run_one_at_a_time_in_order() {
    let p = pod(json!({
        "initContainers": [{"name": "i1", "image": "img:1"}, {"name": "i2", "image": "img:1"}],
        "containers": [{"name": "main", "image": "img:1"}],
    }));
    let memory = PodMemory::default();
    let sb = || sandbox(0, "sb0", running(0));
    let plan = run(&p, &[sb()], &memory, 1);
    assert_eq!(starts(&plan), vec![("i1".into(), Kind::Init, 0)]);
    assert_eq!(plan.waiting["main"].reason, "PodInitializing");

    let plan = run(&p, &[sb(), init("i1", 0, running(1))], &memory, 2);
    assert!(starts(&plan).is_empty(), "waits for i1 to finish");

    let plan = run(&p, &[sb(), init("i1", 0, exited(0, 2))], &memory, 3);
    assert_eq!(starts(&plan), vec![("i2".into(), Kind::Init, 0)]);

    let plan = run(
        &p,
        &[
            sb(),
            init("i1", 0, exited(0, 2)),
            init("i2", 0, exited(0, 3)),
        ],
        &memory,
        4,
    );
    assert_eq!(starts(&plan), vec![("main".into(), Kind::App, 0)]);
}

#[test]
fn failed_init_container_restarts_with_backoff_unless_never() {
    let spec = |policy: &str| {
        pod(json!({
            "restartPolicy": policy,
            "initContainers": [{"name": "i1", "image": "img:1"}],
            "containers": [{"name": "main", "image": "img:1"}],
        }))
    };
    let list = [sandbox(0, "sb0", running(0)), init("i1", 0, exited(1, 5))];
    let plan = run(&spec("Always"), &list, &PodMemory::default(), 6);
    assert_eq!(starts(&plan), vec![("i1".into(), Kind::Init, 1)]);
    assert_eq!(plan.backoff_updates.len(), 1);

    // With a back-off entry from the previous restart, the next one waits.
    let memory = PodMemory {
        backoff: HashMap::from([(
            "i1".to_string(),
            Backoff {
                delay: backoff::INITIAL,
                last_update: t(4),
            },
        )]),
        ..Default::default()
    };
    let plan = run(&spec("OnFailure"), &list, &memory, 6);
    assert!(starts(&plan).is_empty());
    assert_eq!(plan.waiting["i1"].reason, "CrashLoopBackOff");

    let plan = run(&spec("Never"), &list, &PodMemory::default(), 6);
    assert!(starts(&plan).is_empty());
    assert!(is_terminal(&spec("Never"), &observed(&list)));
    assert_eq!(
        stops(&plan),
        vec![("sb0".into(), StopReason::PodTerminal)],
        "a failed pod loses its sandbox"
    );
}

#[test]
fn crash_loop_backoff_grows() {
    let p = simple_pod("Always");
    let mut memory = PodMemory::default();
    let mut now = 10;
    let mut delays = Vec::new();
    for attempt in 0..4u32 {
        // The container crashed at `now`.
        let crashed_at = now;
        let list = [
            sandbox(0, "sb0", running(0)),
            app("main", attempt, exited(1, crashed_at)),
        ];
        let plan = run(&p, &list, &memory, now);
        let restart_at = if starts(&plan).is_empty() {
            assert_eq!(plan.waiting["main"].reason, "CrashLoopBackOff");
            let delay = memory.backoff["main"].delay.as_secs() as i64;
            delays.push(delay);
            let again = run(&p, &list, &memory, crashed_at + delay - 1);
            assert!(
                starts(&again).is_empty(),
                "still backing off one second early"
            );
            crashed_at + delay
        } else {
            delays.push(0);
            now
        };
        let plan = run(&p, &list, &memory, restart_at);
        assert_eq!(starts(&plan), vec![("main".into(), Kind::App, attempt + 1)]);
        for (name, entry) in plan.backoff_updates {
            memory.backoff.insert(name, entry);
        }
        now = restart_at + 1;
    }
    assert_eq!(delays, vec![0, 10, 20, 40]);
}

#[test]
fn restart_policies() {
    let cases = [
        ("Always", 0, true),
        ("Always", 1, true),
        ("OnFailure", 0, false),
        ("OnFailure", 2, true),
        ("Never", 0, false),
        ("Never", 1, false),
    ];
    for (policy, code, restarts) in cases {
        let p = simple_pod(policy);
        let list = [
            sandbox(0, "sb0", running(0)),
            app("main", 0, exited(code, 5)),
        ];
        let plan = run(&p, &list, &PodMemory::default(), 6);
        assert_eq!(!starts(&plan).is_empty(), restarts, "{policy} exit {code}");
        if !restarts {
            assert!(
                is_terminal(&p, &observed(&list)),
                "{policy} exit {code} is terminal"
            );
            assert_eq!(stops(&plan), vec![("sb0".into(), StopReason::PodTerminal)]);
        }
    }
}

#[test]
fn failed_liveness_stops_the_container() {
    let list = [sandbox(0, "sb0", running(0)), app("main", 0, running(1))];
    let memory = PodMemory {
        probes: HashMap::from([(
            "container-main-0".to_string(),
            ProbeVerdicts {
                ready: false,
                started: true,
                kill: true,
            },
        )]),
        ..Default::default()
    };
    let plan = run(&simple_pod("Always"), &list, &memory, 50);
    assert_eq!(
        stops(&plan),
        vec![("container-main-0".into(), StopReason::Unhealthy)]
    );
    match &plan.actions[0] {
        RuntimeAction::StopContainer {
            pre_stop, grace, ..
        } => {
            assert!(*pre_stop);
            assert_eq!(*grace, Duration::from_secs(30));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn a_changed_image_restarts_the_container() {
    let mut p = simple_pod("Always");
    if let Some(spec) = p.spec.as_mut() {
        spec.containers[0].image = Some("img:2".into());
    }
    let list = [sandbox(0, "sb0", running(0)), app("main", 0, running(1))];
    let plan = run(&p, &list, &PodMemory::default(), 5);
    assert_eq!(
        stops(&plan),
        vec![("container-main-0".into(), StopReason::SpecChanged)]
    );
}

#[test]
fn deletion_stops_within_grace_then_removes_everything() {
    let mut p = simple_pod("Always");
    p.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t(10)));
    p.metadata.deletion_grace_period_seconds = Some(7);
    let list = [
        sandbox(0, "sb0", running(0)),
        app("main", 0, exited(1, 3)),
        app("main", 1, running(4)),
    ];
    let plan = run(&p, &list, &PodMemory::default(), 11);
    assert_eq!(
        plan.actions[..2],
        [
            RuntimeAction::StopContainer {
                id: "container-main-1".into(),
                name: "main".into(),
                kind: Kind::App,
                grace: Duration::from_secs(7),
                pre_stop: true,
                reason: StopReason::PodDeleted,
            },
            RuntimeAction::StopContainer {
                id: "sb0".into(),
                name: "POD".into(),
                kind: Kind::Sandbox,
                grace: Duration::from_secs(2),
                pre_stop: false,
                reason: StopReason::PodDeleted,
            },
        ]
    );
    assert_eq!(removes(&plan).len(), 3);
    assert_eq!(
        plan.actions.last(),
        Some(&RuntimeAction::ReleasePodResources)
    );
    assert!(plan.finished);

    let empty = run(&p, &[], &PodMemory::default(), 12);
    assert_eq!(empty.actions, vec![RuntimeAction::ReleasePodResources]);
    assert!(empty.finished);
}

#[test]
fn a_pod_gone_from_the_api_is_torn_down_without_hooks() {
    let p = simple_pod("Always");
    let observed = observed(&[sandbox(0, "sb0", running(0)), app("main", 0, running(1))]);
    let images = images_present();
    let plan = plan_pod(&Input {
        pod: &p,
        observed: &observed,
        memory: &PodMemory::default(),
        images: &images,
        gone: true,
        now: t(5),
    });
    assert!(plan.finished);
    assert!(
        plan.actions
            .iter()
            .all(|a| !matches!(a, RuntimeAction::StopContainer { pre_stop: true, .. }))
    );
    assert_eq!(removes(&plan).len(), 2);
}

#[test]
fn a_dead_sandbox_is_replaced_and_containers_start_over() {
    let list = [sandbox(0, "sb0", exited(0, 20)), app("main", 2, running(1))];
    let plan = run(&simple_pod("Always"), &list, &PodMemory::default(), 21);
    assert_eq!(
        stops(&plan),
        vec![("container-main-2".into(), StopReason::SandboxGone)]
    );
    assert_eq!(removes(&plan), vec!["sb0".to_string()]);
    assert_eq!(
        plan.actions.last(),
        Some(&RuntimeAction::CreateSandbox { attempt: 1 })
    );

    // In the new sandbox the container starts again with its restart count carried on.
    let list = [
        sandbox(1, "sb1", running(22)),
        app("main", 2, exited(137, 21)),
    ];
    let plan = run(&simple_pod("Always"), &list, &PodMemory::default(), 23);
    assert_eq!(starts(&plan), vec![("main".into(), Kind::App, 3)]);
}

#[test]
fn old_instances_beyond_the_previous_one_are_removed() {
    let list = [
        sandbox(0, "sb0", running(0)),
        app("main", 0, exited(1, 2)),
        app("main", 1, exited(1, 4)),
        app("main", 2, running(5)),
        app("gone", 0, exited(0, 3)),
    ];
    let plan = run(&simple_pod("Always"), &list, &PodMemory::default(), 6);
    let mut removed = removes(&plan);
    removed.sort();
    assert_eq!(
        removed,
        vec![
            "container-gone-0".to_string(),
            "container-main-0".to_string()
        ]
    );
}

#[test]
fn image_pull_policies() {
    let with = |policy: Option<&str>, image: &str| {
        let mut container = json!({"name": "main", "image": image});
        if let Some(policy) = policy {
            container["imagePullPolicy"] = json!(policy);
        }
        pod(json!({"containers": [container]}))
    };
    let sb = [sandbox(0, "sb0", running(0))];
    let observed = observed(&sb);
    let decide = |p: &Pod, present: bool, memory: &PodMemory| {
        let image = p
            .spec
            .as_ref()
            .and_then(|s| s.containers[0].image.clone())
            .unwrap_or_default();
        let images = HashMap::from([(image, present)]);
        plan_pod(&Input {
            pod: p,
            observed: &observed,
            memory,
            images: &images,
            gone: false,
            now: t(100),
        })
    };
    let none = PodMemory::default();
    let pulls = |plan: &Plan| {
        plan.actions.iter().find_map(|a| match a {
            RuntimeAction::StartContainer { pull, .. } => Some(*pull),
            _ => None,
        })
    };
    assert_eq!(
        pulls(&decide(&with(None, "img:1"), true, &none)),
        Some(false)
    );
    assert_eq!(
        pulls(&decide(&with(None, "img:1"), false, &none)),
        Some(true)
    );
    assert_eq!(
        pulls(&decide(&with(None, "img"), true, &none)),
        Some(true),
        "untagged means latest: Always"
    );
    assert_eq!(
        pulls(&decide(&with(None, "img:latest"), true, &none)),
        Some(true)
    );
    assert_eq!(
        pulls(&decide(&with(Some("Always"), "img:1"), true, &none)),
        Some(true)
    );
    assert_eq!(
        pulls(&decide(&with(Some("Never"), "img:1"), true, &none)),
        Some(false)
    );
    let never_absent = decide(&with(Some("Never"), "img:1"), false, &none);
    assert_eq!(pulls(&never_absent), None);
    assert_eq!(never_absent.waiting["main"].reason, "ErrImageNeverPull");

    // A failed pull: shown once as ErrImagePull, then ImagePullBackOff until the back-off ends.
    let mut failed = PodMemory::default();
    failed.pull_backoff.insert(
        "missing:1".into(),
        (
            Backoff {
                delay: backoff::INITIAL,
                last_update: t(95),
            },
            t(95),
        ),
    );
    failed.failures.insert(
        "main".into(),
        Failure {
            reason: "ErrImagePull".into(),
            message: "no registry".into(),
            at: t(95),
            fresh: true,
        },
    );
    let p = with(None, "missing:1");
    let plan = decide(&p, false, &failed);
    assert_eq!(pulls(&plan), None);
    assert_eq!(plan.waiting["main"].reason, "ErrImagePull");
    if let Some(f) = failed.failures.get_mut("main") {
        f.fresh = false;
    }
    let plan = decide(&p, false, &failed);
    assert_eq!(plan.waiting["main"].reason, "ImagePullBackOff");
    failed.pull_backoff.insert(
        "missing:1".into(),
        (
            Backoff {
                delay: backoff::INITIAL,
                last_update: t(80),
            },
            t(80),
        ),
    );
    assert_eq!(
        pulls(&decide(&p, false, &failed)),
        Some(true),
        "retries after the back-off"
    );
}

#[test]
fn a_created_but_never_started_container_is_replaced() {
    let list = [
        sandbox(0, "sb0", running(0)),
        app("main", 0, ContainerState::Created),
    ];
    let plan = run(&simple_pod("Always"), &list, &PodMemory::default(), 3);
    assert_eq!(removes(&plan), vec!["container-main-0".to_string()]);
    assert_eq!(starts(&plan), vec![("main".into(), Kind::App, 1)]);
}

#[test]
fn only_images_no_running_container_uses_are_inspected() {
    let two = pod(json!({
        "initContainers": [{"name": "setup", "image": "init:1"}],
        "containers": [
            {"name": "main", "image": "img:1"},
            {"name": "side", "image": "img:1"},
            {"name": "other", "image": "img:2"},
        ],
    }));
    let c = |kind, name, state, image| C {
        kind,
        name,
        attempt: 0,
        sandbox: "sb",
        state,
        image,
    };
    let cases: Vec<(Vec<C>, Vec<&str>)> = vec![
        (vec![], vec!["init:1", "img:1", "img:2"]),
        // The sandbox's image says nothing about the pod's images.
        (
            vec![c(Kind::Sandbox, "POD", running(0), "img:1")],
            vec!["init:1", "img:1", "img:2"],
        ),
        (
            vec![
                c(Kind::Sandbox, "POD", running(0), "pause"),
                c(Kind::Init, "setup", exited(0, 2), "init:1"),
                c(Kind::App, "main", running(3), "img:1"),
            ],
            vec!["init:1", "img:2"],
        ),
        // An exited container proves nothing: its image may be gone.
        (
            vec![c(Kind::App, "other", exited(1, 5), "img:2")],
            vec!["init:1", "img:1", "img:2"],
        ),
        (
            vec![
                c(Kind::App, "side", running(3), "img:1"),
                c(Kind::App, "other", running(3), "img:2"),
                c(Kind::Init, "setup", running(1), "init:1"),
            ],
            vec![],
        ),
    ];
    for (list, want) in cases {
        let got = images_to_inspect(&two, &observed(&list));
        assert_eq!(
            got,
            want,
            "observed {:?}",
            list.iter().map(|c| c.name).collect::<Vec<_>>()
        );
    }
}
