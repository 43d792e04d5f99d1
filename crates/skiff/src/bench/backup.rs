//! `skiff bench backup`: time a backup and a restore of a store holding many objects.
//!
//! Starts a 3-member cluster, fills it with `--objects` keys of about 1 KiB (Kubernetes-like
//! JSON under `/registry/...`), saves a backup through a follower exactly as `skiff backup
//! save` does, restores it into a fresh data directory and starts that member until it serves
//! a linearizable read. Prints the phases' times and checks every key came back.

use std::time::{Duration, Instant};

use anyhow::bail;
use futures::StreamExt;
use skiff_store::pb::kv::{RangeRequest, TxnRequest};

use super::local::LocalCluster;
use crate::endpoints::Target;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, default_value_t = 100_000)]
    pub objects: usize,
    /// Approximate bytes per object.
    #[arg(long, default_value_t = 1024)]
    pub value_size: usize,
}

fn object(i: usize, size: usize) -> (String, Vec<u8>) {
    let key = format!("/registry/configmaps/bench-{:02}/cm-{i:07}", i % 20);
    let mut value = format!(
        "{{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{{\"name\":\"cm-{i:07}\",\"namespace\":\"bench-{:02}\"}},\"data\":{{\"payload\":\"",
        i % 20
    );
    while value.len() + 3 < size {
        value.push(char::from(b'a' + (i + value.len()) as u8 % 26));
    }
    value.push_str("\"}}");
    (key, value.into_bytes())
}

async fn count_keys(
    creds: &skiff_store::client::Credentials,
    addr: &str,
) -> anyhow::Result<(u64, u64)> {
    let mut kv = creds.kv(addr)?;
    let r = kv
        .range(RangeRequest {
            key: b"/registry/".to_vec(),
            range_end: skiff_store::types::prefix_end(b"/registry/"),
            count: true,
            keys_only: true,
            limit: 1,
            ..Default::default()
        })
        .await?
        .into_inner();
    Ok((r.count as u64, r.header.map(|h| h.revision).unwrap_or(0)))
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    eprintln!("starting a 3-member cluster...");
    let cluster = LocalCluster::start(3, &["--backup-schedule", "off"]).await?;
    let creds = cluster.credentials()?;
    let started = Instant::now();
    // Small transactions: openraft 0.9 gives each AppendEntries one heartbeat interval
    // (50 ms), so 100-object batches (about 100 KiB each, 16 in flight) made replication time
    // out over and over on a loaded machine with a debug build, and the fill never finished.
    let per_txn = 10usize;
    let batches: Vec<usize> = (0..args.objects.div_ceil(per_txn)).collect();
    let addr = cluster.members[0].addr.clone();
    let mut writes = futures::stream::iter(batches.into_iter().map(|b| {
        let mut kv = creds.kv(&addr);
        let size = args.value_size;
        let total = args.objects;
        async move {
            let kv = kv.as_mut().map_err(|e| anyhow::anyhow!("{e}"))?;
            let success: Vec<_> = (b * per_txn..((b + 1) * per_txn).min(total))
                .map(|i| {
                    let (k, v) = object(i, size);
                    put_op(k.into_bytes(), v)
                })
                .collect();
            // The puts are idempotent, so a batch whose outcome is unknown (a leader change
            // under load) is simply sent again.
            let mut retries = 0u32;
            loop {
                let request = TxnRequest {
                    success: success.clone(),
                    ..Default::default()
                };
                match kv.txn(request).await {
                    Ok(_) => return anyhow::Ok(retries),
                    Err(e) if retries < 10 => {
                        retries += 1;
                        tracing::debug!(error = %e, "retrying a batch");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }))
    .buffer_unordered(16);
    let mut retried = 0u32;
    while let Some(r) = writes.next().await {
        retried += r?;
    }
    drop(writes);
    let (written, _) = count_keys(&creds, &addr).await?;
    eprintln!(
        "wrote {written} objects in {:.1} s ({retried} batches sent again after an error)",
        started.elapsed().as_secs_f64()
    );

    let file = cluster.dir.path().join("bench.backup");
    let target = Target {
        endpoints: vec![cluster.members[1].addr.clone()],
        data_dir: cluster.members[0].data_dir.clone(),
    };
    let t = Instant::now();
    let header = crate::backup_cmd::save(&file, &target).await?;
    let save = t.elapsed();
    let size = std::fs::metadata(&file)?.len();

    let restored_dir = cluster.dir.path().join("restored");
    let cluster_files =
        crate::backup_cmd::read_cluster_files(&cluster.members[0].data_dir.join("cluster-files"))?;
    let t = Instant::now();
    let (f, d) = (file.clone(), restored_dir.clone());
    let restored = tokio::task::spawn_blocking(move || {
        skiff_store::backup::restore(
            skiff_store::backup::RestoreOptions {
                backup: &f,
                data_dir: &d,
                name: "r1",
                cluster_files,
                revision_bump: skiff_store::backup::DEFAULT_REVISION_BUMP,
            },
            |_| {},
        )
    })
    .await??;
    let load = t.elapsed();
    let mut fresh = LocalCluster {
        dir: tempfile::Builder::new().prefix("skiff-bench-").tempdir()?,
        members: vec![super::local::Member {
            name: "r1".into(),
            addr: format!("127.0.0.1:{}", super::local::free_port()?),
            api: format!("127.0.0.1:{}", super::local::free_port()?),
            metrics: format!("127.0.0.1:{}", super::local::free_port()?),
            data_dir: restored_dir.clone(),
            child: None,
        }],
        extra_args: vec!["--backup-schedule".into(), "off".into()],
    };
    fresh.spawn(0, &[])?;
    fresh.wait_ready(0, Duration::from_secs(60)).await?;
    let rcreds = skiff_store::client::Credentials::from_data_dir(&restored_dir)?;
    let (back, revision) = count_keys(&rcreds, &fresh.members[0].addr).await?;
    let total_restore = t.elapsed();
    if back != written {
        bail!("the restored cluster holds {back} objects; the backup had {written}");
    }
    println!(
        "objects {written} (~{} B each), backup file {:.1} MiB at revision {}",
        args.value_size,
        size as f64 / (1 << 20) as f64,
        header.counters.revision
    );
    println!(
        "backup save (through a follower, verified): {:.2} s   target < 10 s",
        save.as_secs_f64()
    );
    println!(
        "restore: load {:.2} s, to a serving member {:.2} s   target < 20 s",
        load.as_secs_f64(),
        total_restore.as_secs_f64()
    );
    println!(
        "restored cluster {} serves {back} objects at revision {revision} (backup revision + bump {})",
        restored.identity.cluster_id,
        skiff_store::backup::DEFAULT_REVISION_BUMP
    );
    Ok(())
}

pub fn put_op(key: Vec<u8>, value: Vec<u8>) -> skiff_store::pb::kv::TxnOp {
    skiff_store::pb::kv::TxnOp {
        op: Some(skiff_store::pb::kv::txn_op::Op::Put(
            skiff_store::pb::kv::PutOp {
                key,
                value,
                lease: 0,
                prev_kv: false,
            },
        )),
    }
}
