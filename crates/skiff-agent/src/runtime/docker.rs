//! [`DockerRuntime`]: the [`ContainerRuntime`] over the Docker Engine API (bollard).
//!
//! Every call is timed into `kubelet_docker_operations_duration_seconds`. When the engine goes
//! away (a Docker restart) the client is rebuilt on the next failure, so the agent survives it;
//! the event stream simply ends and the caller subscribes again.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, EndpointSettings, ExecConfig, HostConfig, Ipam, IpamConfig,
    Mount as DockerMount, MountType, NetworkCreateRequest, NetworkingConfig,
};
use bollard::query_parameters as q;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::jiff::Timestamp;

use super::{
    ContainerRuntime, ContainerSpec, ContainerState, Error, Event, ExecSpec, LogOptions,
    NetworkMode, NetworkSpec, ObservedContainer, Output, Result, Session, Stats,
};
use crate::labels::Identity;
use crate::metrics::Metrics;
pub use bridge::bridge_name;
use oom::{OOM_REPORT_GRACE, oom_report_may_be_late};

const SOCKET: &str = "unix:///var/run/docker.sock";
const REQUEST_TIMEOUT_SECS: u64 = 120;

pub struct DockerRuntime {
    socket: String,
    version: bollard::ClientVersion,
    client: RwLock<Docker>,
    metrics: Option<Metrics>,
}

fn map_err(e: bollard::errors::Error) -> Error {
    use bollard::errors::Error as B;
    match e {
        B::DockerResponseServerError {
            status_code,
            message,
        } => match status_code {
            404 => Error::NotFound(message),
            409 => Error::Conflict(message),
            _ => Error::Engine(format!("{status_code}: {message}")),
        },
        B::IOError { .. }
        | B::HyperResponseError { .. }
        | B::HyperLegacyError { .. }
        | B::SocketNotFoundError(_)
        | B::RequestTimeoutError => Error::Unavailable(e.to_string()),
        other => Error::Engine(other.to_string()),
    }
}

pub(super) fn parse_time(value: Option<&str>) -> Option<Timestamp> {
    let value = value?;
    if value.starts_with("0001-") {
        return None;
    }
    value.parse().ok()
}

impl DockerRuntime {
    /// Connects to the engine at `socket` (`unix:///var/run/docker.sock` when `None`) and
    /// negotiates the API version.
    pub async fn connect(socket: Option<&str>, metrics: Option<Metrics>) -> Result<DockerRuntime> {
        let socket = socket.unwrap_or(SOCKET).to_string();
        let initial =
            Docker::connect_with_unix(&socket, REQUEST_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
                .map_err(map_err)?;
        let negotiated = initial.negotiate_version().await.map_err(map_err)?;
        let version = negotiated.client_version();
        Ok(DockerRuntime {
            socket,
            version,
            client: RwLock::new(negotiated),
            metrics,
        })
    }

    fn client(&self) -> Docker {
        match self.client.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Rebuilds the client after the engine went away (its pooled connections are dead).
    fn reconnect(&self) {
        if let Ok(fresh) =
            Docker::connect_with_unix(&self.socket, REQUEST_TIMEOUT_SECS, &self.version)
        {
            match self.client.write() {
                Ok(mut guard) => *guard = fresh,
                Err(poisoned) => *poisoned.into_inner() = fresh,
            }
        }
    }

    fn done<T>(&self, operation: &str, started: Instant, result: Result<T>) -> Result<T> {
        if let Some(metrics) = &self.metrics {
            metrics.observe_runtime_operation(operation, started.elapsed(), result.is_err());
        }
        if matches!(result, Err(Error::Unavailable(_))) {
            self.reconnect();
        }
        result
    }

    fn observed(
        &self,
        inspect: bollard::models::ContainerInspectResponse,
    ) -> Option<ObservedContainer> {
        let config = inspect.config.as_ref()?;
        let identity = Identity::from_labels(config.labels.as_ref()?)?;
        let state = inspect.state.as_ref();
        let running = state.and_then(|s| s.running).unwrap_or(false);
        let started_at = parse_time(state.and_then(|s| s.started_at.as_deref()));
        let finished_at = parse_time(state.and_then(|s| s.finished_at.as_deref()));
        let state_value = if running {
            ContainerState::Running {
                started_at: started_at.unwrap_or_else(Timestamp::now),
            }
        } else if let Some(finished_at) = finished_at {
            ContainerState::Exited {
                exit_code: state.and_then(|s| s.exit_code).unwrap_or(-1),
                started_at,
                finished_at,
                oom_killed: state.and_then(|s| s.oom_killed).unwrap_or(false),
                error: state
                    .and_then(|s| s.error.clone())
                    .filter(|e| !e.is_empty()),
            }
        } else {
            ContainerState::Created
        };
        let ip = inspect
            .network_settings
            .as_ref()
            .and_then(|n| n.networks.as_ref())
            .and_then(|networks| {
                networks
                    .values()
                    .filter_map(|e| e.ip_address.clone())
                    .find(|ip| !ip.is_empty())
            });
        Some(ObservedContainer {
            id: inspect.id.clone().unwrap_or_default(),
            identity,
            image: config.image.clone().unwrap_or_default(),
            image_id: inspect.image.clone().unwrap_or_default(),
            state: state_value,
            ip,
            pid: state.and_then(|s| s.pid).filter(|pid| *pid > 0),
        })
    }

    /// Inspects a container. A container that just died of SIGKILL under a memory limit is
    /// inspected again after a moment if Docker does not (yet) say it was OOM-killed: the
    /// engine handles the kernel's OOM event and the exit separately, and reporting "Error"
    /// before the OOM event lands would be a wrong reason for good.
    async fn inspect_raw(
        &self,
        id: &str,
    ) -> Result<Option<bollard::models::ContainerInspectResponse>> {
        let first = self.inspect_once(id).await?;
        match &first {
            Some(inspect) if oom_report_may_be_late(inspect, Timestamp::now()) => {
                tokio::time::sleep(OOM_REPORT_GRACE).await;
                Ok(self.inspect_once(id).await?.or(first))
            }
            _ => Ok(first),
        }
    }

    async fn inspect_once(
        &self,
        id: &str,
    ) -> Result<Option<bollard::models::ContainerInspectResponse>> {
        match self
            .client()
            .inspect_container(id, None::<q::InspectContainerOptions>)
            .await
        {
            Ok(inspect) => Ok(Some(inspect)),
            Err(e) => match map_err(e) {
                Error::NotFound(_) => Ok(None),
                other => Err(other),
            },
        }
    }
}

fn to_body(spec: &ContainerSpec) -> ContainerCreateBody {
    let network_mode = match &spec.network {
        Some(NetworkMode::Bridge { network }) => Some(network.clone()),
        Some(NetworkMode::Container { id }) => Some(format!("container:{id}")),
        Some(NetworkMode::Host) => Some("host".to_string()),
        None => None,
    };
    let networking_config = match &spec.network {
        Some(NetworkMode::Bridge { network }) => Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                network.clone(),
                EndpointSettings::default(),
            )])),
        }),
        _ => None,
    };
    let mounts: Vec<DockerMount> = spec
        .mounts
        .iter()
        .map(|m| DockerMount {
            target: Some(m.target.clone()),
            source: Some(m.source.clone()),
            typ: Some(MountType::BIND),
            read_only: Some(m.read_only),
            ..Default::default()
        })
        .collect();
    let non_empty = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    let resources = &spec.resources;
    ContainerCreateBody {
        hostname: spec.hostname.clone(),
        user: spec.user.clone(),
        tty: Some(spec.tty),
        open_stdin: Some(spec.stdin),
        stdin_once: Some(spec.stdin_once),
        attach_stdin: Some(false),
        attach_stdout: Some(false),
        attach_stderr: Some(false),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        cmd: spec.cmd.clone(),
        entrypoint: spec.entrypoint.clone(),
        image: Some(spec.image.clone()),
        working_dir: spec.working_dir.clone(),
        labels: Some(spec.labels.clone()),
        stop_signal: spec.stop_signal.clone(),
        host_config: Some(HostConfig {
            network_mode,
            mounts: Some(mounts),
            memory: resources.memory_limit_bytes,
            memory_swap: resources.memory_limit_bytes,
            cpu_quota: resources.cpu_quota_micros,
            cpu_period: resources.cpu_period_micros,
            cpu_shares: resources.cpu_shares,
            readonly_rootfs: Some(spec.read_only_rootfs),
            privileged: Some(spec.privileged),
            cap_add: non_empty(&spec.cap_add),
            cap_drop: non_empty(&spec.cap_drop),
            extra_hosts: non_empty(&spec.extra_hosts),
            ..Default::default()
        }),
        networking_config,
        ..Default::default()
    }
}

fn output_stream(
    stream: impl futures::Stream<Item = std::result::Result<LogOutput, bollard::errors::Error>>
    + Send
    + 'static,
) -> BoxStream<'static, Result<Output>> {
    stream
        .filter_map(|item| async move {
            match item {
                Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => {
                    Some(Ok(Output::Stdout(message)))
                }
                Ok(LogOutput::StdErr { message }) => Some(Ok(Output::Stderr(message))),
                Ok(LogOutput::StdIn { .. }) => None,
                Err(e) => Some(Err(map_err(e))),
            }
        })
        .boxed()
}

#[async_trait::async_trait]
impl ContainerRuntime for DockerRuntime {
    async fn version(&self) -> Result<String> {
        let started = Instant::now();
        let result = self
            .client()
            .version()
            .await
            .map_err(map_err)
            .map(|v| format!("docker://{}", v.version.unwrap_or_else(|| "unknown".into())));
        self.done("version", started, result)
    }

    async fn ensure_network(&self, spec: &NetworkSpec) -> Result<Option<String>> {
        let started = Instant::now();
        let client = self.client();
        let inspect = || async {
            let network = client
                .inspect_network(&spec.name, None::<q::InspectNetworkOptions>)
                .await
                .map_err(map_err)?;
            Ok::<_, Error>(bridge_name(
                network.driver.as_deref(),
                network.id.as_deref(),
                network.options.as_ref(),
            ))
        };
        let result = async {
            match inspect().await {
                Ok(bridge) => return Ok(bridge),
                Err(Error::NotFound(_)) => {}
                Err(other) => return Err(other),
            }
            let request = NetworkCreateRequest {
                name: spec.name.clone(),
                driver: Some("bridge".into()),
                ipam: Some(Ipam {
                    driver: Some("default".into()),
                    config: Some(vec![IpamConfig {
                        subnet: Some(spec.subnet.clone()),
                        gateway: Some(spec.gateway.clone()),
                        ..Default::default()
                    }]),
                    options: None,
                }),
                labels: Some(spec.labels.clone()),
                ..Default::default()
            };
            match client.create_network(request).await {
                Ok(_) => {}
                // Another agent thread created it meanwhile.
                Err(e) => match map_err(e) {
                    Error::Conflict(_) => {}
                    other => return Err(other),
                },
            }
            inspect().await
        }
        .await;
        self.done("ensure_network", started, result)
    }

    async fn remove_network(&self, name: &str) -> Result<()> {
        let started = Instant::now();
        let result = match self.client().remove_network(name).await {
            Ok(()) => Ok(()),
            Err(e) => match map_err(e) {
                Error::NotFound(_) => Ok(()),
                other => Err(other),
            },
        };
        self.done("remove_network", started, result)
    }

    async fn image_present(&self, image: &str) -> Result<bool> {
        let started = Instant::now();
        let result = match self.client().inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(e) => match map_err(e) {
                Error::NotFound(_) => Ok(false),
                other => Err(other),
            },
        };
        self.done("inspect_image", started, result)
    }

    async fn pull_image(&self, image: &str) -> Result<()> {
        let started = Instant::now();
        let options = q::CreateImageOptions {
            from_image: Some(image.to_string()),
            ..Default::default()
        };
        let client = self.client();
        let pull = async {
            let mut stream = client.create_image(Some(options), None, None);
            while let Some(item) = stream.next().await {
                match item {
                    Ok(info) => {
                        if let Some(detail) = info.error_detail.and_then(|d| d.message) {
                            return Err(Error::Pull {
                                image: image.to_string(),
                                detail,
                            });
                        }
                    }
                    Err(e) => {
                        return Err(Error::Pull {
                            image: image.to_string(),
                            detail: map_err(e).to_string(),
                        });
                    }
                }
            }
            Ok(())
        };
        let result = match tokio::time::timeout(Duration::from_secs(60), pull).await {
            Ok(result) => result,
            Err(_) => Err(Error::Pull {
                image: image.to_string(),
                detail: "timed out".into(),
            }),
        };
        self.done("pull_image", started, result)
    }

    async fn build_image(&self, tag: &str, context: Vec<u8>) -> Result<()> {
        let started = Instant::now();
        let options = q::BuildImageOptions {
            dockerfile: "Dockerfile".into(),
            t: Some(tag.to_string()),
            rm: true,
            forcerm: true,
            ..Default::default()
        };
        let client = self.client();
        let result = async {
            let mut stream = client.build_image(
                options,
                None,
                Some(bollard::body_full(Bytes::from(context))),
            );
            while let Some(item) = stream.next().await {
                let info = item.map_err(map_err)?;
                if let Some(detail) = info.error_detail.and_then(|d| d.message) {
                    return Err(Error::Engine(format!("building {tag}: {detail}")));
                }
            }
            Ok(())
        }
        .await;
        self.done("build_image", started, result)
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<String> {
        let started = Instant::now();
        let options = q::CreateContainerOptions {
            name: Some(spec.name.clone()),
            ..Default::default()
        };
        let result = self
            .client()
            .create_container(Some(options), to_body(spec))
            .await
            .map(|r| r.id)
            .map_err(map_err);
        self.done("create_container", started, result)
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        let started = Instant::now();
        let result = self
            .client()
            .start_container(id, None::<q::StartContainerOptions>)
            .await
            .map_err(map_err);
        self.done("start_container", started, result)
    }

    async fn stop_container(&self, id: &str, grace: Duration) -> Result<()> {
        let started = Instant::now();
        let seconds = i32::try_from(grace.as_secs()).unwrap_or(i32::MAX);
        let client = self
            .client()
            .with_timeout(grace + Duration::from_secs(REQUEST_TIMEOUT_SECS));
        let options = q::StopContainerOptions {
            signal: None,
            t: Some(seconds),
        };
        let result = match client.stop_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) => match map_err(e) {
                Error::NotFound(_) => Ok(()),
                // 304: it had already stopped.
                Error::Engine(message) if message.starts_with("304") => Ok(()),
                other => Err(other),
            },
        };
        self.done("stop_container", started, result)
    }

    async fn kill_container(&self, id: &str, signal: &str) -> Result<()> {
        let started = Instant::now();
        let options = q::KillContainerOptions {
            signal: signal.to_string(),
        };
        let result = self
            .client()
            .kill_container(id, Some(options))
            .await
            .map_err(map_err);
        self.done("kill_container", started, result)
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        let started = Instant::now();
        let options = q::RemoveContainerOptions {
            v: true,
            force: true,
            link: false,
        };
        let result = match self.client().remove_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) => match map_err(e) {
                Error::NotFound(_) => Ok(()),
                // "removal already in progress"
                Error::Conflict(_) => Ok(()),
                other => Err(other),
            },
        };
        self.done("remove_container", started, result)
    }

    async fn inspect_container(&self, id: &str) -> Result<Option<ObservedContainer>> {
        let started = Instant::now();
        let result = self
            .inspect_raw(id)
            .await
            .map(|raw| raw.and_then(|r| self.observed(r)));
        self.done("inspect_container", started, result)
    }

    async fn list_containers(&self, labels: &[(&str, &str)]) -> Result<Vec<ObservedContainer>> {
        let started = Instant::now();
        let filters = HashMap::from([(
            "label".to_string(),
            labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>(),
        )]);
        let options = q::ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        };
        let result = async {
            let summaries = self
                .client()
                .list_containers(Some(options))
                .await
                .map_err(map_err)?;
            let mut observed = Vec::with_capacity(summaries.len());
            for summary in summaries {
                let Some(id) = summary.id else { continue };
                // A container removed between the list and the inspect is simply gone.
                if let Some(raw) = self.inspect_raw(&id).await?
                    && let Some(container) = self.observed(raw)
                {
                    observed.push(container);
                }
            }
            Ok(observed)
        }
        .await;
        self.done("list_containers", started, result)
    }

    async fn exec(&self, id: &str, spec: &ExecSpec) -> Result<Session> {
        let started = Instant::now();
        let client = self.client();
        let result = async {
            let created = client
                .create_exec(
                    id,
                    ExecConfig {
                        attach_stdin: Some(spec.stdin),
                        attach_stdout: Some(spec.stdout),
                        attach_stderr: Some(spec.stderr),
                        tty: Some(spec.tty),
                        cmd: Some(spec.command.clone()),
                        ..Default::default()
                    },
                )
                .await
                .map_err(map_err)?;
            let options = StartExecOptions {
                detach: false,
                tty: spec.tty,
                output_capacity: Some(64 * 1024),
            };
            match client
                .start_exec(&created.id, Some(options))
                .await
                .map_err(map_err)?
            {
                StartExecResults::Attached { output, input } => Ok(Session {
                    exec_id: Some(created.id),
                    input,
                    output: output_stream(output),
                }),
                StartExecResults::Detached => Err(Error::Engine("exec started detached".into())),
            }
        }
        .await;
        self.done("exec", started, result)
    }

    async fn exec_exit_code(&self, exec_id: &str) -> Result<Option<i64>> {
        let started = Instant::now();
        let result = self
            .client()
            .inspect_exec(exec_id)
            .await
            .map_err(map_err)
            .map(|i| {
                if i.running.unwrap_or(false) {
                    None
                } else {
                    i.exit_code
                }
            });
        self.done("inspect_exec", started, result)
    }

    async fn resize_exec(&self, exec_id: &str, width: u16, height: u16) -> Result<()> {
        let options = q::ResizeExecOptions {
            h: i32::from(height),
            w: i32::from(width),
        };
        self.client()
            .resize_exec(exec_id, options)
            .await
            .map_err(map_err)
    }

    async fn attach(&self, id: &str, stdin: bool) -> Result<Session> {
        let started = Instant::now();
        let options = q::AttachContainerOptions {
            stream: true,
            stdin,
            stdout: true,
            stderr: true,
            logs: false,
            detach_keys: None,
        };
        let result = self
            .client()
            .attach_container(id, Some(options))
            .await
            .map_err(map_err)
            .map(|r| Session {
                exec_id: None,
                input: r.input,
                output: output_stream(r.output),
            });
        self.done("attach", started, result)
    }

    async fn resize_container(&self, id: &str, width: u16, height: u16) -> Result<()> {
        let options = q::ResizeContainerTTYOptions {
            h: i32::from(height),
            w: i32::from(width),
        };
        self.client()
            .resize_container_tty(id, options)
            .await
            .map_err(map_err)
    }

    fn logs(&self, id: &str, options: &LogOptions) -> BoxStream<'static, Result<Bytes>> {
        let since = options.since_seconds.map(|s| {
            let now = Timestamp::now().as_second();
            i32::try_from(now - s.max(0)).unwrap_or(0)
        });
        let docker_options = q::LogsOptions {
            follow: options.follow,
            stdout: true,
            stderr: true,
            since: since.unwrap_or(0),
            until: 0,
            timestamps: options.timestamps,
            tail: options
                .tail_lines
                .map(|n| n.max(0).to_string())
                .unwrap_or_else(|| "all".to_string()),
        };
        self.client()
            .logs(id, Some(docker_options))
            .map_err(map_err)
            .map_ok(|chunk| chunk.into_bytes())
            .boxed()
    }

    async fn stats(&self, id: &str) -> Result<Stats> {
        let started = Instant::now();
        let options = q::StatsOptions {
            stream: false,
            one_shot: false,
        };
        let result = async {
            let mut stream = self.client().stats(id, Some(options));
            let Some(sample) = stream.next().await else {
                return Err(Error::NotFound(id.to_string()));
            };
            let sample = sample.map_err(map_err)?;
            let total = |c: &Option<bollard::models::ContainerCpuStats>| {
                c.as_ref()
                    .and_then(|c| c.cpu_usage.as_ref())
                    .and_then(|u| u.total_usage)
                    .unwrap_or(0)
            };
            let now_total = total(&sample.cpu_stats);
            let pre_total = total(&sample.precpu_stats);
            let wall = match (&sample.read, &sample.preread) {
                (Some(read), Some(preread)) => {
                    let read: Option<Timestamp> = read.to_string().parse().ok();
                    let preread: Option<Timestamp> = preread.to_string().parse().ok();
                    match (read, preread) {
                        (Some(a), Some(b)) if b.as_second() > 0 => {
                            Some(a.as_nanosecond() - b.as_nanosecond())
                        }
                        _ => None,
                    }
                }
                _ => None,
            };
            let nano_cores = match wall {
                Some(wall) if wall > 0 && now_total >= pre_total && pre_total > 0 => {
                    Some(((now_total - pre_total) as u128 * 1_000_000_000 / wall as u128) as u64)
                }
                _ => None,
            };
            let memory = sample.memory_stats.unwrap_or_default();
            let usage = memory.usage.unwrap_or(0);
            let stats_map = memory.stats.unwrap_or_default();
            let inactive = stats_map
                .get("total_inactive_file")
                .or_else(|| stats_map.get("inactive_file"))
                .copied()
                .unwrap_or(0);
            Ok(Stats {
                time: Some(Timestamp::now()),
                cpu_usage_core_nanos: now_total,
                cpu_usage_nano_cores: nano_cores,
                memory_usage_bytes: usage,
                memory_working_set_bytes: usage.saturating_sub(inactive),
                memory_limit_bytes: memory.limit,
                memory_rss_bytes: stats_map
                    .get("total_rss")
                    .or_else(|| stats_map.get("anon"))
                    .copied(),
            })
        }
        .await;
        self.done("stats", started, result)
    }

    fn events(&self, node: &str) -> BoxStream<'static, Result<Event>> {
        let filters = HashMap::from([
            ("type".to_string(), vec!["container".to_string()]),
            (
                "label".to_string(),
                vec![format!("{}={node}", crate::labels::NODE)],
            ),
        ]);
        let options = q::EventsOptions {
            since: None,
            until: None,
            filters: Some(filters),
        };
        self.client()
            .events(Some(options))
            .map_err(map_err)
            .map_ok(|message| {
                let actor = message.actor.unwrap_or_default();
                let attributes = actor.attributes.unwrap_or_default();
                Event {
                    container_id: actor.id.unwrap_or_default(),
                    pod_uid: attributes.get(crate::labels::POD_UID).cloned(),
                    action: message.action.unwrap_or_default(),
                    at: message
                        .time_nano
                        .and_then(|n| Timestamp::from_nanosecond(i128::from(n)).ok()),
                }
            })
            .boxed()
    }
}

mod bridge;
mod oom;
#[cfg(test)]
mod tests;
