//! The pod status the agent reports, computed purely from the pod, the containers observed for
//! it, the worker's memory and the plan's waiting reasons: phase (as the kubelet's `getPhase`),
//! the conditions the kubelet owns, container statuses with state, last state, restart count and
//! reasons, pod and host IPs, start time and QoS class.

mod qos;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, ContainerState as ApiState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::labels::Kind;
use crate::plan::{PodMemory, Waiting};
use crate::pod::{self, RestartPolicy};
use crate::runtime::{ContainerState, ObservedContainer};

pub use qos::qos_class;

/// The condition types this agent owns (others, e.g. `DisruptionTarget`, belong to other writers).
pub const OWNED_CONDITIONS: [&str; 4] = [
    "PodReadyToStartContainers",
    "Initialized",
    "ContainersReady",
    "Ready",
];

pub struct Input<'a> {
    pub pod: &'a Pod,
    pub observed: &'a [ObservedContainer],
    pub memory: &'a PodMemory,
    pub waiting: &'a BTreeMap<String, Waiting>,
    pub host_ip: &'a str,
    pub now: Timestamp,
}

fn instances<'a>(
    observed: &'a [ObservedContainer],
    kind: Kind,
    name: &str,
) -> Vec<&'a ObservedContainer> {
    let mut found: Vec<_> = observed
        .iter()
        .filter(|c| c.identity.kind == kind && c.identity.container_name == name)
        .collect();
    found.sort_by_key(|c| std::cmp::Reverse(c.identity.attempt));
    found
}

fn terminated(c: &ObservedContainer) -> Option<ContainerStateTerminated> {
    match &c.state {
        ContainerState::Exited {
            exit_code,
            started_at,
            finished_at,
            oom_killed,
            error,
        } => Some(ContainerStateTerminated {
            exit_code: i32::try_from(*exit_code).unwrap_or(i32::MAX),
            reason: Some(
                if *oom_killed {
                    "OOMKilled"
                } else if error.is_some() && started_at.is_none() {
                    "StartError"
                } else if *exit_code == 0 {
                    "Completed"
                } else {
                    "Error"
                }
                .to_string(),
            ),
            message: error.clone(),
            started_at: started_at.map(Time),
            finished_at: Some(Time(*finished_at)),
            container_id: Some(format!("docker://{}", c.id)),
            signal: None,
        }),
        _ => None,
    }
}

fn has_probe(container: &Container, kind: &str) -> bool {
    match kind {
        "readiness" => container.readiness_probe.is_some(),
        _ => container.startup_probe.is_some(),
    }
}

fn waiting_state(w: &Waiting) -> ApiState {
    ApiState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(w.reason.clone()),
            message: (!w.message.is_empty()).then(|| w.message.clone()),
        }),
        ..Default::default()
    }
}

fn container_status(input: &Input<'_>, container: &Container, kind: Kind) -> ContainerStatus {
    let all = instances(input.observed, kind, &container.name);
    let latest = all.first().copied();
    let previous = all.get(1).copied();
    let last_state = |c: Option<&ObservedContainer>| {
        c.and_then(terminated).map(|t| ApiState {
            terminated: Some(t),
            ..Default::default()
        })
    };
    let failure = input.memory.failures.get(&container.name).map(|f| Waiting {
        reason: f.reason.clone(),
        message: f.message.clone(),
    });
    let default_waiting = Waiting {
        reason: "ContainerCreating".into(),
        message: String::new(),
    };
    let mut ready = false;
    let mut started = false;
    let (state, last) = match latest.map(|c| &c.state) {
        Some(ContainerState::Running { started_at }) => {
            let verdicts = latest.and_then(|c| input.memory.probes.get(&c.id));
            started =
                !has_probe(container, "startup") || verdicts.map(|v| v.started).unwrap_or(false);
            ready = started
                && (!has_probe(container, "readiness")
                    || verdicts.map(|v| v.ready).unwrap_or(false));
            (
                ApiState {
                    running: Some(ContainerStateRunning {
                        started_at: Some(Time(*started_at)),
                    }),
                    ..Default::default()
                },
                last_state(previous),
            )
        }
        Some(ContainerState::Exited { .. }) => {
            match input.waiting.get(&container.name).or(failure.as_ref()) {
                Some(w) => (waiting_state(w), last_state(latest)),
                None => (last_state(latest).unwrap_or_default(), last_state(previous)),
            }
        }
        Some(ContainerState::Created) | None => {
            let w = input
                .waiting
                .get(&container.name)
                .or(failure.as_ref())
                .unwrap_or(&default_waiting);
            (
                waiting_state(w),
                last_state(
                    previous
                        .or(latest)
                        .filter(|c| !matches!(c.state, ContainerState::Created)),
                ),
            )
        }
    };
    ContainerStatus {
        name: container.name.clone(),
        image: container.image.clone().unwrap_or_default(),
        image_id: latest
            .map(|c| format!("docker://{}", c.image_id))
            .unwrap_or_default(),
        container_id: latest.map(|c| format!("docker://{}", c.id)),
        restart_count: latest
            .map(|c| i32::try_from(c.identity.attempt).unwrap_or(i32::MAX))
            .unwrap_or(0),
        ready,
        started: Some(started),
        state: Some(state),
        last_state: Some(last.unwrap_or_default()),
        ..Default::default()
    }
}

/// The kubelet's `getPhase`, over the computed container statuses.
fn phase(
    pod: &Pod,
    init_statuses: &[ContainerStatus],
    statuses: &[ContainerStatus],
    initialized: bool,
) -> String {
    let policy = pod
        .spec
        .as_ref()
        .map(pod::restart_policy)
        .unwrap_or(RestartPolicy::Always);
    if let Some(previous) = pod.status.as_ref().and_then(|s| s.phase.as_deref())
        && (previous == "Succeeded" || previous == "Failed")
    {
        return previous.to_string();
    }
    let init_failed = init_statuses.iter().any(|s| {
        s.state
            .as_ref()
            .and_then(|st| st.terminated.as_ref())
            .map(|t| t.exit_code != 0)
            .unwrap_or(false)
    });
    if init_failed && policy == RestartPolicy::Never {
        return "Failed".into();
    }
    if !initialized {
        return "Pending".into();
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for s in statuses {
        let state = s.state.clone().unwrap_or_default();
        if state.running.is_some() {
            running += 1;
        } else if let Some(t) = state.terminated {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if s
            .last_state
            .as_ref()
            .and_then(|l| l.terminated.as_ref())
            .is_some()
        {
            stopped += 1;
        } else {
            waiting += 1;
        }
    }
    if waiting > 0 {
        "Pending"
    } else if running > 0 {
        "Running"
    } else if stopped > 0 {
        match policy {
            RestartPolicy::Always => "Running",
            _ if stopped == succeeded => "Succeeded",
            RestartPolicy::Never => "Failed",
            RestartPolicy::OnFailure => "Running",
        }
    } else {
        "Pending"
    }
    .to_string()
}

fn condition(
    old: Option<&PodStatus>,
    kind: &str,
    ok: bool,
    reason: Option<String>,
    message: Option<String>,
    now: Timestamp,
) -> PodCondition {
    let status = if ok { "True" } else { "False" }.to_string();
    let previous = old
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == kind));
    let last_transition_time = match previous {
        Some(p) if p.status == status => p.last_transition_time.clone(),
        _ => Some(Time(now)),
    };
    PodCondition {
        type_: kind.to_string(),
        status,
        reason: if ok { None } else { reason },
        message: if ok { None } else { message },
        last_transition_time,
        last_probe_time: None,
        observed_generation: None,
    }
}

pub fn compute(input: &Input<'_>) -> PodStatus {
    let pod = input.pod;
    let old = pod.status.as_ref();
    let empty = Vec::new();
    let spec_containers = pod.spec.as_ref().map(|s| &s.containers).unwrap_or(&empty);
    let spec_inits = pod
        .spec
        .as_ref()
        .and_then(|s| s.init_containers.as_ref())
        .unwrap_or(&empty);
    let init_statuses: Vec<_> = spec_inits
        .iter()
        .map(|c| container_status(input, c, Kind::Init))
        .collect();
    let statuses: Vec<_> = spec_containers
        .iter()
        .map(|c| container_status(input, c, Kind::App))
        .collect();

    let mut sandboxes: Vec<_> = input
        .observed
        .iter()
        .filter(|c| c.identity.kind == Kind::Sandbox)
        .collect();
    sandboxes.sort_by_key(|c| std::cmp::Reverse(c.identity.attempt));
    let sandbox = sandboxes.first().copied().filter(|s| s.state.is_running());
    let apps_started = sandbox
        .map(|sb| {
            input.observed.iter().any(|c| {
                c.identity.kind == Kind::App
                    && c.identity.sandbox_id.as_deref() == Some(sb.id.as_str())
            })
        })
        .unwrap_or(false);
    let incomplete_inits: Vec<String> = init_statuses
        .iter()
        .filter(|s| {
            !s.state
                .as_ref()
                .and_then(|st| st.terminated.as_ref())
                .map(|t| t.exit_code == 0)
                .unwrap_or(false)
        })
        .map(|s| s.name.clone())
        .collect();
    let initialized = incomplete_inits.is_empty() || apps_started;
    let phase = phase(pod, &init_statuses, &statuses, initialized);
    let unready: Vec<String> = statuses
        .iter()
        .filter(|s| !s.ready)
        .map(|s| s.name.clone())
        .collect();
    let completed = phase == "Succeeded";
    let gates_ok = pod
        .spec
        .as_ref()
        .and_then(|s| s.readiness_gates.as_ref())
        .map(|gates| {
            gates.iter().all(|g| {
                old.and_then(|s| s.conditions.as_ref())
                    .and_then(|c| c.iter().find(|c| c.type_ == g.condition_type))
                    .map(|c| c.status == "True")
                    .unwrap_or(false)
            })
        })
        .unwrap_or(true);
    let not_ready_reason = if completed {
        "PodCompleted"
    } else {
        "ContainersNotReady"
    };
    let unready_message = format!("containers with unready status: [{}]", unready.join(" "));
    let mut conditions = vec![
        condition(
            old,
            "PodReadyToStartContainers",
            sandbox.is_some(),
            None,
            None,
            input.now,
        ),
        condition(
            old,
            "Initialized",
            initialized,
            Some("ContainersNotInitialized".into()),
            Some(format!(
                "containers with incomplete status: [{}]",
                incomplete_inits.join(" ")
            )),
            input.now,
        ),
        condition(
            old,
            "Ready",
            unready.is_empty() && gates_ok && !statuses.is_empty(),
            Some(not_ready_reason.into()),
            Some(unready_message.clone()),
            input.now,
        ),
        condition(
            old,
            "ContainersReady",
            unready.is_empty() && !statuses.is_empty(),
            Some(not_ready_reason.into()),
            Some(unready_message),
            input.now,
        ),
    ];
    if completed {
        // A completed pod's Initialized stays True (it did initialize).
        conditions[1] = condition(old, "Initialized", true, None, None, input.now);
    }
    // Always present, with the binding's transition time when there is one: leaving it out
    // when the old status had it made the worker's own copy (what it wrote) lose it, so the
    // next computation added it again with a new time, and every resync wrote the pod.
    conditions.push(condition(old, "PodScheduled", true, None, None, input.now));
    let pod_ip = if pod::host_network(pod) {
        Some(input.host_ip.to_string())
    } else {
        sandbox.and_then(|s| s.ip.clone())
    };
    PodStatus {
        phase: Some(phase),
        conditions: Some(conditions),
        host_ip: Some(input.host_ip.to_string()),
        host_ips: Some(vec![HostIP {
            ip: input.host_ip.to_string(),
        }]),
        pod_ip: pod_ip.clone(),
        pod_ips: pod_ip.map(|ip| vec![PodIP { ip }]),
        start_time: old
            .and_then(|s| s.start_time.clone())
            .or(Some(Time(input.now))),
        container_statuses: Some(statuses),
        init_container_statuses: (!init_statuses.is_empty()).then_some(init_statuses),
        qos_class: pod.spec.as_ref().map(qos_class),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;
