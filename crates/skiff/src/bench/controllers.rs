//! `skiff bench controller-failover`: how long the cluster's control loops are gone when the
//! Raft leader is killed.
//!
//! A local cluster of `skiff server` members holds a few Node objects (no agents) and a
//! Deployment. Each round kills the leader with SIGKILL and at once scales the Deployment up by
//! one through a surviving member (retrying until a member accepts), then measures from the
//! kill: the new leader being known, the first control-loop write of the new term (the store's
//! fence log, `skiff_apiserver::objects::FENCE_LOG_KEY`), and the new pod created by the new
//! leader's controllers and bound by its scheduler. The killed member is restarted and the
//! Deployment allowed to settle before the next round.

use std::time::{Duration, Instant};

use anyhow::Context;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use skiff_store::pb::kv::{RangeRequest, StatusRequest};

use super::local::LocalCluster;
use super::stats::{self, Samples};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, default_value_t = 3)]
    pub members: usize,
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Node objects the pods are scheduled onto (no agents).
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
}

const NS: &str = "default";
const NAME: &str = "failover";

/// The term of the latest fenced write, read from member `i`'s replica.
async fn last_fenced_term(cluster: &LocalCluster, i: usize) -> Option<u64> {
    let mut kv = cluster
        .credentials()
        .ok()?
        .kv(&cluster.members[i].addr)
        .ok()?;
    let request = RangeRequest {
        key: skiff_apiserver::objects::FENCE_LOG_KEY.into(),
        serializable: true,
        ..Default::default()
    };
    let reply = tokio::time::timeout(Duration::from_millis(500), kv.range(request))
        .await
        .ok()?
        .ok()?;
    let value: serde_json::Value =
        serde_json::from_slice(&reply.into_inner().kvs.first()?.value).ok()?;
    value.get("term")?.as_u64()
}

async fn term_of(cluster: &LocalCluster, i: usize) -> anyhow::Result<u64> {
    let mut kv = cluster.credentials()?.kv(&cluster.members[i].addr)?;
    let status = tokio::time::timeout(Duration::from_secs(2), kv.status(StatusRequest {}))
        .await
        .context("status timed out")??;
    Ok(status.into_inner().raft_term)
}

/// Live pods of the Deployment, and how many of them are bound.
async fn pods(client: &kube::Client) -> anyhow::Result<(usize, usize)> {
    let api: Api<Pod> = Api::namespaced(client.clone(), NS);
    let list = api
        .list(&ListParams::default().labels(&format!("app={NAME}")))
        .await?;
    let live: Vec<&Pod> = list
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    let bound = live
        .iter()
        .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some())
        .count();
    Ok((live.len(), bound))
}

async fn settle(client: &kube::Client, replicas: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok((live, bound)) = pods(client).await
            && live == replicas
            && bound == replicas
        {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the Deployment did not settle at {replicas} bound pods in 120 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.members >= 3,
        "controller failover needs at least 3 members (a majority must survive)"
    );
    anyhow::ensure!(args.nodes >= 1, "--nodes must be at least 1");
    eprintln!("starting a {}-member Skiff cluster...", args.members);
    // Node objects without agents must not be tainted unreachable during the run.
    let mut cluster =
        LocalCluster::start(args.members, &["--node-monitor-grace-secs", "86400"]).await?;
    let mut clients = Vec::new();
    for i in 0..cluster.members.len() {
        clients.push(super::api::client_for(&cluster, i).await?);
    }
    super::scheduler::wait_api(&clients[0]).await?;
    let nodes: Api<Node> = Api::all(clients[0].clone());
    for i in 0..args.nodes {
        let node = skiff_scheduler::bench::bench_node(&format!("failover-node-{i}"));
        nodes.create(&PostParams::default(), &node).await?;
    }
    let mut replicas = 2usize;
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": NAME},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": NAME}},
                 "template": {"metadata": {"labels": {"app": NAME}},
                              "spec": {"containers": [{"name": "c", "image": "busybox",
                                  "resources": {"requests": {"cpu": "10m"}}}]}}}
    }))?;
    Api::<Deployment>::namespaced(clients[0].clone(), NS)
        .create(&PostParams::default(), &deployment)
        .await?;
    settle(&clients[0], replicas).await?;
    println!(
        "bench controller-failover: {} members, {} Node objects, {} rounds ({} build); each round: kill -9 the leader, scale a Deployment +1 through a survivor",
        args.members,
        args.nodes,
        args.rounds,
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    let (mut elected, mut first_write, mut created, mut bound) = (
        Samples::default(),
        Samples::default(),
        Samples::default(),
        Samples::default(),
    );
    for round in 1..=args.rounds {
        let leader = cluster
            .leader_index()
            .await
            .context("no leader before the round")?;
        let old_term = term_of(&cluster, leader).await?;
        let survivor = (leader + 1) % cluster.members.len();
        let client = clients[survivor].clone();
        replicas += 1;
        let killed = Instant::now();
        cluster.kill(leader);
        // Scale through the survivor until a member accepts it (no leader for a moment).
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
        let patch = json!({"spec": {"replicas": replicas}});
        let deadline = killed + Duration::from_secs(60);
        while deployments
            .patch(NAME, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .is_err()
        {
            anyhow::ensure!(
                Instant::now() < deadline,
                "no member took the scale in 60 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let scaled = killed.elapsed();
        let (mut t_elected, mut t_write, mut t_created, mut t_bound) = (None, None, None, None);
        while t_bound.is_none() || t_write.is_none() || t_elected.is_none() {
            anyhow::ensure!(
                Instant::now() < deadline,
                "round {round}: the new leader's controllers did not act within 60 s (elected {t_elected:?}, first write {t_write:?}, pod created {t_created:?})"
            );
            if t_elected.is_none()
                && let Some(new) = cluster.leader_index().await
                && new != leader
            {
                t_elected = Some(killed.elapsed());
            }
            if t_write.is_none()
                && last_fenced_term(&cluster, survivor)
                    .await
                    .is_some_and(|t| t > old_term)
            {
                t_write = Some(killed.elapsed());
            }
            if let Ok((live, n_bound)) = pods(&client).await {
                if t_created.is_none() && live >= replicas {
                    t_created = Some(killed.elapsed());
                }
                if n_bound >= replicas && live >= replicas {
                    t_bound = Some(killed.elapsed());
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (e, w, c, b) = (
            t_elected.unwrap_or_default(),
            t_write.unwrap_or_default(),
            t_created.unwrap_or_default(),
            t_bound.unwrap_or_default(),
        );
        println!(
            "round {round:>2}: killed {} (term {old_term}): new leader known {:.0} ms, scale accepted {:.0} ms, first control-loop write {:.0} ms, new pod created {:.0} ms, bound {:.0} ms",
            cluster.members[leader].name,
            stats::ms(e),
            stats::ms(scaled),
            stats::ms(w),
            stats::ms(c),
            stats::ms(b)
        );
        elected.latencies.push(e);
        first_write.latencies.push(w);
        created.latencies.push(c);
        bound.latencies.push(b);
        cluster.restart(leader)?;
        cluster.wait_ready(leader, Duration::from_secs(30)).await?;
        settle(&client, replicas).await?;
    }
    for (what, s) in [
        ("new leader known", &elected),
        ("first control-loop write", &first_write),
        ("scaled pod created", &created),
        ("scaled pod bound", &bound),
    ] {
        println!(
            "{what:<26} p50={:.0}ms max={:.0}ms",
            stats::ms(s.percentile(0.5)),
            stats::ms(s.max())
        );
    }
    drop(cluster);
    Ok(())
}
