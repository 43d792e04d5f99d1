//! `skiff bench member`: a member's resident memory when idle, the time to scrape its metrics,
//! and its cold start to serving.
//!
//! Starts a local cluster, leaves it idle, and reads every member's `VmRSS`. Then it scrapes
//! every member's metrics endpoint as Prometheus would (one HTTP GET of `/metrics`, the whole
//! body read), on a new connection each time, and reports the latency. Then, round after
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
    /// Metrics scrapes per member.
    #[arg(long, default_value_t = 50)]
    pub scrapes: usize,
}

/// One scrape of `http://<addr>/metrics` on a new connection: the time until the whole body
/// has arrived, and the body's size.
async fn scrape(addr: &str) -> anyhow::Result<(Duration, usize)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let started = Instant::now();
    let mut conn = tokio::net::TcpStream::connect(addr).await?;
    conn.write_all(
        format!(
            "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nAccept: text/plain\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await?;
    let mut body = Vec::new();
    conn.read_to_end(&mut body).await?;
    let took = started.elapsed();
    anyhow::ensure!(
        body.starts_with(b"HTTP/1.") && body.get(8..12) == Some(b" 200".as_slice()),
        "{addr} answered {:?}",
        String::from_utf8_lossy(&body[..body.len().min(80)])
    );
    anyhow::ensure!(
        body.windows(21).any(|w| w == b"skiff_store_is_leader"),
        "{addr}'s metrics have no skiff_store_is_leader series"
    );
    Ok((took, body.len()))
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
        let pid = m.child.as_ref().map_or(0, |c| c.id());
        println!("idle RSS {}: {}", m.name, super::stats::rss_text(pid));
    }
    println!("idle RSS max={worst:.1}MiB (target < 40 MiB)");
    let mut scrapes = Samples::default();
    let mut size = 0;
    for _ in 0..args.scrapes {
        for m in &cluster.members {
            let (took, bytes) = tokio::time::timeout(Duration::from_secs(5), scrape(&m.metrics))
                .await
                .map_err(|_| anyhow::anyhow!("scraping {} took over 5 s", m.name))??;
            scrapes.latencies.push(took);
            size = size.max(bytes);
        }
    }
    println!(
        "metrics scrape ({} per member, up to {} KiB) p50={:.1}ms p99={:.1}ms max={:.1}ms (target < 50 ms)",
        args.scrapes,
        size / 1024,
        stats::ms(scrapes.percentile(0.5)),
        stats::ms(scrapes.percentile(0.99)),
        stats::ms(scrapes.max())
    );
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
