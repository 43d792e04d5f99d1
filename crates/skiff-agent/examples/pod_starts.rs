//! Measures pod start latency through the agent's pod workers on this machine's Docker, against
//! the physical floor: the same number of plain containers created and started in parallel.
//! A program that prints figures (no API server involved: pods are fed to the pod manager).
//!
//! `cargo run --release -p skiff-agent --example pod_starts -- [count]` (default 20).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, PodStatus, Secret};
use skiff_agent::container_config::ClusterFacts;
use skiff_agent::downward::NodeFacts;
use skiff_agent::images::{self, LocalImage, TEST_BUSYBOX_IMAGE};
use skiff_agent::pods::PodManager;
use skiff_agent::runtime::docker::DockerRuntime;
use skiff_agent::runtime::{ContainerRuntime, ContainerSpec, NetworkMode, NetworkSpec};
use skiff_agent::volumes::TokenRequest;
use skiff_agent::worker::{Deps, ObjectSource, Settings, StatusSink};

struct NoObjects;

#[async_trait::async_trait]
impl ObjectSource for NoObjects {
    async fn config_map(&self, _: &str, _: &str) -> Result<Option<ConfigMap>, String> {
        Ok(None)
    }
    async fn secret(&self, _: &str, _: &str) -> Result<Option<Secret>, String> {
        Ok(None)
    }
    async fn token(&self, _: &Pod, _: &TokenRequest) -> Result<String, String> {
        Err("no tokens here".into())
    }
    async fn claim_path(&self, _: &str, _: &str) -> Result<Option<String>, String> {
        Ok(None)
    }
}

/// Records when each pod was first reported with all containers running.
#[derive(Default)]
struct Running {
    at: Mutex<HashMap<String, Instant>>,
}

#[async_trait::async_trait]
impl StatusSink for Running {
    async fn write_status(&self, pod: &Pod, status: &PodStatus) -> Result<(), String> {
        let all_running = status.phase.as_deref() == Some("Running")
            && status
                .container_statuses
                .iter()
                .flatten()
                .all(|c| c.state.as_ref().and_then(|s| s.running.as_ref()).is_some());
        if all_running && let Ok(mut at) = self.at.lock() {
            at.entry(pod.metadata.uid.clone().unwrap_or_default())
                .or_insert_with(Instant::now);
        }
        Ok(())
    }
    async fn pod_finished(&self, _: &Pod) -> Result<(), String> {
        Ok(())
    }
    fn event(&self, _: &Pod, _: bool, _: &str, _: &str) {}
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn report(label: &str, mut latencies: Vec<Duration>, total: Duration) {
    latencies.sort();
    println!(
        "{label:<28} p50 {:>7.0} ms   p99 {:>7.0} ms   total {:>7.0} ms",
        percentile(&latencies, 0.5).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
        total.as_secs_f64() * 1000.0
    );
}

fn cleanup(node: &str, network: &str) {
    let label = format!("label=io.skiff.node={node}");
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
        .args(["network", "rm", network])
        .output();
}

#[tokio::main]
async fn main() -> Result<()> {
    let count: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()
        .context("count")?
        .unwrap_or(20);
    let node = format!("bench{}", std::process::id());
    let network = format!("skiff-{node}");
    let runtime = Arc::new(DockerRuntime::connect(None, None).await?);
    images::ensure(
        runtime.as_ref(),
        &[LocalImage::Sandbox, LocalImage::TestBusybox],
        images::BUSYBOX_PATH,
    )
    .await?;
    let result = run(count, &node, &network, runtime).await;
    cleanup(&node, &network);
    result
}

async fn run(count: usize, node: &str, network: &str, runtime: Arc<DockerRuntime>) -> Result<()> {
    runtime
        .ensure_network(&NetworkSpec {
            name: network.to_string(),
            subnet: "10.42.253.0/24".into(),
            gateway: "10.42.253.1".into(),
            labels: [("io.skiff.node".to_string(), node.to_string())].into(),
        })
        .await?;
    let data_dir = tempfile::tempdir()?;

    // The floor: plain containers, created and started all at once.
    let started = Instant::now();
    let floor = futures::future::join_all((0..count).map(|i| {
        let runtime = runtime.clone();
        let spec = ContainerSpec {
            name: format!("skiff-floor-{node}-{i}"),
            image: TEST_BUSYBOX_IMAGE.into(),
            labels: [("io.skiff.node".to_string(), node.to_string())].into(),
            cmd: Some(vec!["sleep".into(), "600".into()]),
            network: Some(NetworkMode::Bridge {
                network: network.to_string(),
            }),
            ..Default::default()
        };
        async move {
            let t = Instant::now();
            let id = runtime.create_container(&spec).await?;
            runtime.start_container(&id).await?;
            Ok::<_, skiff_agent::runtime::Error>(t.elapsed())
        }
    }))
    .await
    .into_iter()
    .collect::<Result<Vec<_>, _>>()?;
    let floor_total = started.elapsed();
    cleanup(node, "");

    let running = Arc::new(Running::default());
    let deps = Deps {
        runtime: runtime.clone(),
        objects: Arc::new(NoObjects),
        status: running.clone(),
        settings: Arc::new(Settings {
            node_name: node.to_string(),
            data_dir: data_dir.path().to_path_buf(),
            network: network.to_string(),
            bridge: None,
            node_resolv_conf: "/etc/resolv.conf".into(),
            sandbox_image: images::SANDBOX_IMAGE.into(),
            node: NodeFacts {
                node_name: node.to_string(),
                host_ip: "127.0.0.1".into(),
                pod_ip: None,
                allocatable_cpu_millis: 2000,
                allocatable_memory_bytes: 1 << 30,
            },
            cluster: ClusterFacts {
                dns_servers: vec![],
                domain: "cluster.local".into(),
                kubernetes_service: None,
            },
            resync: Duration::from_secs(10),
        }),
        metrics: None,
    };
    let mut manager = PodManager::new(deps);
    let pods: Vec<Pod> = (0..count)
        .map(|i| {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": format!("bench-{i}"), "namespace": "default", "uid": format!("{node}-{i}")},
                "spec": {"terminationGracePeriodSeconds": 1,
                         "containers": [{"name": "main", "image": TEST_BUSYBOX_IMAGE, "command": ["sleep", "600"]}]},
            }))
        })
        .collect::<Result<_, _>>()?;
    let started = Instant::now();
    for pod in &pods {
        manager.apply(pod.clone());
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    while running.at.lock().map(|a| a.len()).unwrap_or(0) < count {
        anyhow::ensure!(
            Instant::now() < deadline,
            "not every pod ran within 5 minutes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let latencies: Vec<Duration> = running
        .at
        .lock()
        .map(|a| a.values().map(|t| t.duration_since(started)).collect())
        .unwrap_or_default();
    let agent_total = latencies.iter().max().copied().unwrap_or_default();
    manager.shutdown().await;

    println!(
        "{count} pods on {} (Docker {})",
        node,
        runtime.version().await.unwrap_or_default()
    );
    report("docker create+start (floor)", floor, floor_total);
    report("agent pods (sandbox + app)", latencies, agent_total);
    println!(
        "ratio total/floor: {:.2}",
        agent_total.as_secs_f64() / floor_total.as_secs_f64().max(1e-9)
    );
    Ok(())
}
