//! The pod sync planner: a pure function from a pod, the containers observed for it and the
//! worker's memory (back-off, probe results) to the runtime actions that move it one step towards
//! its desired state, plus the waiting reasons of containers it chose not to start.
//!
//! Order of concerns, as in the kubelet: deletion first (stop app and init containers within the
//! grace period, then the sandbox, then remove everything); a terminal pod only loses its
//! sandbox; otherwise the sandbox must run (a dead sandbox is replaced and the pod's containers
//! start over in it); init containers run one at a time, in order, to completion; then every app
//! container runs per its restart policy with back-off. Old instances beyond the previous one of
//! each container are removed (the previous one serves `logs --previous`).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::jiff::Timestamp;

use crate::backoff::{self, Backoff};
use crate::labels::Kind;
use crate::pod::{self, PullPolicy, RestartPolicy};
use crate::runtime::{ContainerState, ObservedContainer};

/// Why a container is not running, as shown in its status (`state.waiting.reason`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waiting {
    pub reason: String,
    pub message: String,
}

/// A failure the worker met while carrying out an action, kept until the container starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub reason: String,
    pub message: String,
    pub at: Timestamp,
    /// Not yet shown in a status write (an `ErrImagePull` is shown once before the back-off).
    pub fresh: bool,
}

/// Probe verdicts for one container instance (by container id).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeVerdicts {
    pub ready: bool,
    pub started: bool,
    /// Liveness or startup failed past its threshold: the container must be restarted.
    pub kill: bool,
}

/// What a pod worker remembers between passes (everything else comes from Docker labels).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodMemory {
    /// Restart back-off per container name.
    pub backoff: HashMap<String, Backoff>,
    /// Pull back-off per image, with the time of the last failed pull.
    pub pull_backoff: HashMap<String, (Backoff, Timestamp)>,
    /// The last failure starting each container (by name).
    pub failures: HashMap<String, Failure>,
    /// Probe verdicts by container id.
    pub probes: HashMap<String, ProbeVerdicts>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    PodDeleted,
    PodTerminal,
    SandboxGone,
    Unhealthy,
    SpecChanged,
    Unknown,
}

#[derive(Clone, Debug, PartialEq)]
pub enum RuntimeAction {
    /// Create and start a new sandbox (network namespace holder).
    CreateSandbox {
        attempt: u32,
    },
    /// Create and start a container in the current sandbox (pulling its image first if `pull`),
    /// then run its postStart hook.
    StartContainer {
        name: String,
        kind: Kind,
        attempt: u32,
        pull: bool,
    },
    /// Run the preStop hook (app containers), send SIGTERM, SIGKILL after `grace`.
    StopContainer {
        id: String,
        name: String,
        kind: Kind,
        grace: Duration,
        pre_stop: bool,
        reason: StopReason,
    },
    RemoveContainer {
        id: String,
    },
    /// Every container is gone: unmount and remove the pod's volumes and directory.
    ReleasePodResources,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub actions: Vec<RuntimeAction>,
    /// Back-off entries to store before carrying out the actions.
    pub backoff_updates: Vec<(String, Backoff)>,
    /// Containers left waiting, with the reason their status shows.
    pub waiting: BTreeMap<String, Waiting>,
    /// The pod is being deleted (or is gone) and nothing of it is left on the node.
    pub finished: bool,
}

/// The planner's inputs.
pub struct Input<'a> {
    pub pod: &'a Pod,
    /// Every container of this pod (by uid) the runtime reports.
    pub observed: &'a [ObservedContainer],
    pub memory: &'a PodMemory,
    /// Whether each image the pod's containers use is present locally.
    pub images: &'a HashMap<String, bool>,
    /// The pod no longer exists in the API (force-deleted, or deleted while the agent was down).
    pub gone: bool,
    pub now: Timestamp,
}

/// Instances of one container name, newest attempt first.
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

fn grace(pod: &Pod) -> Duration {
    Duration::from_secs(pod::grace_seconds(pod).max(0) as u64)
}

/// The grace period for a pod that vanished from the API: what its containers were created with.
fn grace_of_gone(observed: &[ObservedContainer]) -> Duration {
    let seconds = observed
        .iter()
        .filter_map(|c| c.identity.grace_seconds)
        .max()
        .unwrap_or(pod::DEFAULT_GRACE_SECONDS);
    Duration::from_secs(seconds.max(0) as u64)
}

/// Stops everything, then removes everything.
fn plan_teardown(input: &Input<'_>, grace: Duration, reason: StopReason, plan: &mut Plan) {
    let running: Vec<_> = input
        .observed
        .iter()
        .filter(|c| c.state.is_running())
        .collect();
    for c in running.iter().filter(|c| c.identity.kind != Kind::Sandbox) {
        plan.actions.push(RuntimeAction::StopContainer {
            id: c.id.clone(),
            name: c.identity.container_name.clone(),
            kind: c.identity.kind,
            grace,
            pre_stop: c.identity.kind == Kind::App && !input.gone,
            reason,
        });
    }
    for c in running.iter().filter(|c| c.identity.kind == Kind::Sandbox) {
        plan.actions.push(RuntimeAction::StopContainer {
            id: c.id.clone(),
            name: c.identity.container_name.clone(),
            kind: Kind::Sandbox,
            grace: Duration::from_secs(2),
            pre_stop: false,
            reason,
        });
    }
    for c in input.observed {
        plan.actions
            .push(RuntimeAction::RemoveContainer { id: c.id.clone() });
    }
    plan.actions.push(RuntimeAction::ReleasePodResources);
    plan.finished = true;
}

/// Whether the pod has run to completion: no container will ever run again.
pub fn is_terminal(pod: &Pod, observed: &[ObservedContainer]) -> bool {
    if matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded") | Some("Failed")
    ) {
        return true;
    }
    let Some(spec) = pod.spec.as_ref() else {
        return true;
    };
    let policy = pod::restart_policy(spec);
    if policy == RestartPolicy::Always {
        return false;
    }
    // A failed init container with restartPolicy Never fails the pod.
    if policy == RestartPolicy::Never {
        for init in spec.init_containers.iter().flatten() {
            if let Some(latest) = instances(observed, Kind::Init, &init.name).first()
                && let ContainerState::Exited { exit_code, .. } = latest.state
                && exit_code != 0
            {
                return true;
            }
        }
    }
    if spec.containers.is_empty() {
        return false;
    }
    spec.containers.iter().all(|c| {
        match instances(observed, Kind::App, &c.name)
            .first()
            .map(|i| &i.state)
        {
            Some(ContainerState::Exited { exit_code, .. }) => {
                !pod::should_restart(policy, *exit_code)
            }
            _ => false,
        }
    })
}

/// The images of the pod's containers that no running container of the pod was created from,
/// once each, in spec order (init containers first): only these need asking the engine about.
/// An image a running container uses is present (the engine keeps it while it is used).
pub fn images_to_inspect(pod: &Pod, observed: &[ObservedContainer]) -> Vec<String> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    let mut images: Vec<String> = Vec::new();
    for c in spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
    {
        let image = c.image.clone().unwrap_or_default();
        let in_use = observed
            .iter()
            .any(|o| o.state.is_running() && o.identity.kind != Kind::Sandbox && o.image == image);
        if !in_use && !images.contains(&image) {
            images.push(image);
        }
    }
    images
}

/// Decides how to start `container` given its image: `Ok(pull)` to start, `Err(waiting)` not to.
fn image_decision(input: &Input<'_>, container: &Container) -> Result<bool, Waiting> {
    let image = container.image.clone().unwrap_or_default();
    let present = input.images.get(&image).copied().unwrap_or(false);
    let policy = pod::pull_policy(container);
    if policy == PullPolicy::Never {
        return if present {
            Ok(false)
        } else {
            Err(Waiting {
                reason: "ErrImageNeverPull".into(),
                message: format!(
                    "Container image \"{image}\" is not present with pull policy of Never"
                ),
            })
        };
    }
    if policy == PullPolicy::IfNotPresent && present {
        return Ok(false);
    }
    if let Some((entry, failed_at)) = input.memory.pull_backoff.get(&image)
        && backoff::in_backoff(Some(entry), *failed_at, input.now).is_some()
    {
        let fresh_failure = input
            .memory
            .failures
            .get(&container.name)
            .filter(|f| f.fresh && f.reason == "ErrImagePull");
        return Err(match fresh_failure {
            Some(failure) => Waiting {
                reason: failure.reason.clone(),
                message: failure.message.clone(),
            },
            None => Waiting {
                reason: "ImagePullBackOff".into(),
                message: format!("Back-off pulling image \"{image}\""),
            },
        });
    }
    Ok(true)
}

/// Plans the start of a container (or records why it waits).
fn start(input: &Input<'_>, container: &Container, kind: Kind, attempt: u32, plan: &mut Plan) {
    match image_decision(input, container) {
        Ok(pull) => plan.actions.push(RuntimeAction::StartContainer {
            name: container.name.clone(),
            kind,
            attempt,
            pull,
        }),
        Err(waiting) => {
            plan.waiting.insert(container.name.clone(), waiting);
        }
    }
}

/// Decides about an exited instance that may restart: start now (recording the back-off) or
/// wait in CrashLoopBackOff.
fn restart_after_exit(
    input: &Input<'_>,
    container: &Container,
    kind: Kind,
    latest: &ObservedContainer,
    finished_at: Timestamp,
    plan: &mut Plan,
) {
    let entry = input.memory.backoff.get(&container.name);
    if let Some(until) = backoff::in_backoff(entry, finished_at, input.now) {
        let delay = entry.map(|e| e.delay.as_secs()).unwrap_or(0);
        let _ = until;
        plan.waiting.insert(
            container.name.clone(),
            Waiting {
                reason: "CrashLoopBackOff".into(),
                message: format!(
                    "back-off {} restarting failed container={} pod={}",
                    humanize(delay),
                    container.name,
                    pod::display(input.pod)
                ),
            },
        );
        return;
    }
    let before = plan.actions.len();
    start(input, container, kind, latest.identity.attempt + 1, plan);
    if plan.actions.len() > before {
        plan.backoff_updates.push((
            container.name.clone(),
            backoff::next(entry, finished_at, input.now),
        ));
    }
}

/// `10s`, `1m20s`, `5m0s` as Go prints durations.
fn humanize(seconds: u64) -> String {
    if seconds < 60 {
        format!("{seconds}s")
    } else {
        format!("{}m{}s", seconds / 60, seconds % 60)
    }
}

/// Removes what is no longer needed: instances older than the previous one of each container,
/// running duplicates and containers the spec does not name.
fn plan_cleanup(input: &Input<'_>, sandbox_id: &str, plan: &mut Plan) {
    let Some(spec) = input.pod.spec.as_ref() else {
        return;
    };
    let mut by_name: HashMap<(Kind, &str), Vec<&ObservedContainer>> = HashMap::new();
    for c in input
        .observed
        .iter()
        .filter(|c| c.identity.kind != Kind::Sandbox)
    {
        by_name
            .entry((c.identity.kind, c.identity.container_name.as_str()))
            .or_default()
            .push(c);
    }
    let in_spec = |kind: Kind, name: &str| match kind {
        Kind::Init => spec
            .init_containers
            .iter()
            .flatten()
            .any(|c| c.name == name),
        Kind::App => spec.containers.iter().any(|c| c.name == name),
        Kind::Sandbox => true,
    };
    for ((kind, name), mut list) in by_name {
        list.sort_by_key(|c| std::cmp::Reverse(c.identity.attempt));
        let wanted = in_spec(kind, name);
        for (index, c) in list.iter().enumerate() {
            let current = c.identity.sandbox_id.as_deref() == Some(sandbox_id);
            let stale_runner = c.state.is_running() && (!wanted || index > 0 || !current);
            if stale_runner {
                plan.actions.push(RuntimeAction::StopContainer {
                    id: c.id.clone(),
                    name: name.to_string(),
                    kind,
                    grace: grace(input.pod),
                    pre_stop: false,
                    reason: if current {
                        StopReason::Unknown
                    } else {
                        StopReason::SandboxGone
                    },
                });
            }
            if !wanted || index >= 2 || matches!(c.state, ContainerState::Created) && index > 0 {
                plan.actions
                    .push(RuntimeAction::RemoveContainer { id: c.id.clone() });
            }
        }
    }
}

pub fn plan_pod(input: &Input<'_>) -> Plan {
    let mut plan = Plan::default();
    let pod = input.pod;
    if input.gone {
        plan_teardown(
            input,
            grace_of_gone(input.observed),
            StopReason::PodDeleted,
            &mut plan,
        );
        return plan;
    }
    let Some(spec) = pod.spec.as_ref() else {
        plan_teardown(input, grace(pod), StopReason::PodDeleted, &mut plan);
        return plan;
    };
    if pod.metadata.deletion_timestamp.is_some() {
        plan_teardown(input, grace(pod), StopReason::PodDeleted, &mut plan);
        return plan;
    }

    let mut sandboxes: Vec<_> = input
        .observed
        .iter()
        .filter(|c| c.identity.kind == Kind::Sandbox)
        .collect();
    sandboxes.sort_by_key(|c| std::cmp::Reverse(c.identity.attempt));

    if is_terminal(pod, input.observed) {
        for c in input.observed.iter().filter(|c| c.state.is_running()) {
            plan.actions.push(RuntimeAction::StopContainer {
                id: c.id.clone(),
                name: c.identity.container_name.clone(),
                kind: c.identity.kind,
                grace: if c.identity.kind == Kind::Sandbox {
                    Duration::from_secs(2)
                } else {
                    grace(pod)
                },
                pre_stop: false,
                reason: StopReason::PodTerminal,
            });
        }
        return plan;
    }

    let current = sandboxes.first().copied().filter(|s| s.state.is_running());
    let Some(sandbox) = current else {
        // No running sandbox: whatever still runs lost its network; start over in a new one.
        for c in input
            .observed
            .iter()
            .filter(|c| c.state.is_running() && c.identity.kind != Kind::Sandbox)
        {
            plan.actions.push(RuntimeAction::StopContainer {
                id: c.id.clone(),
                name: c.identity.container_name.clone(),
                kind: c.identity.kind,
                grace: grace(pod),
                pre_stop: false,
                reason: StopReason::SandboxGone,
            });
        }
        for old in &sandboxes {
            plan.actions
                .push(RuntimeAction::RemoveContainer { id: old.id.clone() });
        }
        let attempt = sandboxes
            .first()
            .map(|s| s.identity.attempt + 1)
            .unwrap_or(0);
        plan.actions.push(RuntimeAction::CreateSandbox { attempt });
        for c in &spec.containers {
            plan.waiting.insert(
                c.name.clone(),
                Waiting {
                    reason: "ContainerCreating".into(),
                    message: String::new(),
                },
            );
        }
        return plan;
    };
    for old in sandboxes.iter().skip(1) {
        if old.state.is_running() {
            plan.actions.push(RuntimeAction::StopContainer {
                id: old.id.clone(),
                name: old.identity.container_name.clone(),
                kind: Kind::Sandbox,
                grace: Duration::from_secs(2),
                pre_stop: false,
                reason: StopReason::SandboxGone,
            });
        }
        plan.actions
            .push(RuntimeAction::RemoveContainer { id: old.id.clone() });
    }
    let sandbox_id = sandbox.id.as_str();
    let policy = pod::restart_policy(spec);
    let in_sandbox = |c: &&ObservedContainer| c.identity.sandbox_id.as_deref() == Some(sandbox_id);

    // Init containers, in order, each to completion. An app container already started in this
    // sandbox means initialization finished earlier (its init instances may have been removed).
    let apps_started = input
        .observed
        .iter()
        .any(|c| c.identity.kind == Kind::App && in_sandbox(&c));
    let mut initialized = true;
    if !apps_started {
        for init in spec.init_containers.iter().flatten() {
            let all = instances(input.observed, Kind::Init, &init.name);
            let latest_here = all.iter().find(|c| in_sandbox(c)).copied();
            let next_attempt = all.first().map(|c| c.identity.attempt + 1).unwrap_or(0);
            match latest_here.map(|c| &c.state) {
                Some(ContainerState::Exited { exit_code: 0, .. }) => continue,
                None => start(input, init, Kind::Init, next_attempt, &mut plan),
                Some(ContainerState::Running { .. }) => {}
                Some(ContainerState::Created) => {
                    let created = latest_here.map(|c| c.id.clone()).unwrap_or_default();
                    plan.actions
                        .push(RuntimeAction::RemoveContainer { id: created });
                    start(input, init, Kind::Init, next_attempt, &mut plan);
                }
                Some(ContainerState::Exited {
                    exit_code,
                    finished_at,
                    ..
                }) => {
                    if pod::should_restart(policy, *exit_code)
                        && let Some(latest) = latest_here
                    {
                        restart_after_exit(
                            input,
                            init,
                            Kind::Init,
                            latest,
                            *finished_at,
                            &mut plan,
                        );
                    }
                }
            }
            initialized = false;
            break;
        }
    }
    if !initialized {
        for c in &spec.containers {
            plan.waiting.entry(c.name.clone()).or_insert(Waiting {
                reason: "PodInitializing".into(),
                message: String::new(),
            });
        }
        plan_cleanup(input, sandbox_id, &mut plan);
        return plan;
    }

    for container in &spec.containers {
        let all = instances(input.observed, Kind::App, &container.name);
        let latest = all.first().copied();
        let latest_here = latest.filter(|c| in_sandbox(c));
        let next_attempt = latest.map(|c| c.identity.attempt + 1).unwrap_or(0);
        let wanted_image = container.image.as_deref().unwrap_or("");
        match latest_here {
            Some(c) => match &c.state {
                ContainerState::Running { .. } => {
                    let verdicts = input.memory.probes.get(&c.id);
                    let reason = if !c.image.is_empty() && c.image != wanted_image {
                        Some(StopReason::SpecChanged)
                    } else if verdicts.map(|v| v.kill).unwrap_or(false) {
                        Some(StopReason::Unhealthy)
                    } else {
                        None
                    };
                    if let Some(reason) = reason {
                        plan.actions.push(RuntimeAction::StopContainer {
                            id: c.id.clone(),
                            name: container.name.clone(),
                            kind: Kind::App,
                            grace: grace(pod),
                            pre_stop: true,
                            reason,
                        });
                    }
                }
                ContainerState::Created => {
                    plan.actions
                        .push(RuntimeAction::RemoveContainer { id: c.id.clone() });
                    start(input, container, Kind::App, next_attempt, &mut plan);
                }
                ContainerState::Exited {
                    exit_code,
                    finished_at,
                    ..
                } => {
                    if pod::should_restart(policy, *exit_code) {
                        restart_after_exit(input, container, Kind::App, c, *finished_at, &mut plan);
                    }
                }
            },
            None => {
                // Never ran in this sandbox. One that ran to its end in an earlier sandbox and
                // would not restart stays finished.
                let finished_before = match latest.map(|c| &c.state) {
                    Some(ContainerState::Exited { exit_code, .. }) => {
                        !pod::should_restart(policy, *exit_code)
                    }
                    _ => false,
                };
                if !finished_before {
                    start(input, container, Kind::App, next_attempt, &mut plan);
                }
            }
        }
    }
    plan_cleanup(input, sandbox_id, &mut plan);
    plan
}

#[cfg(test)]
mod tests;
