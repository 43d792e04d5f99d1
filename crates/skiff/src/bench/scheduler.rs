//! `skiff bench scheduler`: pods scheduled per second. First the pure scheduler core in memory
//! (no I/O), then end to end on a local one-member cluster (`skiff server`, whose scheduler runs
//! on its Raft leader): N Node objects (no agents) and M pods created through the API as fast as
//! the clients go, timed from the first pod creation until every pod is bound.

use std::time::{Duration, Instant};

use super::local::LocalCluster;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Node objects to create (32 CPUs, 128 GiB, 110 pods each; no agents).
    #[arg(long, default_value_t = 1000)]
    pub nodes: usize,
    /// Pods to schedule (100m CPU, 128 MiB each).
    #[arg(long, default_value_t = 10_000)]
    pub pods: usize,
    /// Give up waiting for the bindings after this many seconds.
    #[arg(long, default_value_t = 900)]
    pub timeout_secs: u64,
    /// Only the in-memory figure (no cluster).
    #[arg(long)]
    pub in_memory_only: bool,
}

fn show(mode: &str, r: &skiff_scheduler::bench::Report) {
    let created = r
        .created
        .map(|d| format!(" (all created after {:.2}s)", d.as_secs_f64()))
        .unwrap_or_default();
    println!(
        "{mode:<10} nodes={} pods={} scheduled={} unschedulable={} elapsed={:.2}s pods/s={:.0}{created}",
        r.nodes,
        r.pods,
        r.scheduled,
        r.unschedulable,
        r.elapsed.as_secs_f64(),
        r.pods_per_second()
    );
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.nodes >= 1 && args.pods >= 1,
        "nodes and pods must be positive"
    );
    anyhow::ensure!(
        args.pods <= args.nodes * 110,
        "{} pods do not fit on {} nodes of 110 pods",
        args.pods,
        args.nodes
    );
    println!(
        "bench scheduler: {} nodes, {} pods ({} build)",
        args.nodes,
        args.pods,
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    let (nodes, pods) = (args.nodes, args.pods);
    let report =
        tokio::task::spawn_blocking(move || skiff_scheduler::bench::in_memory(nodes, pods)).await?;
    show("in-memory", &report);
    if args.in_memory_only {
        return Ok(());
    }
    eprintln!("starting a one-member Skiff cluster...");
    // Bench nodes have no agent renewing their Lease: keep the node lifecycle controller from
    // tainting them unreachable while the bench runs.
    let cluster = LocalCluster::start(1, &["--node-monitor-grace-secs", "86400"]).await?;
    let client = super::api::client_for(&cluster, 0).await?;
    wait_api(&client).await?;
    let started = Instant::now();
    let report = skiff_scheduler::bench::against_cluster_scheduler(
        client,
        args.nodes,
        args.pods,
        Duration::from_secs(args.timeout_secs),
    )
    .await?;
    show("api", &report);
    eprintln!(
        "(whole run including setup and cleanup: {:.1}s)",
        started.elapsed().as_secs_f64()
    );
    drop(cluster);
    Ok(())
}

/// Waits until the API serves the bootstrap objects.
pub async fn wait_api(client: &kube::Client) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let ns: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client.clone());
    loop {
        if ns.get_opt("default").await.ok().flatten().is_some() {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the API did not become ready in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
