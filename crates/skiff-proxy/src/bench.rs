//! `skiff bench proxy`: how fast rules follow the cluster, on real nftables inside a network
//! namespace this program creates (and deletes, also on failure).
//!
//! Figures: full resync of N Services × M endpoints (a fresh proxy programming everything, as
//! after a restart), and the time from an EndpointSlice change handed to the sync loop to the
//! transaction that contains it being committed by the kernel (p50/p99), with the loop's
//! production pacing (changes arrive every `change_interval`).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use tokio::sync::watch;

use crate::model::NodeInfo;
use crate::netns::{self, Netns};
use crate::nft::Nft;
use crate::rules::{self, build_rules};
use crate::sync::{self, LoopConfig, Snapshot};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Netns(#[from] netns::Error),
    #[error(transparent)]
    Nft(#[from] crate::nft::Error),
    #[error("building test objects: {0}")]
    Objects(#[from] serde_json::Error),
    #[error("the sync loop stopped")]
    LoopStopped,
}

/// What to measure.
#[derive(Clone, Debug)]
pub struct Args {
    pub services: usize,
    pub endpoints: usize,
    /// Endpoint changes to time.
    pub changes: usize,
    /// Pause between two changes.
    pub change_interval: Duration,
    /// Full resyncs to time.
    pub resyncs: usize,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            services: 1000,
            endpoints: 10,
            changes: 100,
            change_interval: Duration::from_millis(100),
            resyncs: 5,
        }
    }
}

/// The measured figures.
#[derive(Clone, Debug)]
pub struct Report {
    pub args: Args,
    pub chains: usize,
    pub script_bytes: usize,
    pub full_resync: Vec<Duration>,
    pub change_to_effect: Vec<Duration>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let mut full = self.full_resync.clone();
        full.sort();
        let mut change = self.change_to_effect.clone();
        change.sort();
        writeln!(
            f,
            "proxy: {} services x {} endpoints = {} chains, full script {} KiB",
            self.args.services,
            self.args.endpoints,
            self.chains,
            self.script_bytes / 1024
        )?;
        writeln!(
            f,
            "full resync ({} runs): p50 {:.1} ms, max {:.1} ms",
            full.len(),
            ms(percentile(&full, 0.5)),
            ms(percentile(&full, 1.0))
        )?;
        write!(
            f,
            "endpoint change -> rules in effect ({} changes): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            change.len(),
            ms(percentile(&change, 0.5)),
            ms(percentile(&change, 0.99)),
            ms(percentile(&change, 1.0))
        )
    }
}

fn service(i: usize) -> Result<Service, serde_json::Error> {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("svc-{i}"), "namespace": "bench"},
        "spec": {
            "type": "ClusterIP",
            "clusterIP": format!("10.43.{}.{}", i / 250, i % 250 + 1),
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]
        }
    }))
}

fn slice(i: usize, endpoints: usize, round: usize) -> Result<EndpointSlice, serde_json::Error> {
    let list: Vec<serde_json::Value> = (0..endpoints)
        .map(|e| {
            let n = i * endpoints + e + round;
            serde_json::json!({
                "addresses": [format!("10.42.{}.{}", (n / 250) % 250, n % 250 + 1)],
                "conditions": {"ready": true},
                "nodeName": "bench-node"
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("svc-{i}-abc"), "namespace": "bench",
                     "labels": {"kubernetes.io/service-name": format!("svc-{i}")}},
        "addressType": "IPv4",
        "endpoints": list,
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
    }))
}

/// Runs the benchmark in a fresh network namespace.
pub async fn run(args: Args) -> Result<Report, Error> {
    let ns = Netns::create(&format!("skbench-{}", std::process::id()))?;
    let nft_command = {
        let mut c = ns.prefix();
        c.push("nft".into());
        c
    };
    let services: Vec<Arc<Service>> = (0..args.services)
        .map(|i| service(i).map(Arc::new))
        .collect::<Result<_, _>>()?;
    let mut slices: Vec<Arc<EndpointSlice>> = (0..args.services)
        .map(|i| slice(i, args.endpoints, 0).map(Arc::new))
        .collect::<Result<_, _>>()?;
    let node = NodeInfo {
        name: "bench-node".into(),
    };
    let config = rules::Config::default();
    let desired = build_rules(&services, &slices, &node, &config);
    let script_bytes = crate::script::render(None, &desired, &Default::default()).len();

    let mut full_resync = Vec::new();
    for _ in 0..args.resyncs.max(1) {
        let mut nft = Nft::new(nft_command.clone(), None);
        let started = Instant::now();
        nft.sync(build_rules(&services, &slices, &node, &config))
            .await?;
        full_resync.push(started.elapsed());
    }

    let (snapshot_tx, snapshot_rx) = watch::channel(Arc::new(Snapshot {
        generation: 1,
        services: services.clone(),
        slices: slices.clone(),
    }));
    let (applied_tx, mut applied_rx) = watch::channel(0u64);
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let loop_task = tokio::spawn(sync::run(
        LoopConfig {
            node: node.clone(),
            rules: config.clone(),
            min_interval: Duration::from_millis(50),
            max_backoff: Duration::from_secs(5),
        },
        Nft::new(nft_command.clone(), None),
        snapshot_rx,
        applied_tx,
        None,
        async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        },
    ));
    applied_rx
        .wait_for(|g| *g >= 1)
        .await
        .map_err(|_| Error::LoopStopped)?;
    let mut change_to_effect = Vec::new();
    for round in 1..=args.changes {
        tokio::time::sleep(args.change_interval).await;
        let which = (round * 7919) % args.services.max(1);
        if let Some(entry) = slices.get_mut(which) {
            *entry = Arc::new(slice(which, args.endpoints, round)?);
        }
        let generation = 1 + round as u64;
        let started = Instant::now();
        snapshot_tx.send_replace(Arc::new(Snapshot {
            generation,
            services: services.clone(),
            slices: slices.clone(),
        }));
        applied_rx
            .wait_for(|g| *g >= generation)
            .await
            .map_err(|_| Error::LoopStopped)?;
        change_to_effect.push(started.elapsed());
    }
    let _ = stop_tx.send(true);
    let _ = loop_task.await;
    drop(ns);
    Ok(Report {
        chains: desired.chains.len(),
        script_bytes,
        args,
        full_resync,
        change_to_effect,
    })
}
