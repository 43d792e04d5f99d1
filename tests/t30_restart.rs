//! Restarts: a member catches up through a snapshot after the log it missed was purged; all
//! members killed at once and restarted in reverse order keep every acknowledged write; a
//! member restarted at a new address rejoins; a member that starts behind serves local reads
//! only after catching up.

use std::time::Duration;

use skiff_tests::cluster::Cluster;
use skiff_tests::kv;
use skiff_tests::load::{Writers, missing};
use skiff_tests::wait;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_member_catches_up_through_a_snapshot_after_log_purge() -> anyhow::Result<()> {
    let mut c = Cluster::start(3, &["--snapshot-after-logs", "40", "--logs-kept", "5"]).await?;
    let leader = c.leader().await?;
    let lagging = (leader + 1) % 3;
    let applied_before = c.status(lagging).await?.applied_index;
    c.kill(lagging);
    let mut kv_l = c.kv(leader)?;
    for i in 0..200 {
        kv::put_retrying(&mut kv_l, &format!("/snap/{i:04}"), &format!("v{i}")).await?;
    }
    let purged = wait::until(
        "the leader to snapshot and purge its log",
        Duration::from_secs(20),
        || async {
            let s = c.status(leader).await?;
            Ok((s.purged_index > applied_before).then_some(s.purged_index))
        },
    )
    .await?;
    assert!(
        purged > applied_before,
        "the leader purged up to {purged}, beyond the lagging member's {applied_before}"
    );
    c.restart(lagging)?;
    let mut kv_lag = c.kv(lagging)?;
    wait::until(
        &format!("the lagging member to hold all 200 keys\n{}", c.log_tails()),
        Duration::from_secs(30),
        || {
            let mut kv_lag = kv_lag.clone();
            async move {
                Ok((kv::prefix(&mut kv_lag, "/snap/", true).await?.len() == 200).then_some(()))
            }
        },
    )
    .await?;
    let st = c.status(lagging).await?;
    // The entries up to `purged` no longer exist in any log: only a snapshot can have brought them.
    assert!(
        st.snapshot_index >= purged,
        "the lagging member's snapshot index {} is below the purge point {purged}",
        st.snapshot_index
    );
    let v = kv::get(&mut kv_lag, "/snap/0199", true)
        .await?
        .expect("last key");
    assert_eq!(v.value, b"v199");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_members_killed_at_once_and_restarted_in_reverse_order_keep_every_acknowledged_write()
-> anyhow::Result<()> {
    let mut c = Cluster::start(3, &[]).await?;
    let creds = c.credentials()?;
    let addrs: Vec<String> = c.members.iter().map(|m| m.addr.clone()).collect();
    let writers = Writers::start(&creds, &addrs, 6, "/all/");
    wait::until("some writes", Duration::from_secs(10), || async {
        Ok((writers.acked_count() > 200).then_some(()))
    })
    .await?;
    for i in 0..3 {
        c.kill(i);
    }
    let acked = writers.stop().await;
    for i in (0..3).rev() {
        c.restart(i)?;
    }
    for i in 0..3 {
        c.wait_ready(i).await?;
    }
    let leader = c.leader().await?;
    let found = kv::prefix(&mut c.kv(leader)?, "/all/", false).await?;
    let lost = missing(&acked, &found);
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes lost: {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(5)]
    );
    // And the cluster still takes writes.
    kv::put(&mut c.kv(0)?, "/all/after", "1").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_restarted_at_a_new_address_rejoins() -> anyhow::Result<()> {
    let mut c = Cluster::start(3, &[]).await?;
    let leader = c.leader().await?;
    let moving = (leader + 1) % 3;
    c.kill(moving);
    let new_addr = format!("127.0.0.1:{}", skiff_tests::cluster::free_port());
    c.members[moving].addr = new_addr.clone();
    c.restart(moving)?;
    let name = c.members[moving].name.clone();
    wait::until(
        &format!(
            "the membership to record {name} at {new_addr}\n{}",
            c.log_tails()
        ),
        Duration::from_secs(20),
        || async {
            let r = c.members_of(leader).await?;
            Ok(r.members
                .iter()
                .any(|m| m.name == name && m.addr == new_addr)
                .then_some(()))
        },
    )
    .await?;
    // It receives new writes at its new address.
    kv::put(&mut c.kv(leader)?, "/moved", "yes").await?;
    let kv_m = c.kv(moving)?;
    wait::until(
        "the moved member to apply a new write",
        Duration::from_secs(10),
        || {
            let mut kv_m = kv_m.clone();
            async move { Ok(kv::get(&mut kv_m, "/moved", true).await?.map(|_| ())) }
        },
    )
    .await?;
    Ok(())
}

/// A member that starts behind the cluster does not hand out its old state as a serializable
/// ("any version") read before it has caught up once: with no majority to ask, the read fails
/// instead of going back in time; once the others are back, it answers the newer value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_member_serves_local_reads_only_after_catching_up() -> anyhow::Result<()> {
    let mut c = Cluster::start(3, &[]).await?;
    let leader = c.leader().await?;
    let behind = (leader + 1) % 3;
    let mut kv_l = c.kv(leader)?;
    kv::put(&mut kv_l, "/fresh", "old").await?;
    let mut kv_b = c.kv(behind)?;
    wait::until(
        "the member to apply the first value",
        Duration::from_secs(10),
        || {
            let mut kv_b = kv_b.clone();
            async move {
                let v = kv::get(&mut kv_b, "/fresh", true).await?;
                Ok(v.filter(|v| v.value == b"old").map(|_| ()))
            }
        },
    )
    .await?;
    c.kill(behind);
    kv::put(&mut kv_l, "/fresh", "new").await?;
    for i in (0..3).filter(|&i| i != behind) {
        c.kill(i);
    }
    c.restart(behind)?;
    wait::until(
        "the member to answer status",
        Duration::from_secs(20),
        || async { Ok(c.status(behind).await.ok().map(|_| ())) },
    )
    .await?;
    kv_b = c.kv(behind)?;
    let alone =
        tokio::time::timeout(Duration::from_secs(15), kv::get(&mut kv_b, "/fresh", true)).await;
    if let Ok(Ok(v)) = &alone {
        panic!(
            "a member alone and behind answered a serializable read with {:?}",
            v.as_ref()
                .map(|v| String::from_utf8_lossy(&v.value).into_owned())
        );
    }
    for i in (0..3).filter(|&i| i != behind) {
        c.restart(i)?;
    }
    let v = wait::until(
        "the member to answer after catching up",
        Duration::from_secs(30),
        || {
            let mut kv_b = kv_b.clone();
            async move { Ok(kv::get(&mut kv_b, "/fresh", true).await.ok().flatten()) }
        },
    )
    .await?;
    assert_eq!(
        String::from_utf8_lossy(&v.value),
        "new",
        "the first local read after catching up"
    );
    Ok(())
}
