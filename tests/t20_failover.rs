//! Failover: killing the leader (SIGKILL) keeps the cluster writable and loses no
//! acknowledged write.

use std::time::{Duration, Instant};

use skiff_tests::cluster::Cluster;
use skiff_tests::kv;
use skiff_tests::load::{Writers, missing};
use skiff_tests::wait;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_keeps_the_cluster_writable_and_loses_nothing() -> anyhow::Result<()> {
    let mut c = Cluster::start(3, &[]).await?;
    let creds = c.credentials()?;
    let addrs: Vec<String> = c.members.iter().map(|m| m.addr.clone()).collect();
    let writers = Writers::start(&creds, &addrs, 6, "/fo/");
    wait::until(
        "writes before the kill",
        Duration::from_secs(10),
        || async { Ok((writers.acked_count() > 50).then_some(())) },
    )
    .await?;
    for round in 0..2 {
        let leader = c.leader().await?;
        let killed_at = Instant::now();
        c.kill(leader);
        let what = format!(
            "writes after killing the leader (round {round})\n{}",
            c.log_tails()
        );
        wait::until(&what, Duration::from_secs(15), || async {
            Ok((writers.acked_since(killed_at) > 20).then_some(()))
        })
        .await?;
        c.restart(leader)?;
        c.wait_ready(leader).await?;
    }
    let acked = writers.stop().await;
    let leader = c.leader().await?;
    let found = kv::prefix(&mut c.kv(leader)?, "/fo/", false).await?;
    let lost = missing(&acked, &found);
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes lost, e.g. {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(5)]
    );
    Ok(())
}
