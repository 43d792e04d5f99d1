//! Losing and recovering quorum, and failover at the Kubernetes API level.
//!
//! - `skiff cluster status` reports every member's progress and health, and says when quorum
//!   is lost.
//! - After losing 2 of 3 members for good, `skiff server --force-new-cluster` on the survivor
//!   keeps every acknowledged write, accepts writes, takes new members (with new ids), and a
//!   dropped member that comes back with its old data cannot disturb it.
//! - With kubectl against the survivors: each member `kill -9`ed in turn, all three at once and
//!   restarted in a random order, one member paused (SIGSTOP) for 20 s — after each step
//!   writes succeed and no acknowledged object is lost.

use std::path::Path;
use std::time::{Duration, Instant};

use skiff_tests::cluster::Cluster;
use skiff_tests::kubectl::{Kubectl, kubectl_versions};
use skiff_tests::kv;
use skiff_tests::wait;

async fn cli(args: Vec<String>) -> anyhow::Result<(bool, String, String)> {
    let bin = skiff_tests::skiff_bin();
    let out =
        tokio::task::spawn_blocking(move || std::process::Command::new(bin).args(&args).output())
            .await??;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    ))
}

fn status_args(c: &Cluster, i: usize) -> Vec<String> {
    vec![
        "cluster".into(),
        "status".into(),
        "--endpoints".into(),
        c.members[i].addr.clone(),
        "--data-dir".into(),
        c.members[i].data_dir.display().to_string(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_new_cluster_after_losing_two_of_three_keeps_data() -> anyhow::Result<()> {
    let mut c = Cluster::start(3, &[]).await?;
    let mut kv0 = c.kv(0)?;
    for i in 0..300 {
        kv::put(&mut kv0, &format!("/q/{i:04}"), &format!("v{i}")).await?;
    }
    let (ok, out, err) = cli(status_args(&c, 1)).await?;
    anyhow::ensure!(ok, "cluster status: {out}\n{err}");
    for name in [
        "m1",
        "m2",
        "m3",
        "REVISION",
        "APPLIED",
        "3/3 voters healthy: healthy",
    ] {
        assert!(out.contains(name), "{name} in:\n{out}");
    }
    let lines = out.lines().filter(|l| l.trim_end().ends_with("ok")).count();
    assert_eq!(lines, 3, "three healthy rows:\n{out}");

    // Two members are lost for good.
    c.kill(1);
    c.kill(2);
    let (ok, out, err) = cli(status_args(&c, 0)).await?;
    anyhow::ensure!(ok, "cluster status: {out}\n{err}");
    assert!(out.contains("QUORUM LOST"), "{out}");
    assert!(out.contains("unreachable"), "{out}");

    // Recovery: one command on the survivor.
    c.kill(0);
    c.spawn(0, &["--force-new-cluster"])?;
    c.wait_ready(0).await?;
    let mut kv0 = c.kv(0)?;
    let kept = kv::prefix(&mut kv0, "/q/", false).await?;
    assert_eq!(kept.len(), 300, "every acknowledged write is kept");
    kv::put(&mut kv0, "/q/after", "yes").await?;
    let r = c.members_of(0).await?;
    assert_eq!(r.members.len(), 1, "{:?}", r.members);

    // New members join the recovered cluster with new ids.
    let a = c.join_new_member()?;
    let b = c.join_new_member()?;
    c.wait_voters(3).await?;
    let ids: Vec<u64> = c
        .members_of(0)
        .await?
        .members
        .iter()
        .map(|m| m.id)
        .collect();
    assert!(
        ids.iter().filter(|id| **id != 1).all(|id| *id > 3),
        "{ids:?}"
    );
    let mut kva = c.kv(a)?;
    assert_eq!(kv::prefix(&mut kva, "/q/", false).await?.len(), 301);

    // A dropped member restarted with its old data cannot take over.
    c.restart(1)?;
    wait::until(
        "the dropped member to answer",
        Duration::from_secs(20),
        || async { Ok(c.status(1).await.ok().map(|_| ())) },
    )
    .await?;
    let started = Instant::now();
    let mut n = 0;
    while started.elapsed() < Duration::from_secs(3) {
        kv::put(&mut kv0, &format!("/q/late/{n}"), "x").await?;
        n += 1;
    }
    let r = c.members_of(b).await?;
    let names: Vec<&str> = r.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(
        !names.contains(&"m2"),
        "the dropped member's campaigns are refused: {names:?}"
    );
    let leader = r.members.iter().find(|m| m.id == r.leader_id);
    assert!(leader.is_some_and(|m| m.name != "m2"), "{:?}", r);
    Ok(())
}

fn kubectl_for(c: &Cluster, bin: &Path, i: usize) -> anyhow::Result<Kubectl> {
    let mut k = Kubectl::new(
        bin.to_path_buf(),
        c.members[0].data_dir.join("admin.kubeconfig"),
    )?;
    k.server = Some(format!("https://{}", c.members[i].api));
    Ok(k)
}

/// Creates a ConfigMap through member `i`, retrying while the cluster recovers.
async fn create_through(c: &Cluster, bin: &Path, i: usize, name: &str) -> anyhow::Result<()> {
    let k = kubectl_for(c, bin, i)?;
    let what = format!("kubectl create configmap {name} through member {}", i + 1);
    wait::until(&what, Duration::from_secs(30), || async {
        let out = k.run(&[
            "create",
            "configmap",
            name,
            "--from-literal",
            &format!("k={name}"),
        ])?;
        // A retry after an unknown outcome may find it created.
        Ok((out.ok || out.stderr.contains("AlreadyExists")).then_some(()))
    })
    .await
}

async fn all_present(c: &Cluster, bin: &Path, i: usize, names: &[String]) -> anyhow::Result<()> {
    let k = kubectl_for(c, bin, i)?;
    let what = format!("every acknowledged ConfigMap through member {}", i + 1);
    wait::until(&what, Duration::from_secs(30), || async {
        let out = k.run(&["get", "configmaps", "-o", "name"])?;
        Ok((out.ok
            && names
                .iter()
                .all(|n| out.stdout.contains(&format!("configmap/{n}\n"))))
        .then_some(()))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_keeps_working_through_kills_restarts_and_a_pause() -> anyhow::Result<()> {
    let Some((_, bin)) = kubectl_versions().into_iter().next_back() else {
        anyhow::bail!("no versioned kubectl found (SKIFF_KUBECTL_DIR)");
    };
    let mut c = Cluster::start(3, &[]).await?;
    let mut acked: Vec<String> = Vec::new();
    create_through(&c, &bin, 0, "start").await?;
    acked.push("start".into());

    // Each member killed in turn; writes go through a survivor.
    for victim in 0..3 {
        c.kill(victim);
        let survivor = (victim + 1) % 3;
        let name = format!("after-kill-{}", victim + 1);
        create_through(&c, &bin, survivor, &name).await?;
        acked.push(name);
        all_present(&c, &bin, (victim + 2) % 3, &acked).await?;
        c.restart(victim)?;
        c.wait_ready(victim).await?;
    }

    // All three at once, restarted in a random order.
    for i in 0..3 {
        c.kill(i);
    }
    let mut order = vec![0usize, 1, 2];
    let r = rand::random::<u32>() as usize;
    order.rotate_left(r % 3);
    if r % 2 == 0 {
        order.swap(1, 2);
    }
    for &i in &order {
        c.restart(i)?;
    }
    for &i in &order {
        c.wait_ready(i).await?;
    }
    create_through(&c, &bin, order[0], "after-all").await?;
    acked.push("after-all".into());
    for i in 0..3 {
        all_present(&c, &bin, i, &acked).await?;
    }

    // The leader paused for 20 s: the others carry on; it catches up after.
    let leader = c.leader().await?;
    let pid = c.members[leader]
        .child
        .as_ref()
        .map(|ch| ch.id() as i32)
        .unwrap_or(0);
    // A paused member is resumed even if the test fails midway.
    struct Resume(i32);
    impl Drop for Resume {
        fn drop(&mut self) {
            let _ = signal(self.0, "CONT");
        }
    }
    let _resume = Resume(pid);
    anyhow::ensure!(pid > 0, "no leader process");
    let paused_at = Instant::now();
    signal(pid, "STOP")?;
    let other = (leader + 1) % 3;
    create_through(&c, &bin, other, "during-pause").await?;
    acked.push("during-pause".into());
    all_present(&c, &bin, (leader + 2) % 3, &acked).await?;
    let rest = Duration::from_secs(20).saturating_sub(paused_at.elapsed());
    // The scenario is a 20 s pause, not a wait for a condition.
    tokio::time::sleep(rest).await;
    signal(pid, "CONT")?;
    all_present(&c, &bin, leader, &acked).await?;
    create_through(&c, &bin, leader, "after-pause").await?;
    acked.push("after-pause".into());
    for i in 0..3 {
        all_present(&c, &bin, i, &acked).await?;
    }
    Ok(())
}

/// Sends a signal to a child process this test started (`kill -STOP`, `kill -CONT`).
fn signal(pid: i32, sig: &str) -> anyhow::Result<()> {
    let status = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()?;
    anyhow::ensure!(status.success(), "kill -{sig} {pid} failed");
    Ok(())
}
