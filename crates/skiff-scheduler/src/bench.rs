//! The scheduler benchmark's core (the `skiff bench scheduler` subcommand prints its report):
//! `in_memory` drives the pure scheduler over an in-memory snapshot of N nodes and M pods;
//! `against_api` creates N Node objects (no agents) and M pods through a Kubernetes API, runs
//! the real runner, and waits until every pod is bound.
//!
//! Invariants: the API mode works in a namespace and on nodes it creates itself (names prefixed
//! `skiff-bench-`) and deletes them afterwards, also when it fails; it waits for a condition
//! with a deadline, never for a fixed time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use serde_json::json;
use tokio::sync::watch;

use crate::schedule::{Algorithm, assumed};
use crate::snapshot::Snapshot;

/// What a run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub nodes: usize,
    pub pods: usize,
    pub scheduled: usize,
    pub unschedulable: usize,
    pub elapsed: Duration,
    /// Through the API: when the last pod create was acknowledged (the bindings may lag).
    pub created: Option<Duration>,
}

impl Report {
    /// Pods scheduled per second.
    pub fn pods_per_second(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.scheduled as f64 / seconds
        } else {
            0.0
        }
    }
}

/// Why the API benchmark failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("watch failed: {0}")]
    Watch(#[from] watcher::Error),
    #[error("timed out after {0:?} with {1} of {2} pods bound")]
    Timeout(Duration, usize, usize),
    #[error("the scheduler stopped: {0}")]
    Scheduler(String),
}

/// A node object for the benchmark: 32 CPUs, 128 GiB, 110 pods.
pub fn bench_node(name: &str) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "skiff.io/bench": "true"}},
        "status": {"allocatable": {"cpu": "32", "memory": "128Gi", "pods": "110"},
                   "capacity": {"cpu": "32", "memory": "128Gi", "pods": "110"},
                   "conditions": [{"type": "Ready", "status": "True"}]}
    }))
    .unwrap_or_default()
}

/// A pending pod for the benchmark (100m CPU, 128 MiB).
pub fn bench_pod(namespace: &str, name: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": namespace, "uid": format!("{namespace}-{name}")},
        "spec": {"containers": [{"name": "c", "image": "busybox",
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]}
    }))
    .unwrap_or_default()
}

/// Schedule `pods` pods onto `nodes` nodes with the pure core, assuming each decision.
pub fn in_memory(nodes: usize, pods: usize) -> Report {
    let mut snapshot = Snapshot::new();
    for i in 0..nodes {
        snapshot.upsert_node(Arc::new(bench_node(&format!("node-{i}"))));
    }
    let pending: Vec<Arc<Pod>> = (0..pods)
        .map(|i| Arc::new(bench_pod("bench", &format!("pod-{i}"))))
        .collect();
    let mut algorithm = Algorithm::new();
    let (mut scheduled, mut unschedulable) = (0, 0);
    let started = Instant::now();
    for pod in pending {
        match algorithm.schedule(&snapshot, pod.clone()) {
            Ok(decision) => {
                snapshot.upsert_pod(Arc::new(assumed(&pod, &decision.node)));
                scheduled += 1;
            }
            Err(_) => unschedulable += 1,
        }
    }
    Report {
        nodes,
        pods,
        scheduled,
        unschedulable,
        elapsed: started.elapsed(),
        created: None,
    }
}

/// Create the nodes and pods through the API, run the scheduler, wait until all pods are bound
/// (at most `timeout`), clean up. The time runs from the first pod creation to the last binding.
pub async fn against_api(
    client: Client,
    nodes: usize,
    pods: usize,
    timeout: Duration,
) -> Result<Report, Error> {
    measure(client, nodes, pods, timeout, true).await
}

/// Like [`against_api`], but the scheduler is the one the cluster already runs (on its Raft
/// leader): this only creates the objects and waits for the bindings.
pub async fn against_cluster_scheduler(
    client: Client,
    nodes: usize,
    pods: usize,
    timeout: Duration,
) -> Result<Report, Error> {
    measure(client, nodes, pods, timeout, false).await
}

async fn measure(
    client: Client,
    nodes: usize,
    pods: usize,
    timeout: Duration,
    own_scheduler: bool,
) -> Result<Report, Error> {
    let namespace = format!("skiff-bench-{}", std::process::id());
    let result = run_api(
        client.clone(),
        &namespace,
        nodes,
        pods,
        timeout,
        own_scheduler,
    )
    .await;
    // Clean up whatever happened.
    let node_api: Api<Node> = Api::all(client.clone());
    for i in 0..nodes {
        let _ = node_api
            .delete(&format!("{namespace}-node-{i}"), &DeleteParams::default())
            .await;
    }
    let ns_api: Api<Namespace> = Api::all(client);
    let _ = ns_api.delete(&namespace, &DeleteParams::default()).await;
    result
}

async fn run_api(
    client: Client,
    namespace: &str,
    nodes: usize,
    pods: usize,
    timeout: Duration,
    own_scheduler: bool,
) -> Result<Report, Error> {
    let ns_api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": namespace}})).unwrap_or_default();
    ns_api.create(&PostParams::default(), &ns).await?;
    let node_api: Api<Node> = Api::all(client.clone());
    futures::stream::iter(0..nodes)
        .map(|i| {
            let api = node_api.clone();
            let node = bench_node(&format!("{namespace}-node-{i}"));
            async move { api.create(&PostParams::default(), &node).await }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let scheduler = if own_scheduler {
        Some(tokio::spawn(crate::runner::run(
            client.clone(),
            crate::runner::Config::default(),
            crate::metrics::Metrics::unregistered().map_err(|e| Error::Scheduler(e.to_string()))?,
            stop_rx,
        )))
    } else {
        None
    };
    let pod_api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let started = Instant::now();
    let creating = futures::stream::iter(0..pods)
        .map(|i| {
            let api = pod_api.clone();
            let mut pod = bench_pod(namespace, &format!("pod-{i}"));
            pod.metadata.uid = None;
            async move { api.create(&PostParams::default(), &pod).await }
        })
        .buffer_unordered(64)
        .try_collect::<Vec<_>>();
    let creating = async {
        let created = creating.await;
        (created, started.elapsed())
    };
    let waiting = wait_bound(pod_api.clone(), pods, timeout);
    let ((created, created_after), bound) = tokio::join!(creating, waiting);
    let _ = stop_tx.send(true);
    if let Some(scheduler) = scheduler {
        let _ = scheduler.await;
    }
    created?;
    let bound = bound?;
    Ok(Report {
        nodes,
        pods,
        scheduled: bound,
        unschedulable: pods - bound,
        elapsed: started.elapsed(),
        created: Some(created_after),
    })
}

async fn wait_bound(api: Api<Pod>, want: usize, timeout: Duration) -> Result<usize, Error> {
    let mut bound = std::collections::HashSet::new();
    let stream = watcher(api.clone(), watcher::Config::default()).applied_objects();
    let mut stream = std::pin::pin!(stream);
    let deadline = tokio::time::Instant::now() + timeout;
    while bound.len() < want {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => return Err(Error::Timeout(timeout, bound.len(), want)),
            Ok(None) => break,
            Ok(Some(Err(error))) => return Err(Error::Watch(error)),
            Ok(Some(Ok(pod))) => {
                if pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_ref())
                    .is_some()
                {
                    bound.insert(pod.metadata.name.clone().unwrap_or_default());
                }
            }
        }
    }
    let _ = api.list(&ListParams::default().limit(1)).await;
    Ok(bound.len())
}

#[cfg(test)]
mod tests;
