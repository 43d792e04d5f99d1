//! Membership online: add a member under load (learner, then voter), remove members with the
//! real `skiff cluster` command (a live one and a dead one), transfer leadership, and a
//! membership change cut in half by the leader's death is finished by the next leader.

use std::time::Duration;

use skiff_tests::cluster::Cluster;
use skiff_tests::kv;
use skiff_tests::load::{Writers, missing};
use skiff_tests::wait;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_are_added_and_removed_online() -> anyhow::Result<()> {
    let mut c = Cluster::start(3, &[]).await?;
    let creds = c.credentials()?;
    let addrs: Vec<String> = c.members.iter().map(|m| m.addr.clone()).collect();
    let writers = Writers::start(&creds, &addrs, 4, "/mem/");
    let added = c.join_new_member()?;
    c.wait_voters(4).await?;
    let ids: Vec<u64> = c
        .members_of(0)
        .await?
        .members
        .iter()
        .map(|m| m.id)
        .collect();
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(unique.len(), 4, "member ids are distinct: {ids:?}");

    // Remove the new member with the CLI, through another member.
    let dd = c.members[0].data_dir.display().to_string();
    let endpoint = c.members[1].addr.clone();
    let name = c.members[added].name.clone();
    let (ok, out, err) = c.run_cli(&[
        "cluster",
        "remove",
        &name,
        "--endpoints",
        &endpoint,
        "--data-dir",
        &dd,
    ])?;
    assert!(ok, "remove failed: {out}{err}");
    c.kill(added);
    c.wait_voters(3).await?;

    // A dead member is removed the same way, and the two survivors keep a majority.
    let leader = c.leader().await?;
    let dead = (leader + 1) % 3;
    c.kill(dead);
    let dead_name = c.members[dead].name.clone();
    let endpoint = c.members[leader].addr.clone();
    let (ok, out, err) = c.run_cli(&[
        "cluster",
        "remove",
        &dead_name,
        "--endpoints",
        &endpoint,
        "--data-dir",
        &dd,
    ])?;
    assert!(ok, "remove of a dead member failed: {out}{err}");
    c.wait_voters(2).await?;
    let (ok, out, _) = c.run_cli(&[
        "cluster",
        "members",
        "--endpoints",
        &endpoint,
        "--data-dir",
        &dd,
    ])?;
    assert!(
        ok && !out.contains(&dead_name) && out.contains("2 members"),
        "{out}"
    );

    let acked = writers.stop().await;
    let found = kv::prefix(&mut c.kv(leader)?, "/mem/", false).await?;
    let lost = missing(&acked, &found);
    assert!(lost.is_empty(), "{} acknowledged writes lost", lost.len());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_is_transferred_on_request() -> anyhow::Result<()> {
    let c = Cluster::start(3, &[]).await?;
    let leader = c.leader().await?;
    let target = (leader + 2) % 3;
    let target_name = c.members[target].name.clone();
    let dd = c.members[0].data_dir.display().to_string();
    let endpoint = c.members[(leader + 1) % 3].addr.clone();
    let (ok, out, err) = c.run_cli(&[
        "cluster",
        "transfer-leader",
        &target_name,
        "--endpoints",
        &endpoint,
        "--data-dir",
        &dd,
    ])?;
    assert!(ok, "transfer failed: {out}{err}\n{}", c.log_tails());
    assert!(out.contains("is now the leader"), "{out}");
    wait::until(
        "every member to see the new leader",
        Duration::from_secs(10),
        || async {
            for i in 0..3 {
                let r = c.members_of(i).await?;
                let leader_name = r
                    .members
                    .iter()
                    .find(|m| m.id == r.leader_id)
                    .map(|m| m.name.clone());
                if leader_name.as_deref() != Some(target_name.as_str()) {
                    return Ok(None);
                }
            }
            Ok(Some(()))
        },
    )
    .await?;
    // Writes work under the new leader.
    kv::put(&mut c.kv(leader)?, "/after-transfer", "1").await?;
    Ok(())
}

/// openraft changes membership in two steps; a leader killed between them leaves a joint
/// configuration in which every commit needs a majority of the old voters *and* of the new.
/// The scenario forces that: with one voter paused, the leader proposes removing the third;
/// the joint entry reaches the third but cannot commit (the new configuration's majority needs
/// the paused one); the leader is killed. Once it is back and elected, the joint entry commits
/// but nobody is left to take the second step: the leader must take it by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_membership_change_cut_in_half_is_finished_by_the_next_leader() -> anyhow::Result<()> {
    let mut c = Cluster::start(3, &[]).await?;
    let a = c.leader().await?;
    let (b, gone) = ((a + 1) % 3, (a + 2) % 3);
    let gone_name = c.members[gone].name.clone();
    // A process stopped by SIGSTOP still dies of the SIGKILL that ends a failed test.
    c.signal(b, "STOP")?;
    let mut admin = c.admin(a)?;
    let request = skiff_store::pb::raft::RemoveMemberRequest {
        name: gone_name.clone(),
    };
    // It cannot finish while b is paused; the answer does not matter.
    let removal = tokio::spawn(async move { admin.remove_member(request).await });
    wait::until(
        "the joint configuration to reach the member being removed",
        Duration::from_secs(20),
        || async {
            let r = c.members_of(a).await?;
            let last = r
                .members
                .iter()
                .find(|m| m.leader)
                .and_then(|m| m.has_matched.then_some(m.matched_index));
            let theirs = r
                .members
                .iter()
                .find(|m| m.name == gone_name)
                .and_then(|m| m.has_matched.then_some(m.matched_index));
            Ok((r.changing && last.is_some() && last == theirs).then_some(()))
        },
    )
    .await?;
    removal.abort();
    c.kill(a);
    c.signal(b, "CONT")?;
    // a is the only member both halves can elect: b lacks the joint entry, and gone cannot
    // win b's vote in the new half, which needs a too.
    c.restart(a)?;
    wait::until(
        "the second step to be taken",
        Duration::from_secs(60),
        || async {
            let r = c.members_of(a).await?;
            let voters = r.members.iter().filter(|m| m.voter).count();
            Ok((!r.changing && voters == 2).then_some(r))
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", c.log_tails()))?;
    let r = c.members_of(b).await?;
    assert!(
        !r.members.iter().any(|m| m.name == gone_name),
        "{gone_name} is still a member: {:?}",
        r.members
    );
    // The two left commit on their own.
    kv::put(&mut c.kv(b)?, "/after-half-change", "1").await?;
    Ok(())
}
