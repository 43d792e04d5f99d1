//! Carrying out a plan's actions on the runtime: sandbox creation (then hairpin mode on the
//! bridge ports), container creation (image pull, the pod's resolv.conf, container config,
//! postStart), stops (preStop within the grace period, then SIGTERM and SIGKILL), removals and
//! the release of the pod's volumes. Failures are recorded in the worker's memory, where the
//! planner and the status computation see them.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::future::join_all;
use k8s_openapi::api::core::v1::Container;
use k8s_openapi::jiff::Timestamp;

use super::{Worker, current_sandbox, hooks};
use crate::backoff;
use crate::container_config::{self, Objects, VolumeSource};
use crate::images;
use crate::labels::Kind;
use crate::plan::{Failure, RuntimeAction, StopReason};
use crate::pod;
use crate::pod_network;
use crate::runtime::{self, ContainerSpec, ObservedContainer};

pub struct Outcome {
    pub executed: usize,
    pub failed: bool,
}

fn spec_container<'a>(worker: &'a Worker, kind: Kind, name: &str) -> Option<&'a Container> {
    let spec = worker.pod.spec.as_ref()?;
    match kind {
        Kind::Init => spec
            .init_containers
            .iter()
            .flatten()
            .find(|c| c.name == name),
        _ => spec.containers.iter().find(|c| c.name == name),
    }
}

fn fail(worker: &mut Worker, name: &str, reason: &str, message: String) {
    tracing::warn!(pod = %pod::display(&worker.pod), container = name, reason, %message, "starting a container failed");
    let event_reason = match reason {
        "PostStartHookError" => "FailedPostStartHook",
        _ => "Failed",
    };
    worker.event(true, event_reason, &format!("Error: {message}"));
    worker.memory.failures.insert(
        name.to_string(),
        Failure {
            reason: reason.to_string(),
            message,
            at: Timestamp::now(),
            fresh: true,
        },
    );
}

/// Creates (replacing a leftover of the same name) and starts a container.
async fn create_and_start(
    runtime: &dyn runtime::ContainerRuntime,
    spec: &ContainerSpec,
) -> runtime::Result<String> {
    let id = match runtime.create_container(spec).await {
        Ok(id) => id,
        Err(runtime::Error::Conflict(message)) => {
            // A container with this name exists. Ours (a half-finished attempt of this very pod)
            // is replaced; another pod's of the same name (a deleted pod still being torn down
            // within its grace period) is left alone: the start is retried after it is gone.
            let ours = spec.labels.get(crate::labels::POD_UID);
            match runtime.inspect_container(&spec.name).await? {
                Some(existing) if Some(&existing.identity.pod_uid) == ours => {
                    runtime.remove_container(&existing.id).await?;
                    runtime.create_container(spec).await?
                }
                Some(_) => return Err(runtime::Error::Conflict(message)),
                None => runtime.create_container(spec).await?,
            }
        }
        Err(e) => return Err(e),
    };
    runtime.start_container(&id).await?;
    Ok(id)
}

async fn create_sandbox(worker: &mut Worker, attempt: u32) -> bool {
    if attempt > 0 {
        worker.event(
            false,
            "SandboxChanged",
            "Pod sandbox changed, it will be killed and re-created.",
        );
    }
    let settings = worker.deps.settings.clone();
    let runtime = worker.deps.runtime.clone();
    let spec = container_config::sandbox_spec(
        &worker.pod,
        attempt,
        &settings.network,
        &settings.sandbox_image,
        &settings.node,
        pod::grace_seconds(&worker.pod),
    );
    let mut created = create_and_start(runtime.as_ref(), &spec).await;
    // The agent builds its sandbox image at start; it is built again only when a create finds
    // it gone (asking before every sandbox would cost each pod an image inspection).
    if matches!(created, Err(runtime::Error::NotFound(_)))
        && settings.sandbox_image == images::SANDBOX_IMAGE
    {
        if let Err(e) = images::ensure(
            runtime.as_ref(),
            &[images::LocalImage::Sandbox],
            images::BUSYBOX_PATH,
        )
        .await
        {
            tracing::warn!(error = %e, "building the sandbox image failed");
            return false;
        }
        created = create_and_start(runtime.as_ref(), &spec).await;
    }
    match created {
        Ok(_) => {
            // The sandbox's veth is on the bridge once it has started: let the pod reach
            // itself through its Service before any of its containers runs.
            if !pod::host_network(&worker.pod)
                && let Some(bridge) = &settings.bridge
                && let Err(e) =
                    pod_network::ensure_hairpin(Path::new(pod_network::SYS_CLASS_NET), bridge)
            {
                tracing::warn!(pod = %pod::display(&worker.pod), error = %e, "turning on hairpin mode failed");
            }
            true
        }
        Err(e) => {
            tracing::warn!(pod = %pod::display(&worker.pod), error = %e, "creating the pod sandbox failed");
            false
        }
    }
}

/// Writes the pod's resolv.conf, computed from its spec, the cluster DNS and the node's
/// resolv.conf, unless the file already holds that text (replaced by rename, so running
/// containers keep the one they started with). Returns its path.
async fn write_resolv_conf(worker: &Worker) -> Result<PathBuf, String> {
    let settings = worker.deps.settings.clone();
    let node_conf = match tokio::fs::read_to_string(&settings.node_resolv_conf).await {
        Ok(text) => skiff_core::resolv_conf::parse(&text),
        Err(e) => {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %settings.node_resolv_conf.display(), error = %e, "reading the node's resolv.conf failed; pods get no node resolvers");
            }
            Default::default()
        }
    };
    let text = container_config::resolv_conf(&worker.pod, &settings.cluster, &node_conf);
    let path = settings.resolv_conf_path(&worker.uid());
    let target = path.clone();
    let written = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        if std::fs::read_to_string(&target).is_ok_and(|current| current == text) {
            return Ok(());
        }
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let temporary = target.with_extension("conf.tmp");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&temporary)?;
        file.write_all(text.as_bytes())?;
        std::fs::rename(&temporary, &target)
    })
    .await;
    match written {
        Ok(Ok(())) => Ok(path),
        Ok(Err(e)) => Err(format!(
            "writing the pod's resolv.conf {}: {e}",
            path.display()
        )),
        Err(e) => Err(format!("writing the pod's resolv.conf panicked: {e}")),
    }
}

#[allow(clippy::too_many_arguments)] // the action plus the sync pass's shared inputs
async fn start_container(
    worker: &mut Worker,
    name: &str,
    kind: Kind,
    attempt: u32,
    pull: bool,
    observed: &[ObservedContainer],
    objects: &Objects,
    volumes: &HashMap<String, VolumeSource>,
) -> bool {
    let Some(container) = spec_container(worker, kind, name).cloned() else {
        return false;
    };
    let runtime = worker.deps.runtime.clone();
    let image = container.image.clone().unwrap_or_default();
    if pull {
        worker.event(false, "Pulling", &format!("Pulling image \"{image}\""));
        // Skiff's own images are built from the node's busybox, never pulled (no registry).
        let pulled = match images::LocalImage::from_tag(&image) {
            Some(local) => images::ensure(runtime.as_ref(), &[local], images::BUSYBOX_PATH)
                .await
                .map_err(|e| e.to_string()),
            None => runtime.pull_image(&image).await.map_err(|e| e.to_string()),
        };
        if let Err(e) = pulled {
            let now = Timestamp::now();
            let entry = worker.memory.pull_backoff.get(&image).map(|(b, _)| *b);
            let failed_at = worker
                .memory
                .pull_backoff
                .get(&image)
                .map(|(_, at)| *at)
                .unwrap_or(now);
            let next = backoff::next(entry.as_ref(), failed_at, now);
            worker
                .memory
                .pull_backoff
                .insert(image.clone(), (next, now));
            fail(worker, name, "ErrImagePull", e);
            return false;
        }
        worker.memory.pull_backoff.remove(&image);
        worker.event(
            false,
            "Pulled",
            &format!("Successfully pulled image \"{image}\""),
        );
    } else if attempt == 0 {
        worker.event(
            false,
            "Pulled",
            &format!("Container image \"{image}\" already present on machine"),
        );
    }
    let Some(sandbox) = current_sandbox(observed) else {
        return false;
    };
    let resolv_conf = match write_resolv_conf(worker).await {
        Ok(path) => path.to_string_lossy().into_owned(),
        Err(message) => {
            fail(worker, name, "CreateContainerConfigError", message);
            return false;
        }
    };
    let mut node = worker.deps.settings.node.clone();
    node.pod_ip = if pod::host_network(&worker.pod) {
        Some(node.host_ip.clone())
    } else {
        sandbox.ip.clone()
    };
    let ctx = container_config::Context {
        node: &node,
        cluster: &worker.deps.settings.cluster,
        objects,
        volumes,
        sandbox_id: &sandbox.id,
        grace_seconds: pod::grace_seconds(&worker.pod),
        resolv_conf: Some(&resolv_conf),
    };
    let spec = match container_config::container_spec(&worker.pod, &container, kind, attempt, &ctx)
    {
        Ok(spec) => spec,
        Err(e) => {
            fail(worker, name, "CreateContainerConfigError", e.to_string());
            return false;
        }
    };
    let id = match create_and_start(runtime.as_ref(), &spec).await {
        Ok(id) => id,
        Err(e) => {
            fail(worker, name, "RunContainerError", e.to_string());
            return false;
        }
    };
    worker.memory.failures.remove(name);
    worker.event(false, "Created", &format!("Created container {name}"));
    worker.event(false, "Started", &format!("Started container {name}"));
    if attempt > 0
        && let Some(m) = &worker.deps.metrics
    {
        m.restarts_total.with_label_values(&["restart"]).inc();
    }
    if let Some(handler) = container
        .lifecycle
        .as_ref()
        .and_then(|l| l.post_start.as_ref())
    {
        let pod_ip = node.pod_ip.clone().unwrap_or_default();
        let deadline = Duration::from_secs(pod::grace_seconds(&worker.pod).max(1) as u64);
        if let Err(message) = hooks::run(
            runtime.as_ref(),
            handler,
            &container,
            &id,
            &pod_ip,
            deadline,
        )
        .await
        {
            tracing::warn!(pod = %pod::display(&worker.pod), container = name, %message, "postStart hook failed; killing the container");
            let _ = runtime.stop_container(&id, Duration::ZERO).await;
            fail(worker, name, "PostStartHookError", message);
            return false;
        }
    }
    true
}

struct StopJob {
    id: String,
    container: Option<Container>,
    grace: Duration,
    pre_stop: bool,
    reason: StopReason,
}

async fn stop(runtime: &dyn runtime::ContainerRuntime, job: StopJob, pod_ip: String) -> bool {
    let started = Instant::now();
    if job.pre_stop
        && let Some(container) = &job.container
        && let Some(handler) = container
            .lifecycle
            .as_ref()
            .and_then(|l| l.pre_stop.as_ref())
        && let Err(message) =
            hooks::run(runtime, handler, container, &job.id, &pod_ip, job.grace).await
    {
        tracing::info!(container = %container.name, %message, "preStop hook failed");
    }
    let remaining = job.grace.saturating_sub(started.elapsed());
    match runtime.stop_container(&job.id, remaining).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(id = %job.id, reason = ?job.reason, error = %e, "stopping a container failed");
            false
        }
    }
}

pub async fn execute(
    worker: &mut Worker,
    actions: &[RuntimeAction],
    observed: &[ObservedContainer],
    objects: &Objects,
    volumes: &HashMap<String, VolumeSource>,
    blocked: bool,
) -> super::actions::Outcome {
    let mut outcome = Outcome {
        executed: 0,
        failed: false,
    };
    let runtime = worker.deps.runtime.clone();
    let pod_ip = current_sandbox(observed)
        .and_then(|s| s.ip.clone())
        .unwrap_or_default();
    let mut index = 0;
    while index < actions.len() {
        // Consecutive stops of app/init containers run together (each within its own grace).
        let mut batch = Vec::new();
        while let Some(RuntimeAction::StopContainer {
            id,
            name,
            kind,
            grace,
            pre_stop,
            reason,
        }) = actions.get(index)
        {
            if *kind == Kind::Sandbox && !batch.is_empty() {
                break;
            }
            batch.push(StopJob {
                id: id.clone(),
                container: spec_container(worker, *kind, name).cloned(),
                grace: *grace,
                pre_stop: *pre_stop,
                reason: *reason,
            });
            index += 1;
            if *kind == Kind::Sandbox {
                break;
            }
        }
        if !batch.is_empty() {
            for job in &batch {
                if job.reason == StopReason::Unhealthy
                    && let Some(m) = &worker.deps.metrics
                {
                    m.restarts_total.with_label_values(&["unhealthy"]).inc();
                }
                if let Some(container) = &job.container {
                    let message = match job.reason {
                        StopReason::Unhealthy => format!(
                            "Container {} failed a liveness or startup probe, will be restarted",
                            container.name
                        ),
                        _ => format!("Stopping container {}", container.name),
                    };
                    worker.event(false, "Killing", &message);
                }
            }
            let results = join_all(
                batch
                    .into_iter()
                    .map(|job| stop(runtime.as_ref(), job, pod_ip.clone())),
            )
            .await;
            outcome.executed += results.len();
            outcome.failed |= results.iter().any(|ok| !ok);
            continue;
        }
        let Some(action) = actions.get(index) else {
            break;
        };
        index += 1;
        let ok = match action {
            RuntimeAction::CreateSandbox { attempt } => create_sandbox(worker, *attempt).await,
            RuntimeAction::StartContainer {
                name,
                kind,
                attempt,
                pull,
            } => {
                if blocked {
                    continue;
                }
                start_container(
                    worker, name, *kind, *attempt, *pull, observed, objects, volumes,
                )
                .await
            }
            RuntimeAction::RemoveContainer { id } => match runtime.remove_container(id).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(%id, error = %e, "removing a container failed");
                    false
                }
            },
            RuntimeAction::ReleasePodResources => {
                let dir = worker.deps.settings.pod_dir(&worker.uid());
                match tokio::task::spawn_blocking(move || crate::volumes::writer::release(&dir))
                    .await
                {
                    Ok(Ok(())) => true,
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "releasing the pod's volumes failed");
                        false
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "releasing the pod's volumes panicked");
                        false
                    }
                }
            }
            RuntimeAction::StopContainer { .. } => true,
        };
        outcome.executed += 1;
        outcome.failed |= !ok;
    }
    outcome
}
