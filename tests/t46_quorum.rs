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
//! - The leader isolated by dropping its packets (members in network namespaces): the majority
//!   elects a new leader and keeps acknowledging writes; the isolated member acknowledges none;
//!   healed, it follows the new leader and has every acknowledged write.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use skiff_jepsen::cluster::Cluster as JCluster;
use skiff_jepsen::net::{self, Net};
use skiff_jepsen::workload;
use skiff_store::client::Credentials;
use skiff_store::pb::raft::MembersRequest;

use skiff_tests::cluster::{Cluster, signal};
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
        kv::put_retrying(&mut kv0, &format!("/q/{i:04}"), &format!("v{i}")).await?;
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
    if r.is_multiple_of(2) {
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
        .map(|ch| ch.id())
        .unwrap_or(0);
    // A paused member is resumed even if the test fails midway.
    struct Resume(u32);
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
/// Who member `i` (of a namespaced cluster) says leads: the leader's index, or None.
async fn leader_seen_by(c: &JCluster, i: usize) -> Option<usize> {
    let creds = Credentials::from_data_dir(&c.members[0].data_dir).ok()?;
    let mut admin = creds.admin(&c.members[i].peer).ok()?;
    let r = tokio::time::timeout(Duration::from_secs(2), admin.members(MembersRequest {}))
        .await
        .ok()?
        .ok()?
        .into_inner();
    let leader = r.members.iter().find(|m| m.id == r.leader_id)?;
    c.members.iter().position(|m| m.name == leader.name)
}

fn config_map(name: &str) -> anyhow::Result<ConfigMap> {
    Ok(serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "data": {"k": name}
    }))?)
}

/// Creates ConfigMaps `w-<n>` one after another through one member's API until stopped;
/// remembers which were acknowledged (2xx) and when.
struct Writer {
    acked: Arc<Mutex<Vec<(String, Instant)>>>,
    failed: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    fn start(client: kube::Client) -> Writer {
        let acked = Arc::new(Mutex::new(Vec::new()));
        let failed = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, f, s) = (acked.clone(), failed.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let cms: Api<ConfigMap> = Api::namespaced(client, "default");
            let mut n = 0u64;
            while !s.load(Ordering::Relaxed) {
                let name = format!("w-{n}");
                n += 1;
                let Ok(cm) = config_map(&name) else { return };
                match cms.create(&PostParams::default(), &cm).await {
                    Ok(_) => a
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((name, Instant::now())),
                    Err(_) => {
                        // The outcome is unknown; the next write gets a new name.
                        f.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        Writer {
            acked,
            failed,
            stop,
            task,
        }
    }

    fn acked(&self) -> Vec<(String, Instant)> {
        self.acked.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn acked_after(&self, t: Instant) -> usize {
        self.acked().iter().filter(|(_, at)| *at > t).count()
    }

    async fn stop(self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        self.acked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(n, _)| n.clone())
            .collect()
    }
}

/// The network-isolation step, with members as processes in network namespaces of
/// their own (jepsen's harness): the leader's packets are dropped both ways while a client
/// keeps creating ConfigMaps through a majority member. A new leader is elected and writes go
/// on; the isolated member acknowledges no write and serves no linearizable read; healed, it
/// follows the new leader and has every acknowledged write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_leader_acknowledges_nothing_and_rejoins_with_every_write() -> anyhow::Result<()>
{
    let dir = tempfile::Builder::new()
        .prefix("skiff-t46-isolation-")
        .tempdir()?;
    let net = Net::create(3)?;
    let c = JCluster::start(net, dir.path(), &skiff_tests::skiff_bin(), Vec::new()).await?;
    let leader = wait::until("a leader", Duration::from_secs(30), || async {
        Ok(leader_seen_by(&c, 0).await)
    })
    .await?;
    let majority: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    let op_timeout = Duration::from_secs(15);
    let writer = Writer::start(workload::client(&c.kubeconfig(majority[0]), op_timeout).await?);
    wait::until(
        "10 acknowledged writes",
        Duration::from_secs(30),
        || async { Ok((writer.acked().len() >= 10).then_some(())) },
    )
    .await?;

    c.net.partition(&net::split(3, &[leader], &majority))?;
    let isolated_at = Instant::now();
    // Through the isolated member's API: writes and a linearizable read, all while it is cut
    // off. The server answers 504 after its 10 s request timeout (kubectl shows the status);
    // a kube-rs client is given up on after 20 s, which counts as not acknowledged either.
    let isolated = workload::client(&c.kubeconfig(leader), op_timeout).await?;
    let cms: Api<ConfigMap> = Api::namespaced(isolated.clone(), "default");
    let give_up = Duration::from_secs(20);
    let mut attempts = Vec::new();
    for k in 0..3 {
        let cms = cms.clone();
        attempts.push(tokio::spawn(async move {
            let started = Instant::now();
            let name = format!("isolated-{k}");
            let cm = match config_map(&name) {
                Ok(cm) => cm,
                Err(e) => return (format!("{e}"), started.elapsed(), false),
            };
            match tokio::time::timeout(give_up, cms.create(&PostParams::default(), &cm)).await {
                Ok(Ok(_)) => ("201".to_string(), started.elapsed(), true),
                Ok(Err(e)) => (format!("{e}"), started.elapsed(), false),
                Err(_) => ("no answer".to_string(), started.elapsed(), false),
            }
        }));
    }
    let read = {
        let cms = cms.clone();
        tokio::spawn(async move {
            tokio::time::timeout(give_up, cms.list(&Default::default()))
                .await
                .map(|r| r.map(|l| l.items.len()))
        })
    };
    let kubectl = kubectl_versions().pop().map(|(_, bin)| bin);
    let kubectl_isolated = match kubectl {
        Some(bin) => {
            let k = Kubectl::new(bin, c.kubeconfig(leader))?;
            Some(tokio::task::spawn_blocking(move || {
                k.run(&[
                    "create",
                    "configmap",
                    "isolated-kubectl",
                    "--request-timeout=15s",
                    "-v=6",
                ])
            }))
        }
        None => None,
    };

    // The majority elects a new leader and the client's writes through it go on.
    let new_leader = wait::until(
        "a new leader among the majority",
        Duration::from_secs(30),
        || async {
            let seen = leader_seen_by(&c, majority[0]).await;
            Ok(seen.filter(|l| majority.contains(l)))
        },
    )
    .await?;
    let elected_after = isolated_at.elapsed();
    wait::until_every(
        "10 writes acknowledged through the majority after the isolation",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || async { Ok((writer.acked_after(isolated_at) >= 10).then_some(())) },
    )
    .await
    .with_context(|| c.log_tails())?;
    let first_ack = writer
        .acked()
        .iter()
        .map(|(_, at)| *at)
        .find(|at| *at > isolated_at)
        .map(|at| at - isolated_at);

    for a in attempts {
        let (outcome, took, acknowledged) = a.await?;
        assert!(
            !acknowledged,
            "the isolated old leader acknowledged a write ({outcome}, after {took:?})"
        );
        eprintln!("write through the isolated member: {outcome} after {took:?}");
    }
    match read.await? {
        Ok(Ok(n)) => panic!("the isolated member served a linearizable list ({n} items)"),
        Ok(Err(e)) => eprintln!("list through the isolated member: {e}"),
        Err(_) => eprintln!("list through the isolated member: no answer in {give_up:?}"),
    }
    if let Some(task) = kubectl_isolated {
        let out = task.await??;
        assert!(
            !out.ok,
            "kubectl created through the isolated member:\n{}",
            out.stdout
        );
        assert!(
            out.stderr.contains("504"),
            "the isolated member answers 504 (the write's outcome is unknown):\n{}",
            out.stderr
        );
        eprintln!("kubectl through the isolated member: failed with 504 as expected");
    }
    wait::until(
        "the other majority member to follow the new leader",
        Duration::from_secs(10),
        || async { Ok((leader_seen_by(&c, majority[1]).await == Some(new_leader)).then_some(())) },
    )
    .await?;
    let isolated_for = isolated_at.elapsed();

    // Every attempt through the isolated member has ended (above), so all of them ended while
    // it was cut off.
    c.net.heal()?;
    let healed_at = Instant::now();
    let while_isolated = writer
        .acked()
        .iter()
        .filter(|(_, at)| *at > isolated_at && *at <= healed_at)
        .count();
    let unknown = writer.failed.load(Ordering::Relaxed);
    let acked = writer.stop().await;
    // Healed, the old leader follows the new one and reads every acknowledged write.
    wait::until(
        "the healed member to follow the new leader",
        Duration::from_secs(30),
        || async { Ok((leader_seen_by(&c, leader).await == Some(new_leader)).then_some(())) },
    )
    .await?;
    let rejoined_after = healed_at.elapsed();
    wait::until_every(
        "every acknowledged write through the healed member",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || async {
            let names: std::collections::HashSet<String> = cms
                .list(&Default::default())
                .await?
                .items
                .into_iter()
                .filter_map(|cm| cm.metadata.name)
                .collect();
            let missing: Vec<&String> = acked.iter().filter(|n| !names.contains(*n)).collect();
            anyhow::ensure!(missing.is_empty(), "missing {missing:?}");
            Ok(Some(()))
        },
    )
    .await?;
    cms.create(&PostParams::default(), &config_map("after-heal")?)
        .await
        .context("a write through the healed member")?;
    eprintln!(
        "isolation of the leader: new leader after {elected_after:?}, first write acknowledged \
         through the majority after {first_ack:?}, {while_isolated} writes acknowledged while \
         it was isolated for {isolated_for:?} ({unknown} failed with an unknown outcome); \
         healed member following again after {rejoined_after:?}; {} writes acknowledged in all",
        acked.len()
    );
    Ok(())
}
