//! Backup and restore end to end with the real `skiff backup` commands: a backup taken through
//! a follower under write load restores onto three fresh members at new addresses with every
//! object equal (count and content hash at the backup's revision); watchers from before the
//! restore get "compacted" (the KV watch) and 410 (the Kubernetes API) and relist; corrupt
//! files, files of another format version or Skiff release, and a missing encryption key are
//! refused with clear messages. A node agent pointed at a restored cluster with its new node
//! token joins the new CA and relists: the restored pods run (containers kept or recreated),
//! containers of pods the restored store does not have are removed, and the Node is Ready.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use kube::api::{Api, DeleteParams, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use skiff_store::pb::kv::kv_client::KvClient;
use skiff_store::pb::kv::{
    KeyValue, RangeRequest, WatchCreate, WatchRequest, WatchResponse, watch_request,
};
use skiff_tests::agent::{self, Agent};
use skiff_tests::cluster::Cluster;
use skiff_tests::kv;
use skiff_tests::load::Writers;
use skiff_tests::wait;
use tonic::transport::Channel;

/// Every key at `revision` (0 = latest), linearizable.
async fn all_keys(kv: &mut KvClient<Channel>, revision: u64) -> anyhow::Result<Vec<KeyValue>> {
    let r = kv
        .range(RangeRequest {
            key: vec![0],
            range_end: vec![0],
            revision,
            ..Default::default()
        })
        .await?
        .into_inner();
    Ok(r.kvs)
}

/// (count, hash of every key's name, value, create/mod revision and version).
fn digest(kvs: &[KeyValue]) -> (usize, u64) {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for kv in kvs {
        (
            &kv.key,
            &kv.value,
            kv.create_revision,
            kv.mod_revision,
            kv.version,
        )
            .hash(&mut h);
    }
    (kvs.len(), h.finish())
}

async fn watch_from(
    kv: &mut KvClient<Channel>,
    prefix: &str,
    start_revision: u64,
) -> anyhow::Result<(
    tonic::Streaming<WatchResponse>,
    tokio::sync::mpsc::Sender<WatchRequest>,
)> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(WatchRequest {
        request: Some(watch_request::Request::Create(WatchCreate {
            key: prefix.into(),
            range_end: skiff_store::types::prefix_end(prefix.as_bytes()),
            start_revision,
            prev_kv: false,
            progress_notify_ms: 0,
        })),
    })
    .await?;
    let stream = kv
        .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await?
        .into_inner();
    Ok((stream, tx))
}

async fn kube_client(kubeconfig: &Path) -> anyhow::Result<kube::Client> {
    let kc = Kubeconfig::read_from(kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

/// Runs the CLI off the async threads.
async fn cli(_c: &Cluster, args: Vec<String>) -> anyhow::Result<(bool, String, String)> {
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

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_load_restores_onto_three_fresh_members() -> anyhow::Result<()> {
    let c = Cluster::start(3, &[]).await?;
    let creds = c.credentials()?;
    let mut kv0 = c.kv(0)?;
    for i in 0..200 {
        kv::put_retrying(&mut kv0, &format!("/obj/{i:04}"), &format!("value-{i}")).await?;
    }
    // An object written through the Kubernetes API, watched later from its old version.
    let old_client = kube_client(&c.members[0].data_dir.join("admin.kubeconfig")).await?;
    let cms: Api<ConfigMap> = Api::namespaced(old_client, "default");
    let cm: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "before-backup"},
        "data": {"k": "v"}
    }))?;
    let created = cms.create(&PostParams::default(), &cm).await?;
    let old_rv = created
        .metadata
        .resource_version
        .clone()
        .unwrap_or_default();

    let addrs: Vec<String> = c.members.iter().map(|m| m.addr.clone()).collect();
    let writers = Writers::start(&creds, &addrs, 4, "/load/");
    wait::until("writes under load", Duration::from_secs(30), || async {
        Ok((writers.acked_count() >= 100).then_some(()))
    })
    .await?;
    let acked_before: BTreeMap<String, String> = writers
        .acked
        .lock()
        .map(|a| a.iter().map(|(k, (v, _))| (k.clone(), v.clone())).collect())
        .unwrap_or_default();

    // The backup is taken through a follower while the writers keep writing.
    let leader = c.leader().await?;
    let follower = (0..3).find(|i| *i != leader).unwrap_or(1);
    let file = c.dir.path().join("under-load.backup");
    let (ok, out, err) = cli(
        &c,
        vec![
            "backup".into(),
            "save".into(),
            s(&file),
            "--endpoints".into(),
            c.members[follower].addr.clone(),
            "--data-dir".into(),
            s(&c.members[0].data_dir),
        ],
    )
    .await?;
    anyhow::ensure!(ok, "backup save failed: {out}\n{err}");
    assert!(err.contains("backup:"), "progress on stderr: {err}");
    assert!(out.contains("saved") && out.contains("revision"), "{out}");
    let more = writers.acked_count();
    let _acked = writers.stop().await;
    assert!(more > acked_before.len(), "the writers kept writing");

    let header = skiff_store::snapshot::read_header(&file)?;
    let backup_rev = header.counters.revision;
    let expected = all_keys(&mut kv0, backup_rev).await?;
    let present: BTreeMap<Vec<u8>, Vec<u8>> = expected
        .iter()
        .map(|kv| (kv.key.clone(), kv.value.clone()))
        .collect();
    for (k, v) in &acked_before {
        assert_eq!(
            present.get(k.as_bytes()),
            Some(&v.clone().into_bytes()),
            "{k}, acknowledged before the backup began, is in it"
        );
    }
    let (count, hash) = digest(&expected);
    assert!(count > 300, "{count} keys");

    // list and verify see it.
    let (ok, out, err) = cli(&c, vec!["backup".into(), "verify".into(), s(&file)]).await?;
    anyhow::ensure!(ok, "verify: {out}\n{err}");
    assert!(out.contains(&format!("revision {backup_rev}")), "{out}");

    // Restore onto three fresh data directories at new addresses.
    let mut n = Cluster::new(&[])?;
    let first = n.add_slot();
    let (ok, out, err) = cli(
        &c,
        vec![
            "backup".into(),
            "restore".into(),
            s(&file),
            "--data-dir".into(),
            s(&n.members[first].data_dir),
            "--name".into(),
            n.members[first].name.clone(),
            "--cluster-files".into(),
            s(&c.members[0].data_dir.join("cluster-files")),
            "--peer-addr".into(),
            n.members[first].addr.clone(),
        ],
    )
    .await?;
    anyhow::ensure!(ok, "restore failed: {out}\n{err}");
    assert!(
        out.contains("--token"),
        "the join command is printed: {out}"
    );
    n.spawn(first, &[])?;
    n.wait_ready(first).await?;
    n.join_new_member()?;
    n.join_new_member()?;
    n.wait_voters(3).await?;

    let restored_rev = backup_rev + skiff_store::backup::DEFAULT_REVISION_BUMP;
    for i in 0..3 {
        let st = n.status(i).await?;
        assert_ne!(
            st.cluster_id, header.cluster_id,
            "a restore makes a new cluster"
        );
        assert_eq!(
            st.compact_revision, restored_rev,
            "history before is compacted"
        );
        let mut kvi = n.kv(i)?;
        let got = all_keys(&mut kvi, restored_rev).await?;
        assert_eq!(
            digest(&got),
            (count, hash),
            "member {i} holds exactly the backup's objects"
        );
    }
    let ids: Vec<u64> = n
        .members_of(0)
        .await?
        .members
        .iter()
        .map(|m| m.id)
        .collect();
    assert!(
        ids.iter().all(|id| *id > header.counters.member_seq),
        "member ids are never reused: {ids:?} vs {}",
        header.counters.member_seq
    );

    // A KV watcher resuming from before the restore is told "compacted", then relists.
    let mut kvn = n.kv(1)?;
    let (mut stream, _tx) = watch_from(&mut kvn, "/obj/", backup_rev).await?;
    let first_resp = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await?
        .ok_or_else(|| anyhow::anyhow!("watch ended"))??;
    assert!(first_resp.canceled, "{first_resp:?}");
    assert_eq!(first_resp.compact_revision, restored_rev);
    assert!(
        first_resp.cancel_reason.contains("compacted"),
        "{first_resp:?}"
    );
    let relist = kvn
        .range(RangeRequest {
            key: b"/obj/".to_vec(),
            range_end: skiff_store::types::prefix_end(b"/obj/"),
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(relist.kvs.len(), 200);
    let relist_rev = relist.header.map(|h| h.revision).unwrap_or(0);
    let (mut stream, _tx2) = watch_from(&mut kvn, "/obj/", relist_rev + 1).await?;
    kv::put(&mut kvn, "/obj/after-restore", "x").await?;
    let ev = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await?
        .ok_or_else(|| anyhow::anyhow!("watch ended"))??;
    assert!(!ev.canceled && ev.events.len() == 1, "{ev:?}");

    // The Kubernetes API: a watch from the old resourceVersion gets 410 Gone; a relist works.
    let new_client = kube_client(&n.members[first].data_dir.join("admin.kubeconfig")).await?;
    let cms: Api<ConfigMap> = Api::namespaced(new_client, "default");
    let mut w = cms.watch(&WatchParams::default(), &old_rv).await?.boxed();
    let gone = match tokio::time::timeout(Duration::from_secs(10), w.next()).await? {
        Some(Ok(WatchEvent::Error(e))) => e.code == 410,
        Some(Err(kube::Error::Api(s))) => s.code == 410,
        other => anyhow::bail!("expected 410 Gone, got {other:?}"),
    };
    assert!(gone, "a watch from before the restore gets 410");
    let cm = cms.get("before-backup").await?;
    assert_eq!(
        cm.data.and_then(|d| d.get("k").cloned()).as_deref(),
        Some("v")
    );
    Ok(())
}

/// Rewrites the Skiff release recorded in a backup, keeping it otherwise valid.
fn with_other_release(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let ours = skiff_store::snapshot::SKIFF_VERSION.as_bytes();
    let header_len = u32::from_be_bytes([out[12], out[13], out[14], out[15]]) as usize;
    let header = 16..16 + header_len;
    let at = out[header.clone()]
        .windows(ours.len())
        .rposition(|w| w == ours)
        .map(|p| p + 16)
        .expect("the release is in the header");
    out[at] = if out[at] == b'9' { b'8' } else { b'9' };
    let body = out.len() - 4;
    let crc = crc32fast::hash(&out[..body]);
    out[body..].copy_from_slice(&crc.to_be_bytes());
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_and_foreign_backups_and_a_missing_key_are_refused() -> anyhow::Result<()> {
    let c = Cluster::start(1, &[]).await?;
    let mut kv0 = c.kv(0)?;
    for i in 0..50 {
        kv::put_retrying(&mut kv0, &format!("/r/{i}"), "v").await?;
    }
    let dir = c.dir.path().join("backups");
    std::fs::create_dir_all(&dir)?;
    let good = dir.join("good.backup");
    let dd = s(&c.members[0].data_dir);
    let (ok, out, err) = cli(
        &c,
        vec![
            "backup".into(),
            "save".into(),
            s(&good),
            "--endpoints".into(),
            c.members[0].addr.clone(),
            "--data-dir".into(),
            dd.clone(),
        ],
    )
    .await?;
    anyhow::ensure!(ok, "{out}\n{err}");
    let bytes = std::fs::read(&good)?;

    let mut flipped = bytes.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x5a;
    std::fs::write(dir.join("flipped.backup"), &flipped)?;
    std::fs::write(dir.join("truncated.backup"), &bytes[..bytes.len() - 100])?;
    let mut format = bytes.clone();
    format[8..12].copy_from_slice(&99u32.to_be_bytes());
    std::fs::write(dir.join("format.backup"), &format)?;
    std::fs::write(dir.join("release.backup"), with_other_release(&bytes))?;

    let expectations = [
        ("flipped.backup", "corrupt"),
        ("truncated.backup", "corrupt"),
        ("format.backup", "format version 99"),
        ("release.backup", "was written by Skiff"),
    ];
    for (name, why) in expectations {
        let (ok, out, err) = cli(
            &c,
            vec!["backup".into(), "verify".into(), s(&dir.join(name))],
        )
        .await?;
        assert!(!ok, "{name} must fail verification: {out} {err}");
        assert!(out.contains(why), "{name}: expected {why:?} in {out} {err}");
        let target = c.dir.path().join(format!("restore-{name}"));
        let (ok, out, err) = cli(
            &c,
            vec![
                "backup".into(),
                "restore".into(),
                s(&dir.join(name)),
                "--data-dir".into(),
                s(&target),
                "--name".into(),
                "r1".into(),
                "--cluster-files".into(),
                s(&c.members[0].data_dir.join("cluster-files")),
            ],
        )
        .await?;
        assert!(!ok, "{name} must not restore: {out}");
        assert!(err.contains(why), "{name}: expected {why:?} in {err}");
        assert!(
            !target.join("member.json").exists(),
            "nothing usable is left behind for {name}"
        );
    }

    // The directory listing shows the good one and says why the others are unusable.
    let (ok, out, _) = cli(&c, vec!["backup".into(), "list".into(), s(&dir)]).await?;
    assert!(ok);
    assert!(
        out.contains("good.backup") && out.contains("ok (header)"),
        "{out}"
    );
    assert!(out.contains("unusable"), "{out}");

    // Without the encryption key file, restore refuses and says what to bring.
    let empty = c.dir.path().join("no-keys");
    std::fs::create_dir_all(&empty)?;
    let (ok, _, err) = cli(
        &c,
        vec![
            "backup".into(),
            "restore".into(),
            s(&good),
            "--data-dir".into(),
            s(&c.dir.path().join("restore-nokey")),
            "--name".into(),
            "r1".into(),
            "--cluster-files".into(),
            s(&empty),
        ],
    )
    .await?;
    assert!(!ok);
    assert!(err.contains("encryption-keys.json"), "{err}");

    // prune keeps the newest N valid backups and leaves other files alone.
    for i in 0..3 {
        let (ok, out, err) = cli(
            &c,
            vec![
                "backup".into(),
                "save".into(),
                s(&dir.join(format!("more-{i}.backup"))),
                "--endpoints".into(),
                c.members[0].addr.clone(),
                "--data-dir".into(),
                dd.clone(),
            ],
        )
        .await?;
        anyhow::ensure!(ok, "{out}\n{err}");
    }
    let (ok, out, err) = cli(
        &c,
        vec![
            "backup".into(),
            "prune".into(),
            s(&dir),
            "--keep".into(),
            "2".into(),
        ],
    )
    .await?;
    anyhow::ensure!(ok, "{out}\n{err}");
    assert!(dir.join("more-2.backup").exists() && dir.join("more-1.backup").exists());
    assert!(!dir.join("good.backup").exists() && !dir.join("more-0.backup").exists());
    assert!(
        dir.join("flipped.backup").exists(),
        "unusable files are left for a human"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_backups_are_written_and_pruned() -> anyhow::Result<()> {
    let c = Cluster::start(1, &["--backup-schedule", "@every 1s", "--backup-keep", "2"]).await?;
    let dir = c.members[0].data_dir.join("backups");
    wait::until("two scheduled backups", Duration::from_secs(30), || async {
        let n = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
        Ok((n >= 2).then_some(()))
    })
    .await?;
    // Let a few more run: retention holds the count at 2.
    let first: Vec<_> = std::fs::read_dir(&dir)?
        .flatten()
        .map(|e| e.path())
        .collect();
    wait::until("a newer backup", Duration::from_secs(30), || async {
        let now: Vec<_> = std::fs::read_dir(&dir)?
            .flatten()
            .map(|e| e.path())
            .collect();
        Ok(now.iter().any(|p| !first.contains(p)).then_some(()))
    })
    .await?;
    let files: Vec<_> = std::fs::read_dir(&dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "backup"))
        .collect();
    assert!(files.len() <= 2, "retention keeps 2: {files:?}");
    for f in files {
        skiff_store::backup::check(&f)?;
    }
    Ok(())
}

/// Whether `node` is Ready with a heartbeat at or after `since` (the restored Node object
/// still says Ready from the backup; only a fresh heartbeat shows the agent is back).
async fn node_ready_since(
    nodes: &Api<Node>,
    node: &str,
    since: k8s_openapi::jiff::Timestamp,
) -> anyhow::Result<Option<()>> {
    let Some(n) = nodes.get_opt(node).await? else {
        anyhow::bail!("node {node} does not exist");
    };
    let conditions = n.status.and_then(|s| s.conditions).unwrap_or_default();
    let Some(ready) = conditions.iter().find(|c| c.type_ == "Ready") else {
        anyhow::bail!("node {node} has no Ready condition");
    };
    let fresh = ready
        .last_heartbeat_time
        .as_ref()
        .is_some_and(|t| t.0 >= since);
    if ready.status == "True" && fresh {
        Ok(Some(()))
    } else {
        anyhow::bail!(
            "Ready={} heartbeat {:?}",
            ready.status,
            ready.last_heartbeat_time
        )
    }
}

/// The pod's `main` container as the API reports it: its runtime id while running.
fn running_container_id(p: &Pod) -> Option<String> {
    let c = p
        .status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == "main")?;
    c.state.as_ref()?.running.as_ref()?;
    c.container_id
        .as_deref()
        .and_then(|id| id.strip_prefix("docker://"))
        .map(str::to_string)
}

/// Waits until the API reports pod `name` running in the app container Docker runs for it,
/// and returns that container's id.
async fn wait_reported_running(pods: &Api<Pod>, node: &str, name: &str) -> anyhow::Result<String> {
    wait::until_every(
        &format!("pod {name} running as reported by the agent"),
        Duration::from_secs(120),
        Duration::from_millis(300),
        || async {
            let Some(p) = pods.get_opt(name).await? else {
                anyhow::bail!("pod {name} does not exist");
            };
            let reported = running_container_id(&p);
            let running = agent::running_app_containers(node, name)?;
            match reported {
                Some(id) if running == [id.clone()] => Ok(Some(id)),
                other => anyhow::bail!("API says {other:?}, Docker runs {running:?}"),
            }
        },
    )
    .await
}

async fn wait_no_containers(node: &str, pod: &str) -> anyhow::Result<()> {
    wait::until_every(
        &format!("pod {pod}'s containers to be removed"),
        Duration::from_secs(120),
        Duration::from_millis(300),
        || async {
            let left = agent::pod_containers(node, pod)?;
            anyhow::ensure!(left.is_empty(), "still there: {left:?}");
            Ok(Some(()))
        },
    )
    .await
}

fn sleeper(name: &str, node: &str) -> anyhow::Result<Pod> {
    Ok(serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "main", "image": "skiff-test/busybox:1",
                "command": ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]}]
        }
    }))?)
}

/// The operator's path after a disaster (ops/runbooks/restore.md): the control plane is lost,
/// a backup is restored into a new cluster, and the node agent is restarted with the new
/// cluster's node token. It joins the new CA with its old data directory and relists: a pod
/// the backup has keeps its running containers, a pod deleted after the backup runs again, a
/// pod created after the backup (unknown to the restored store) has its containers removed,
/// and the Node heartbeats Ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_joins_the_restored_cluster_and_relists_its_pods() -> anyhow::Result<()> {
    let mut old = Cluster::start(1, &[]).await?;
    let old_token = wait::until("the node token", Duration::from_secs(10), || async {
        Ok(agent::node_token_in(
            &std::fs::read_to_string(old.log_path(0)).unwrap_or_default(),
        ))
    })
    .await?;
    let node = agent::unique_node_name("t45");
    let mut agent = Agent::start(
        &format!("https://{}", old.members[0].api),
        &old_token,
        &node,
    )?;
    let old_client = kube_client(&old.members[0].data_dir.join("admin.kubeconfig")).await?;
    let nodes: Api<Node> = Api::all(old_client.clone());
    let started = k8s_openapi::jiff::Timestamp::now();
    wait::until_every(
        &format!("node {node} Ready"),
        Duration::from_secs(120),
        Duration::from_millis(300),
        || node_ready_since(&nodes, &node, started),
    )
    .await
    .with_context(|| format!("agent log:\n{}", agent.log()))?;
    let pods: Api<Pod> = Api::namespaced(old_client.clone(), "default");
    for name in ["kept", "deleted-after-backup"] {
        pods.create(&PostParams::default(), &sleeper(name, &node)?)
            .await?;
    }
    for name in ["kept", "deleted-after-backup"] {
        wait_reported_running(&pods, &node, name).await?;
    }

    let file = old.dir.path().join("with-pods.backup");
    let (ok, out, err) = cli(
        &old,
        vec![
            "backup".into(),
            "save".into(),
            s(&file),
            "--endpoints".into(),
            old.members[0].addr.clone(),
            "--data-dir".into(),
            s(&old.members[0].data_dir),
        ],
    )
    .await?;
    anyhow::ensure!(ok, "backup save failed: {out}\n{err}");

    // After the backup: one pod deleted (the agent removes its containers), one created.
    pods.delete("deleted-after-backup", &DeleteParams::default())
        .await?;
    wait_no_containers(&node, "deleted-after-backup").await?;
    pods.create(
        &PostParams::default(),
        &sleeper("created-after-backup", &node)?,
    )
    .await?;
    wait_reported_running(&pods, &node, "created-after-backup").await?;
    let kept_before = agent::pod_containers(&node, "kept")?;
    anyhow::ensure!(
        kept_before.len() == 2 && kept_before.iter().all(|l| l.ends_with(" running")),
        "kept: sandbox and app container running: {kept_before:?}"
    );

    // The disaster: the control plane is gone. The backup is restored into a new cluster, with
    // only the Secret encryption key kept from the old cluster files.
    old.kill(0);
    let kept_files = old.dir.path().join("kept-cluster-files");
    std::fs::create_dir_all(&kept_files)?;
    std::fs::copy(
        old.members[0]
            .data_dir
            .join("cluster-files/encryption-keys.json"),
        kept_files.join("encryption-keys.json"),
    )?;
    let mut n = Cluster::new(&[])?;
    let first = n.add_slot();
    let (ok, out, err) = cli(
        &old,
        vec![
            "backup".into(),
            "restore".into(),
            s(&file),
            "--data-dir".into(),
            s(&n.members[first].data_dir),
            "--name".into(),
            n.members[first].name.clone(),
            "--cluster-files".into(),
            s(&kept_files),
            "--peer-addr".into(),
            n.members[first].addr.clone(),
        ],
    )
    .await?;
    anyhow::ensure!(ok, "restore failed: {out}\n{err}");
    let printed = agent::node_token_in(&out)
        .ok_or_else(|| anyhow::anyhow!("restore printed no `skiff agent` command:\n{out}"))?;
    n.spawn(first, &[])?;
    n.wait_ready(first).await?;
    let new_token = wait::until("the new node token", Duration::from_secs(10), || async {
        Ok(agent::node_token_in(
            &std::fs::read_to_string(n.log_path(first)).unwrap_or_default(),
        ))
    })
    .await?;
    assert_eq!(
        printed, new_token,
        "restore prints the token the server uses"
    );
    assert_ne!(new_token, old_token, "a restored cluster has a new CA");

    // The operator restarts the agent with the new cluster's address and node token.
    agent.stop()?;
    let restarted = k8s_openapi::jiff::Timestamp::now();
    agent.spawn(&format!("https://{}", n.members[first].api), &new_token)?;
    let client = kube_client(&n.members[first].data_dir.join("admin.kubeconfig")).await?;
    let nodes: Api<Node> = Api::all(client.clone());
    wait::until_every(
        &format!("node {node} Ready with a heartbeat after the restore"),
        Duration::from_secs(120),
        Duration::from_millis(300),
        || node_ready_since(&nodes, &node, restarted),
    )
    .await
    .with_context(|| format!("agent log:\n{}", agent.log()))?;
    assert!(
        agent.log().contains("joining it again"),
        "the agent says why it joins again:\n{}",
        agent.log()
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    wait_no_containers(&node, "created-after-backup")
        .await
        .with_context(|| format!("agent log:\n{}", agent.log()))?;
    assert!(
        pods.get_opt("created-after-backup").await?.is_none(),
        "the restored store does not know the pod created after the backup"
    );
    let recreated = wait_reported_running(&pods, &node, "deleted-after-backup")
        .await
        .with_context(|| format!("agent log:\n{}", agent.log()))?;
    let kept = wait_reported_running(&pods, &node, "kept").await?;
    assert_eq!(
        agent::pod_containers(&node, "kept")?,
        kept_before,
        "the pod the backup has keeps its containers (same ids, never restarted)"
    );
    assert!(kept_before.iter().any(|l| l.starts_with(&kept)));
    assert!(!recreated.is_empty());

    // The agent serves the new cluster as usual: a deletion there removes the containers.
    pods.delete("kept", &DeleteParams::default()).await?;
    wait_no_containers(&node, "kept").await?;
    wait::until_every(
        "pod kept to be gone",
        Duration::from_secs(60),
        Duration::from_millis(300),
        || async { Ok(pods.get_opt("kept").await?.is_none().then_some(())) },
    )
    .await?;
    Ok(())
}
