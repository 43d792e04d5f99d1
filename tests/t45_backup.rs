//! Backup and restore end to end with the real `skiff backup` commands: a backup taken through
//! a follower under write load restores onto three fresh members at new addresses with every
//! object equal (count and content hash at the backup's revision); watchers from before the
//! restore get "compacted" (the KV watch) and 410 (the Kubernetes API) and relist; corrupt
//! files, files of another format version or Skiff release, and a missing encryption key are
//! refused with clear messages.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use skiff_store::pb::kv::kv_client::KvClient;
use skiff_store::pb::kv::{
    KeyValue, RangeRequest, WatchCreate, WatchRequest, WatchResponse, watch_request,
};
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
        kv::put(&mut kv0, &format!("/obj/{i:04}"), &format!("value-{i}")).await?;
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
        kv::put(&mut kv0, &format!("/r/{i}"), "v").await?;
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
