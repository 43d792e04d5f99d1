//! The test harness: a node (name, Docker network, data dir), the pod manager with in-memory
//! API objects and a recording status sink, a node API server with a test CA, and cleanup of
//! everything labelled with the node's name.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, PodStatus, Secret};
use skiff_agent::container_config::ClusterFacts;
use skiff_agent::downward::NodeFacts;
use skiff_agent::images::{self, LocalImage};
use skiff_agent::pods::PodManager;
use skiff_agent::runtime::docker::DockerRuntime;
use skiff_agent::runtime::{ContainerRuntime, NetworkSpec, ObservedContainer};
use skiff_agent::volumes::TokenRequest;
use skiff_agent::worker::{Deps, ObjectSource, Settings, StatusSink};
use tokio::sync::Notify;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// API objects the tests control.
#[derive(Default)]
pub struct MemObjects {
    pub config_maps: Mutex<HashMap<String, ConfigMap>>,
    pub secrets: Mutex<HashMap<String, Secret>>,
    /// Claim name → the bound local volume's directory (`None`: pending).
    pub claims: Mutex<HashMap<String, Option<String>>>,
}

#[async_trait::async_trait]
impl ObjectSource for MemObjects {
    async fn config_map(&self, _ns: &str, name: &str) -> Result<Option<ConfigMap>, String> {
        Ok(self
            .config_maps
            .lock()
            .map_err(|e| e.to_string())?
            .get(name)
            .cloned())
    }
    async fn secret(&self, _ns: &str, name: &str) -> Result<Option<Secret>, String> {
        Ok(self
            .secrets
            .lock()
            .map_err(|e| e.to_string())?
            .get(name)
            .cloned())
    }
    async fn token(&self, pod: &Pod, request: &TokenRequest) -> Result<String, String> {
        Ok(format!(
            "token-for-{}-{}",
            request.service_account,
            pod.metadata.name.clone().unwrap_or_default()
        ))
    }
    async fn claim_path(&self, _ns: &str, claim: &str) -> Result<Option<String>, String> {
        match self.claims.lock().map_err(|e| e.to_string())?.get(claim) {
            Some(path) => Ok(path.clone()),
            None => Err(format!("persistentvolumeclaim \"{claim}\" not found")),
        }
    }
}

/// Records every status written, per pod uid.
#[derive(Default)]
pub struct MemStatus {
    pub history: Mutex<HashMap<String, Vec<PodStatus>>>,
    /// (pod uid, reason, message) of every event, in order.
    pub events: Mutex<Vec<(String, String, String)>>,
    pub finished: Mutex<Vec<String>>,
    pub changed: Notify,
}

#[async_trait::async_trait]
impl StatusSink for MemStatus {
    async fn write_status(&self, pod: &Pod, status: &PodStatus) -> Result<(), String> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        self.history
            .lock()
            .map_err(|e| e.to_string())?
            .entry(uid)
            .or_default()
            .push(status.clone());
        self.changed.notify_waiters();
        Ok(())
    }
    fn event(&self, pod: &Pod, _warning: bool, reason: &str, message: &str) {
        if let Ok(mut events) = self.events.lock() {
            events.push((
                pod.metadata.uid.clone().unwrap_or_default(),
                reason.to_string(),
                message.to_string(),
            ));
        }
    }

    async fn pod_finished(&self, pod: &Pod) -> Result<(), String> {
        self.finished
            .lock()
            .map_err(|e| e.to_string())?
            .push(pod.metadata.uid.clone().unwrap_or_default());
        self.changed.notify_waiters();
        Ok(())
    }
}

pub struct Node {
    pub name: String,
    pub runtime: Arc<DockerRuntime>,
    pub objects: Arc<MemObjects>,
    pub statuses: Arc<MemStatus>,
    pub deps: Deps,
    pub manager: PodManager,
    pub data_dir: PathBuf,
    /// Runs after the manager (and its workers) are dropped, before the data dir goes.
    _cleanup: Cleanup,
    _tmp: tempfile::TempDir,
}

/// Removes everything a test node created, synchronously (runs on panic too).
struct Cleanup {
    node: String,
    network: String,
    data_dir: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let label = format!("label=io.skiff.node={}", self.node);
        if let Ok(out) = std::process::Command::new("docker")
            .args(["ps", "-aq", "--filter", &label])
            .output()
        {
            let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(str::to_string)
                .collect();
            if !ids.is_empty() {
                let _ = std::process::Command::new("docker")
                    .arg("rm")
                    .arg("-f")
                    .args(&ids)
                    .output();
            }
        }
        let _ = std::process::Command::new("docker")
            .args(["network", "rm", &self.network])
            .output();
        let mut mounts = skiff_agent::volumes::writer::mounts_under(&self.data_dir);
        mounts.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for mount in mounts {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&mount)
                .output();
        }
    }
}

impl Node {
    /// A fresh test node with its own network and data dir, and the test images built.
    pub async fn start() -> Result<Node> {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("t{}x{n}", std::process::id());
        let runtime = Arc::new(
            DockerRuntime::connect(None, None)
                .await
                .context("connecting to Docker")?,
        );
        images::ensure(
            runtime.as_ref(),
            &[
                LocalImage::Sandbox,
                LocalImage::TestBusybox,
                LocalImage::TestHttpd,
            ],
            images::BUSYBOX_PATH,
        )
        .await
        .context("building the test images")?;
        let tmp = tempfile::tempdir()?;
        let data_dir = tmp.path().to_path_buf();
        let network = format!("skiff-{name}");
        let cleanup = Cleanup {
            node: name.clone(),
            network: network.clone(),
            data_dir: data_dir.clone(),
        };
        // Find a free /24 in 10.42.0.0/16 (other tests and nodes may hold some).
        let mut created = false;
        let mut bridge = None;
        for attempt in 0..40u32 {
            let third = (std::process::id() * 7 + n * 13 + attempt * 17) % 200 + 30;
            let subnet = format!("10.42.{third}.0/24");
            let spec = NetworkSpec {
                name: network.clone(),
                subnet,
                gateway: format!("10.42.{third}.1"),
                labels: [("io.skiff.node".to_string(), name.clone())].into(),
            };
            if let Ok(found) = runtime.ensure_network(&spec).await {
                bridge = found;
                created = true;
                break;
            }
        }
        if !created {
            bail!("no free pod subnet for the test network");
        }
        let objects = Arc::new(MemObjects::default());
        let statuses = Arc::new(MemStatus::default());
        let settings = Arc::new(Settings {
            node_name: name.clone(),
            data_dir: data_dir.clone(),
            network: network.clone(),
            bridge,
            node_resolv_conf: "/etc/resolv.conf".into(),
            sandbox_image: images::SANDBOX_IMAGE.to_string(),
            node: NodeFacts {
                node_name: name.clone(),
                host_ip: "127.0.0.1".into(),
                pod_ip: None,
                allocatable_cpu_millis: 2000,
                allocatable_memory_bytes: 1 << 30,
            },
            cluster: ClusterFacts {
                dns_servers: vec![std::net::Ipv4Addr::new(10, 43, 0, 10).into()],
                domain: "cluster.local".into(),
                kubernetes_service: None,
            },
            resync: Duration::from_secs(2),
        });
        let deps = Deps {
            runtime: runtime.clone(),
            objects: objects.clone(),
            status: statuses.clone(),
            settings,
            metrics: None,
        };
        let manager = PodManager::new(deps.clone());
        Ok(Node {
            name,
            runtime,
            objects,
            statuses,
            deps,
            manager,
            data_dir,
            _cleanup: cleanup,
            _tmp: tmp,
        })
    }

    /// A pod bound to this node from a JSON spec, with a fresh uid.
    pub fn pod(&self, name: &str, spec: serde_json::Value) -> Pod {
        let uid = format!(
            "{}-{}-{}",
            self.name,
            name,
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let mut pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "default", "uid": uid, "labels": {"app": name}},
            "spec": spec,
        }))
        .unwrap_or_default();
        if let Some(spec) = pod.spec.as_mut() {
            spec.node_name = Some(self.name.clone());
        }
        pod
    }

    pub fn latest(&self, pod: &Pod) -> Option<PodStatus> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        self.statuses
            .history
            .lock()
            .ok()?
            .get(&uid)
            .and_then(|h| h.last().cloned())
    }

    /// The reasons of the events recorded for `pod`, in order.
    pub fn event_reasons(&self, pod: &Pod) -> Vec<String> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        self.statuses
            .events
            .lock()
            .map(|e| {
                e.iter()
                    .filter(|(u, _, _)| *u == uid)
                    .map(|(_, r, _)| r.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn history(&self, pod: &Pod) -> Vec<PodStatus> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        self.statuses
            .history
            .lock()
            .map(|h| h.get(&uid).cloned().unwrap_or_default())
            .unwrap_or_default()
    }

    /// Waits until the pod's latest status satisfies `check`; reports the last status seen.
    pub async fn wait_status(
        &self,
        pod: &Pod,
        what: &str,
        timeout: Duration,
        check: impl Fn(&PodStatus) -> bool,
    ) -> Result<PodStatus> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.statuses.changed.notified();
            if let Some(status) = self.latest(pod)
                && check(&status)
            {
                return Ok(status);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                bail!(
                    "timed out after {timeout:?} waiting for {what}; last status: {}",
                    serde_json::to_string_pretty(&self.latest(pod)).unwrap_or_default()
                );
            }
        }
    }

    /// Waits for `check` over the runtime's containers of this pod.
    pub async fn wait_containers(
        &self,
        pod: &Pod,
        what: &str,
        timeout: Duration,
        check: impl Fn(&[ObservedContainer]) -> bool,
    ) -> Result<Vec<ObservedContainer>> {
        let deadline = tokio::time::Instant::now() + timeout;
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        loop {
            let list = self
                .runtime
                .list_containers(&[("io.skiff.pod.uid", uid.as_str())])
                .await?;
            if check(&list) {
                return Ok(list);
            }
            if tokio::time::Instant::now() > deadline {
                bail!("timed out waiting for {what}; containers: {list:#?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The running app container `name` of `pod`.
    pub async fn container(&self, pod: &Pod, name: &str) -> Result<ObservedContainer> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let list = self
            .runtime
            .list_containers(&[
                ("io.skiff.pod.uid", uid.as_str()),
                ("io.skiff.container.name", name),
            ])
            .await?;
        list.into_iter()
            .filter(|c| c.state.is_running())
            .max_by_key(|c| c.identity.attempt)
            .with_context(|| format!("no running container {name}"))
    }

    /// Runs a command in a container: (exit code, output).
    pub async fn exec(
        &self,
        pod: &Pod,
        container: &str,
        command: &[&str],
    ) -> Result<(i64, String)> {
        let c = self.container(pod, container).await?;
        let command: Vec<String> = command.iter().map(|s| s.to_string()).collect();
        let (code, out) = skiff_agent::runtime::exec_collect(
            self.runtime.as_ref(),
            &c.id,
            &command,
            Duration::from_secs(10),
            1 << 20,
        )
        .await?;
        Ok((code, String::from_utf8_lossy(&out).into_owned()))
    }

    pub async fn shutdown(&mut self) {
        self.manager.shutdown().await;
    }
}

pub fn container_status<'a>(
    status: &'a PodStatus,
    name: &str,
) -> Option<&'a k8s_openapi::api::core::v1::ContainerStatus> {
    status
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == name)
}

pub fn waiting_reason(status: &PodStatus, name: &str) -> Option<String> {
    container_status(status, name)?
        .state
        .as_ref()?
        .waiting
        .as_ref()?
        .reason
        .clone()
}

pub fn is_running(status: &PodStatus, name: &str) -> bool {
    container_status(status, name)
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.running.as_ref())
        .is_some()
}

pub fn condition(status: &PodStatus, kind: &str) -> Option<String> {
    status
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| c.status.clone())
}

/// A node API server for `node` with a fresh CA; returns its address and a client.
pub async fn node_api(node: &Node) -> Result<(SocketAddr, crate::client::NodeApiClient)> {
    let ca = crate::client::TestCa::new()?;
    let (server_cert, server_key) = ca.issue("system:node:test", &["localhost", "127.0.0.1"])?;
    let tls = skiff_agent::node_api::tls::server_config(&server_cert, &server_key, &ca.cert_pem)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let state = Arc::new(skiff_agent::node_api::State::new(
        &node.name,
        node.runtime.clone(),
        None,
    ));
    tokio::spawn(skiff_agent::node_api::serve(
        listener,
        tls,
        state,
        std::future::pending(),
    ));
    let client =
        crate::client::NodeApiClient::new(addr, &ca, skiff_agent::node_api::API_SERVER_CN)?;
    Ok((addr, client))
}

pub const LONG: Duration = Duration::from_secs(60);
