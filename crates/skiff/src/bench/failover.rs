//! `skiff bench failover`: kill -9 the leader under a write load, round after round.
//!
//! Writers spread over all members write unique keys and remember every acknowledged write.
//! Each round kills the current leader and measures the write-unavailability window: from the
//! kill to the first acknowledgement of a write *sent after* the kill. The killed member is
//! restarted and allowed to catch up before the next round. At the end every acknowledged
//! write is read back (linearizably) and compared: `lost` must be 0.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use skiff_store::pb::kv::{PutOp, RangeRequest, TxnOp, TxnRequest, txn_op};
use tokio::sync::mpsc;

use super::local::LocalCluster;
use super::stats::{self, Samples};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, default_value_t = 3)]
    pub members: usize,
    #[arg(long, default_value_t = 10)]
    pub rounds: usize,
    /// Concurrent writers.
    #[arg(long, default_value_t = 16)]
    pub writers: usize,
}

#[derive(Default)]
struct Shared {
    acked: Mutex<BTreeMap<Vec<u8>, Vec<u8>>>,
    /// When set, writers report the first acknowledgement of a write sent after this instant.
    kill_time: Mutex<Option<Instant>>,
    stop: AtomicBool,
}

async fn writer(
    w: usize,
    addrs: Vec<String>,
    creds: skiff_store::client::Credentials,
    shared: Arc<Shared>,
    first_ack: mpsc::UnboundedSender<Instant>,
) {
    let mut clients: Vec<_> = addrs.iter().filter_map(|a| creds.kv(a).ok()).collect();
    if clients.is_empty() {
        return;
    }
    let mut target = w % clients.len();
    let mut seq = 0u64;
    while !shared.stop.load(Ordering::Relaxed) {
        let key = format!("failover/{w:03}/{seq:010}").into_bytes();
        let value = format!("{w}:{seq}").into_bytes();
        let op = TxnOp {
            op: Some(txn_op::Op::Put(PutOp {
                key: key.clone(),
                value: value.clone(),
                lease: 0,
                prev_kv: false,
            })),
        };
        let mut request = tonic::Request::new(TxnRequest {
            success: vec![op],
            ..Default::default()
        });
        request.set_timeout(Duration::from_secs(3));
        let sent = Instant::now();
        match clients[target].txn(request).await {
            Ok(_) => {
                let acked = Instant::now();
                if let Ok(mut a) = shared.acked.lock() {
                    a.insert(key, value);
                }
                let kill = shared.kill_time.lock().ok().and_then(|k| *k);
                if kill.is_some_and(|k| sent >= k) {
                    let _ = first_ack.send(acked);
                }
                seq += 1;
            }
            Err(_) => {
                // Unknown outcome: not counted as acknowledged. Try another member.
                target = (target + 1) % clients.len();
                seq += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.members >= 3,
        "failover needs at least 3 members (a majority must survive)"
    );
    eprintln!("starting a {}-member Skiff cluster...", args.members);
    let mut cluster = LocalCluster::start(args.members, &[]).await?;
    let creds = cluster.credentials()?;
    let shared = Arc::new(Shared::default());
    let (ack_tx, mut ack_rx) = mpsc::unbounded_channel();
    let mut handles = Vec::new();
    for w in 0..args.writers {
        handles.push(tokio::spawn(writer(
            w,
            cluster.addrs(),
            creds.clone(),
            shared.clone(),
            ack_tx.clone(),
        )));
    }
    println!(
        "bench failover: {} members, {} writers, {} rounds (kill -9 of the leader each round)",
        args.members, args.writers, args.rounds
    );
    let mut windows = Samples::default();
    for round in 1..=args.rounds {
        for i in 0..cluster.members.len() {
            cluster.wait_ready(i, Duration::from_secs(30)).await?;
        }
        let leader = cluster
            .leader_index()
            .await
            .context("no leader before the round")?;
        while ack_rx.try_recv().is_ok() {}
        let killed_at = Instant::now();
        if let Ok(mut k) = shared.kill_time.lock() {
            *k = Some(killed_at);
        }
        cluster.kill(leader);
        let first = tokio::time::timeout(Duration::from_secs(30), ack_rx.recv())
            .await
            .context("no write succeeded within 30 s of killing the leader")?
            .context("writers stopped")?;
        if let Ok(mut k) = shared.kill_time.lock() {
            *k = None;
        }
        let window = first.saturating_duration_since(killed_at);
        windows.latencies.push(window);
        println!(
            "round {round:>2}: killed leader {} -> writes resumed after {:.0} ms",
            cluster.members[leader].name,
            stats::ms(window)
        );
        cluster.restart(leader)?;
        cluster.wait_ready(leader, Duration::from_secs(30)).await?;
        // Let the restarted member catch up before the next round.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    shared.stop.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.await;
    }
    let acked = shared.acked.lock().map(|a| a.clone()).unwrap_or_default();
    let mut lost = 0usize;
    let mut found: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut read_ok = false;
    for addr in cluster.addrs() {
        let mut kv = creds.kv(&addr)?;
        let req = RangeRequest {
            key: b"failover/".to_vec(),
            range_end: b"failover0".to_vec(),
            ..Default::default()
        };
        if let Ok(r) = kv.range(req).await {
            found = r
                .into_inner()
                .kvs
                .into_iter()
                .map(|kv| (kv.key, kv.value))
                .collect();
            read_ok = true;
            break;
        }
    }
    if !read_ok {
        bail!("could not read the writes back from any member");
    }
    for (k, v) in &acked {
        if found.get(k) != Some(v) {
            lost += 1;
            if lost <= 5 {
                println!(
                    "LOST: {} (acknowledged, now {:?})",
                    String::from_utf8_lossy(k),
                    found.get(k).map(|v| String::from_utf8_lossy(v).to_string())
                );
            }
        }
    }
    println!(
        "acknowledged writes: {}, present: {}",
        acked.len(),
        acked.len() - lost
    );
    println!(
        "failover p50={:.0}ms max={:.0}ms lost={lost}",
        stats::ms(windows.percentile(0.5)),
        stats::ms(windows.max())
    );
    drop(cluster);
    if lost > 0 {
        bail!("{lost} acknowledged writes were lost");
    }
    Ok(())
}
