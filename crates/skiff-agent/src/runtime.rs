//! The container runtime boundary: what the agent needs from a container engine, in terms of
//! plain data. [`docker::DockerRuntime`] implements it over bollard; the planner and the status
//! computation only ever see [`ObservedContainer`]s, so they are tested without an engine.

pub mod docker;

use std::collections::HashMap;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use k8s_openapi::jiff::Timestamp;
use tokio::io::AsyncWrite;

use crate::labels::Identity;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no such container or image: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("the container engine is unreachable: {0}")]
    Unavailable(String),
    #[error("image {image} could not be pulled: {detail}")]
    Pull { image: String, detail: String },
    #[error("the container engine refused the request: {0}")]
    Engine(String),
}

impl Error {
    /// Whether a later attempt may succeed without anything changing on our side.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Unavailable(_) | Error::Conflict(_))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A container as the engine reports it, with the identity read from its labels.
#[derive(Clone, Debug, PartialEq)]
pub struct ObservedContainer {
    pub id: String,
    pub identity: Identity,
    /// The image reference the container was created from.
    pub image: String,
    /// The engine's id of that image (`sha256:...`).
    pub image_id: String,
    pub state: ContainerState,
    /// The container's address on the pod network (sandboxes only).
    pub ip: Option<String>,
    /// The PID of the container's first process while it runs (to enter its namespaces).
    pub pid: Option<i64>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ContainerState {
    /// Created but never started (a start failed, or the agent died in between).
    Created,
    Running {
        started_at: Timestamp,
    },
    Exited {
        exit_code: i64,
        started_at: Option<Timestamp>,
        finished_at: Timestamp,
        oom_killed: bool,
        /// The engine's error when the container could not start.
        error: Option<String>,
    },
}

impl ContainerState {
    pub fn is_running(&self) -> bool {
        matches!(self, ContainerState::Running { .. })
    }
}

/// How a container is attached to the network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetworkMode {
    /// On a bridge network (sandboxes): gets its own address there.
    Bridge {
        network: String,
    },
    /// Joins another container's network namespace (app and init containers).
    Container {
        id: String,
    },
    Host,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub source: String,
    pub target: String,
    pub read_only: bool,
}

/// cgroup settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    pub memory_limit_bytes: Option<i64>,
    pub cpu_quota_micros: Option<i64>,
    pub cpu_period_micros: Option<i64>,
    pub cpu_shares: Option<i64>,
}

/// Everything needed to create a container, runtime-neutral.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ContainerSpec {
    /// The engine-side container name.
    pub name: String,
    pub image: String,
    pub labels: HashMap<String, String>,
    /// `None` keeps the image's entrypoint.
    pub entrypoint: Option<Vec<String>>,
    /// `None` keeps the image's command (only when `entrypoint` is also `None`).
    pub cmd: Option<Vec<String>>,
    pub working_dir: Option<String>,
    pub env: Vec<(String, String)>,
    pub network: Option<NetworkMode>,
    pub hostname: Option<String>,
    pub extra_hosts: Vec<String>,
    pub mounts: Vec<Mount>,
    pub resources: Resources,
    /// `uid` or `uid:gid`.
    pub user: Option<String>,
    pub read_only_rootfs: bool,
    pub privileged: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub tty: bool,
    pub stdin: bool,
    pub stdin_once: bool,
    pub stop_signal: Option<String>,
}

/// A Docker bridge network for a node's pods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkSpec {
    pub name: String,
    pub subnet: String,
    pub gateway: String,
    pub labels: HashMap<String, String>,
}

#[derive(Clone, Debug, Default)]
pub struct ExecSpec {
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

/// One chunk of a container's output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    Stdout(Bytes),
    Stderr(Bytes),
}

pub type OutputStream = BoxStream<'static, Result<Output>>;
pub type Input = Pin<Box<dyn AsyncWrite + Send>>;

/// A running exec or attach: write to `input`, read `output` until it ends.
pub struct Session {
    /// The exec id (exec sessions) to ask for the exit code and to resize.
    pub exec_id: Option<String>,
    pub input: Input,
    pub output: OutputStream,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogOptions {
    pub follow: bool,
    pub tail_lines: Option<i64>,
    pub since_seconds: Option<i64>,
    pub timestamps: bool,
}

/// Resource usage of one container at one instant.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    pub time: Option<Timestamp>,
    /// Total CPU time consumed, nanoseconds.
    pub cpu_usage_core_nanos: u64,
    /// CPU rate over the engine's last sampling interval, nanocores.
    pub cpu_usage_nano_cores: Option<u64>,
    pub memory_usage_bytes: u64,
    pub memory_working_set_bytes: u64,
    pub memory_limit_bytes: Option<u64>,
    pub memory_rss_bytes: Option<u64>,
}

/// A container changed state; the agent wakes the pod's worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub container_id: String,
    pub pod_uid: Option<String>,
    pub action: String,
    /// When the engine recorded it (after the change it reports), if it says.
    pub at: Option<Timestamp>,
}

/// What the agent needs from a container engine.
#[async_trait::async_trait]
pub trait ContainerRuntime: Send + Sync + 'static {
    /// The engine's name and version, e.g. `docker://20.10.24`.
    async fn version(&self) -> Result<String>;
    /// Creates the pods' network unless it exists; returns the name of its Linux bridge on
    /// the host, when the engine names one (the agent turns on hairpin mode on its ports).
    async fn ensure_network(&self, spec: &NetworkSpec) -> Result<Option<String>>;
    async fn remove_network(&self, name: &str) -> Result<()>;
    async fn image_present(&self, image: &str) -> Result<bool>;
    async fn pull_image(&self, image: &str) -> Result<()>;
    /// Builds and tags an image from a build context (a tar with a `Dockerfile`).
    async fn build_image(&self, tag: &str, context: Vec<u8>) -> Result<()>;
    /// Creates a container and returns its id.
    async fn create_container(&self, spec: &ContainerSpec) -> Result<String>;
    async fn start_container(&self, id: &str) -> Result<()>;
    /// Sends the stop signal, then SIGKILL once `grace` has passed; returns once it has exited.
    async fn stop_container(&self, id: &str, grace: Duration) -> Result<()>;
    async fn kill_container(&self, id: &str, signal: &str) -> Result<()>;
    /// Removes a container (killing it if it still runs).
    async fn remove_container(&self, id: &str) -> Result<()>;
    async fn inspect_container(&self, id: &str) -> Result<Option<ObservedContainer>>;
    /// Every container (running or not) carrying all of these labels, with its identity.
    async fn list_containers(&self, labels: &[(&str, &str)]) -> Result<Vec<ObservedContainer>>;
    async fn exec(&self, id: &str, spec: &ExecSpec) -> Result<Session>;
    /// The exit code of a finished exec (`None` while it runs).
    async fn exec_exit_code(&self, exec_id: &str) -> Result<Option<i64>>;
    async fn resize_exec(&self, exec_id: &str, width: u16, height: u16) -> Result<()>;
    async fn attach(&self, id: &str, stdin: bool) -> Result<Session>;
    async fn resize_container(&self, id: &str, width: u16, height: u16) -> Result<()>;
    fn logs(&self, id: &str, options: &LogOptions) -> BoxStream<'static, Result<Bytes>>;
    async fn stats(&self, id: &str) -> Result<Stats>;
    /// Container lifecycle events of containers carrying `io.skiff.node=<node>`. The stream
    /// ends when the engine goes away; callers subscribe again.
    fn events(&self, node: &str) -> BoxStream<'static, Result<Event>>;
}

/// Runs a command in a container to completion: (exit code, stdout+stderr), bounded by
/// `timeout` and by `max_output` bytes kept.
pub async fn exec_collect(
    runtime: &dyn ContainerRuntime,
    id: &str,
    command: &[String],
    timeout: Duration,
    max_output: usize,
) -> Result<(i64, Vec<u8>)> {
    use futures::StreamExt;
    let spec = ExecSpec {
        command: command.to_vec(),
        stdin: false,
        stdout: true,
        stderr: true,
        tty: false,
    };
    let run = async {
        let mut session = runtime.exec(id, &spec).await?;
        let mut collected = Vec::new();
        while let Some(chunk) = session.output.next().await {
            let bytes = match chunk? {
                Output::Stdout(b) | Output::Stderr(b) => b,
            };
            let room = max_output.saturating_sub(collected.len());
            collected.extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
        let code = match &session.exec_id {
            Some(exec_id) => runtime.exec_exit_code(exec_id).await?.unwrap_or(-1),
            None => -1,
        };
        Ok((code, collected))
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(result) => result,
        Err(_) => Err(Error::Engine(format!(
            "command timed out after {}s",
            timeout.as_secs_f64()
        ))),
    }
}
