//! `skiff bench member`: a member's resident memory when idle, and its cold start to serving.
//!
//! Starts a local cluster, leaves it idle, and reads every member's `VmRSS`. Then, round after
//! round, kills a follower and starts it again from its data directory, timing from the
//! process start until its Kubernetes API answers `/version` over TLS and its store answers a
//! status call with a known leader (both must serve).

use std::time::{Duration, Instant};

use skiff_store::pb::kv::StatusRequest;

use super::api::{client_for, rss_mib};
use super::local::LocalCluster;
use super::stats::{self, Samples};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, default_value_t = 3)]
    pub members: usize,
    /// Seconds the cluster idles before memory is read.
    #[arg(long, default_value_t = 10)]
    pub idle_secs: u64,
    /// Restarts of a follower to time.
    #[arg(long, default_value_t = 10)]
    pub rounds: usize,
}

/// Polls member `i` every 2 ms until its API and its store both serve.
async fn until_serving(cluster: &LocalCluster, i: usize, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    let creds = cluster.credentials()?;
    let mut api_up = false;
    while Instant::now() < deadline {
        // A plain connect first: the kube client logs every refused connection as an error.
        let listening = api_up
            || tokio::net::TcpStream::connect(&cluster.members[i].api)
                .await
                .is_ok();
        if !api_up
            && listening
            && let Ok(client) = client_for(cluster, i).await
            && let Ok(Ok(_)) =
                tokio::time::timeout(Duration::from_millis(500), client.apiserver_version()).await
        {
            api_up = true;
        }
        if api_up
            && let Ok(mut kv) = creds.kv(&cluster.members[i].addr)
            && let Ok(Ok(s)) =
                tokio::time::timeout(Duration::from_millis(500), kv.status(StatusRequest {})).await
            && s.get_ref().leader_id != 0
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    anyhow::bail!(
        "member {} did not serve within {limit:?}",
        cluster.members[i].name
    )
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.members >= 2,
        "use at least 2 members (one is restarted)"
    );
    eprintln!("starting a {}-member Skiff cluster...", args.members);
    let mut cluster = LocalCluster::start(args.members, &[]).await?;
    println!(
        "bench member: {} members, idle {} s, {} restarts of a follower",
        args.members, args.idle_secs, args.rounds
    );
    tokio::time::sleep(Duration::from_secs(args.idle_secs)).await;
    let mut worst: f64 = 0.0;
    for m in &cluster.members {
        let rss = m.child.as_ref().and_then(|c| rss_mib(c.id()));
        if let Some(r) = rss {
            worst = worst.max(r);
        }
        println!(
            "idle RSS {}: {}",
            m.name,
            rss.map_or("unknown".into(), |r| format!("{r:.1} MiB"))
        );
    }
    println!("idle RSS max={worst:.1}MiB (target < 40 MiB)");
    let mut starts = Samples::default();
    for round in 1..=args.rounds {
        let leader = cluster
            .leader_index()
            .await
            .ok_or_else(|| anyhow::anyhow!("no leader"))?;
        let follower = (leader + 1 + round % (args.members - 1)) % args.members;
        cluster.kill(follower);
        let started = Instant::now();
        cluster.restart(follower)?;
        until_serving(&cluster, follower, Duration::from_secs(30)).await?;
        let took = started.elapsed();
        starts.latencies.push(took);
        println!(
            "round {round:>2}: {} serving {:.0} ms after its process started",
            cluster.members[follower].name,
            stats::ms(took)
        );
    }
    println!(
        "cold start to serving p50={:.0}ms max={:.0}ms (target < 300 ms)",
        stats::ms(starts.percentile(0.5)),
        stats::ms(starts.max())
    );
    Ok(())
}
