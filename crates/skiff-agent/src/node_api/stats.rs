//! `/stats/summary` (the kubelet summary API: node and per-pod CPU and memory, what
//! metrics.k8s.io and `kubectl top` are built from) and `/metrics` (Prometheus text).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use futures::future::join_all;
use http::{Response, StatusCode};
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use super::{Body, State, full};
use crate::labels::{self, Kind};
use crate::runtime::{ContainerState, Stats};

/// Remembers the previous node CPU sample to compute a rate.
#[derive(Default)]
pub struct Sampler {
    previous: Mutex<Option<(Instant, u64)>>,
}

/// Busy CPU time of the whole node in nanoseconds, from `/proc/stat`.
fn node_cpu_nanos() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy: u64 = fields
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| *v)
        .sum();
    // USER_HZ is 100 on Linux.
    Some(busy.saturating_mul(10_000_000))
}

fn meminfo() -> BTreeMap<String, u64> {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let (key, rest) = line.split_once(':')?;
            let kib: u64 = rest.split_whitespace().next()?.parse().ok()?;
            Some((key.to_string(), kib * 1024))
        })
        .collect()
}

fn time_now() -> String {
    Timestamp::now().to_string()
}

fn cpu_json(stats: &Stats) -> Value {
    json!({
        "time": time_now(),
        "usageNanoCores": stats.cpu_usage_nano_cores.unwrap_or(0),
        "usageCoreNanoSeconds": stats.cpu_usage_core_nanos,
    })
}

fn memory_json(stats: &Stats) -> Value {
    let mut value = json!({
        "time": time_now(),
        "usageBytes": stats.memory_usage_bytes,
        "workingSetBytes": stats.memory_working_set_bytes,
        "rssBytes": stats.memory_rss_bytes.unwrap_or(0),
        "pageFaults": 0,
        "majorPageFaults": 0,
    });
    if let Some(limit) = stats.memory_limit_bytes {
        value["availableBytes"] = json!(limit.saturating_sub(stats.memory_working_set_bytes));
    }
    value
}

pub async fn summary(state: &State) -> Response<Body> {
    let containers = match state
        .runtime
        .list_containers(&[(labels::NODE, state.node_name.as_str())])
        .await
    {
        Ok(list) => list,
        Err(e) => return full(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    let running: Vec<_> = containers
        .into_iter()
        .filter(|c| c.state.is_running() && c.identity.kind == Kind::App)
        .collect();
    let samples = join_all(running.iter().map(|c| state.runtime.stats(&c.id))).await;
    let mut pods: BTreeMap<String, (Value, Vec<Value>, Stats, Option<Timestamp>)> = BTreeMap::new();
    for (c, sample) in running.iter().zip(samples) {
        let Ok(sample) = sample else { continue };
        let started = match c.state {
            ContainerState::Running { started_at } => Some(started_at),
            _ => None,
        };
        let entry = pods.entry(c.identity.pod_uid.clone()).or_insert_with(|| {
            (
                json!({"name": c.identity.pod_name, "namespace": c.identity.namespace, "uid": c.identity.pod_uid}),
                Vec::new(),
                Stats::default(),
                started,
            )
        });
        entry.1.push(json!({
            "name": c.identity.container_name,
            "startTime": started.map(|t| t.to_string()),
            "cpu": cpu_json(&sample),
            "memory": memory_json(&sample),
        }));
        entry.2.cpu_usage_core_nanos += sample.cpu_usage_core_nanos;
        entry.2.cpu_usage_nano_cores = Some(
            entry.2.cpu_usage_nano_cores.unwrap_or(0) + sample.cpu_usage_nano_cores.unwrap_or(0),
        );
        entry.2.memory_usage_bytes += sample.memory_usage_bytes;
        entry.2.memory_working_set_bytes += sample.memory_working_set_bytes;
        entry.2.memory_rss_bytes =
            Some(entry.2.memory_rss_bytes.unwrap_or(0) + sample.memory_rss_bytes.unwrap_or(0));
        entry.3 = match (entry.3, started) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    let pods: Vec<Value> = pods
        .into_values()
        .map(|(pod_ref, containers, total, start)| {
            json!({
                "podRef": pod_ref,
                "startTime": start.map(|t| t.to_string()),
                "containers": containers,
                "cpu": cpu_json(&total),
                "memory": memory_json(&total),
            })
        })
        .collect();
    let now_cpu = node_cpu_nanos().unwrap_or(0);
    let nano_cores = {
        let mut previous = match state.stats.previous.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let rate = previous.and_then(|(at, cpu)| {
            let wall = at.elapsed().as_nanos() as u64;
            (wall > 0 && now_cpu >= cpu)
                .then(|| ((now_cpu - cpu) as u128 * 1_000_000_000 / wall as u128) as u64)
        });
        *previous = Some((Instant::now(), now_cpu));
        rate.unwrap_or(0)
    };
    let mem = meminfo();
    let total = mem.get("MemTotal").copied().unwrap_or(0);
    let available = mem.get("MemAvailable").copied().unwrap_or(0);
    let body = json!({
        "node": {
            "nodeName": state.node_name,
            "cpu": {"time": time_now(), "usageNanoCores": nano_cores, "usageCoreNanoSeconds": now_cpu},
            "memory": {
                "time": time_now(),
                "availableBytes": available,
                "usageBytes": total.saturating_sub(mem.get("MemFree").copied().unwrap_or(0)),
                "workingSetBytes": total.saturating_sub(available),
                "rssBytes": 0,
                "pageFaults": 0,
                "majorPageFaults": 0,
            },
        },
        "pods": pods,
    });
    let mut response = full(StatusCode::OK, body.to_string());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

pub async fn metrics(state: &State) -> Response<Body> {
    let Some(metrics) = &state.metrics else {
        return full(StatusCode::NOT_FOUND, "metrics are disabled");
    };
    if let Ok(containers) = state
        .runtime
        .list_containers(&[(labels::NODE, state.node_name.as_str())])
        .await
    {
        let running_sandboxes = containers
            .iter()
            .filter(|c| c.identity.kind == Kind::Sandbox && c.state.is_running())
            .count();
        metrics.running_pods.set(running_sandboxes as i64);
        for (label, wanted) in [("running", 0u8), ("exited", 1), ("created", 2)] {
            let n = containers
                .iter()
                .filter(|c| c.identity.kind != Kind::Sandbox)
                .filter(|c| match c.state {
                    ContainerState::Running { .. } => wanted == 0,
                    ContainerState::Exited { .. } => wanted == 1,
                    ContainerState::Created => wanted == 2,
                })
                .count();
            metrics
                .running_containers
                .with_label_values(&[label])
                .set(n as i64);
        }
    }
    let mut response = full(StatusCode::OK, metrics.render());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
