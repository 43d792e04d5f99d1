//! `skiff bench store`: the same write and read load against a local Skiff cluster and,
//! with `--compare-etcd`, a local etcd cluster of the same size (TLS and fsync on both).
//!
//! Phases: `put` (unique keys), `cas` (update each key if unchanged since its put),
//! `linearizable-get` (random keys). Each of `--clients` workers owns its own connection.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use skiff_store::pb::kv::{Compare, PutOp, RangeRequest, TxnOp, TxnRequest, compare, txn_op};

use super::etcd::EtcdCluster;
use super::local::LocalCluster;
use super::stats::{self, Samples};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, default_value_t = 3)]
    pub members: usize,
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Operations per phase.
    #[arg(long, default_value_t = 20_000)]
    pub ops: usize,
    #[arg(long, default_value_t = 1024)]
    pub value_size: usize,
    /// Also run the identical load against etcd (Debian's etcd-server) in the same run.
    #[arg(long)]
    pub compare_etcd: bool,
}

/// One system under test: how a worker puts, compare-and-swaps and reads.
#[async_trait::async_trait]
pub trait Kv: Send {
    /// Returns the revision of the write.
    async fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> anyhow::Result<u64>;
    /// Puts if the key was last modified at `revision`; returns whether it was.
    async fn cas(
        &mut self,
        key: Vec<u8>,
        value: Vec<u8>,
        revision: u64,
    ) -> anyhow::Result<(bool, u64)>;
    async fn get(&mut self, key: Vec<u8>) -> anyhow::Result<Option<Vec<u8>>>;
}

struct SkiffKv {
    kv: skiff_store::pb::kv::kv_client::KvClient<tonic::transport::Channel>,
}

#[async_trait::async_trait]
impl Kv for SkiffKv {
    async fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> anyhow::Result<u64> {
        let op = TxnOp {
            op: Some(txn_op::Op::Put(PutOp {
                key,
                value,
                lease: 0,
                prev_kv: false,
            })),
        };
        let r = self
            .kv
            .txn(TxnRequest {
                success: vec![op],
                ..Default::default()
            })
            .await?
            .into_inner();
        Ok(r.header.map(|h| h.revision).unwrap_or(0))
    }
    async fn cas(
        &mut self,
        key: Vec<u8>,
        value: Vec<u8>,
        revision: u64,
    ) -> anyhow::Result<(bool, u64)> {
        let cmp = Compare {
            op: compare::Op::Equal as i32,
            key: key.clone(),
            target: Some(compare::Target::ModRevision(revision)),
        };
        let op = TxnOp {
            op: Some(txn_op::Op::Put(PutOp {
                key,
                value,
                lease: 0,
                prev_kv: false,
            })),
        };
        let r = self
            .kv
            .txn(TxnRequest {
                compares: vec![cmp],
                success: vec![op],
                ..Default::default()
            })
            .await?
            .into_inner();
        Ok((r.succeeded, r.header.map(|h| h.revision).unwrap_or(0)))
    }
    async fn get(&mut self, key: Vec<u8>) -> anyhow::Result<Option<Vec<u8>>> {
        let r = self
            .kv
            .range(RangeRequest {
                key,
                ..Default::default()
            })
            .await?
            .into_inner();
        Ok(r.kvs.into_iter().next().map(|kv| kv.value))
    }
}

/// Runs one phase: every worker does its share of `ops` calls of `f`.
async fn phase<K, F>(workers: &mut [K], ops: usize, f: F) -> Samples
where
    K: Kv,
    F: for<'a> Fn(
            &'a mut K,
            usize,
            usize,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = anyhow::Result<()>> + Send + 'a>,
        > + Sync,
{
    let n = workers.len();
    let start = Instant::now();
    let f = &f;
    let futures = workers.iter_mut().enumerate().map(|(w, kv)| async move {
        let mut s = Samples::default();
        let mut i = w;
        while i < ops {
            let t = Instant::now();
            match f(kv, w, i).await {
                Ok(()) => s.latencies.push(t.elapsed()),
                Err(_) => s.errors += 1,
            }
            i += n;
        }
        s
    });
    let mut total = Samples::default();
    for s in futures::future::join_all(futures).await {
        total.merge(s);
    }
    total.elapsed = start.elapsed();
    total
}

fn key(prefix: &str, i: usize) -> Vec<u8> {
    format!("{prefix}/{i:010}").into_bytes()
}

/// Runs the three phases against `workers`; returns (put, cas, get) samples.
async fn drive<K: Kv>(system: &str, workers: &mut [K], args: &Args) -> (Samples, Samples, Samples) {
    let value = Arc::new(vec![b'v'; args.value_size]);
    let revisions = Arc::new(std::sync::Mutex::new(vec![0u64; args.ops]));
    let (v, revs) = (value.clone(), revisions.clone());
    let put = phase(workers, args.ops, move |kv, _, i| {
        let (v, revs) = (v.clone(), revs.clone());
        Box::pin(async move {
            let rev = kv.put(key("bench", i), v.to_vec()).await?;
            if let Ok(mut r) = revs.lock() {
                r[i] = rev;
            }
            Ok(())
        })
    })
    .await;
    stats::row(system, "put (unique keys)", &put);
    let (v, revs) = (value.clone(), revisions.clone());
    let cas = phase(workers, args.ops, move |kv, _, i| {
        let (v, revs) = (v.clone(), revs.clone());
        Box::pin(async move {
            let expected = revs.lock().map(|r| r[i]).unwrap_or(0);
            let (ok, _) = kv.cas(key("bench", i), v.to_vec(), expected).await?;
            anyhow::ensure!(ok, "compare failed");
            Ok(())
        })
    })
    .await;
    stats::row(system, "cas (if unchanged)", &cas);
    let n = args.ops;
    let get = phase(workers, args.ops, move |kv, w, i| {
        Box::pin(async move {
            let k = (i.wrapping_mul(2654435761) ^ w) % n;
            let found = kv.get(key("bench", k)).await?;
            anyhow::ensure!(found.is_some(), "key missing");
            Ok(())
        })
    })
    .await;
    stats::row(system, "linearizable get", &get);
    (put, cas, get)
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.members >= 1 && args.clients >= 1 && args.ops >= 1,
        "members, clients and ops must be positive"
    );
    eprintln!("starting a {}-member Skiff cluster...", args.members);
    let cluster = LocalCluster::start(args.members, &[]).await?;
    let creds = cluster.credentials()?;
    let addrs = cluster.addrs();
    let mut workers = Vec::with_capacity(args.clients);
    for w in 0..args.clients {
        workers.push(SkiffKv {
            kv: creds.kv(&addrs[w % addrs.len()])?,
        });
    }
    println!(
        "bench store: {} members, {} clients, {} ops per phase, {}-byte values (TLS, fsync on)",
        args.members, args.clients, args.ops, args.value_size
    );
    stats::header();
    let (s_put, s_cas, _s_get) = drive("skiff", &mut workers, &args).await;
    drop(workers);
    drop(cluster);
    let mut skiff_writes = s_put.clone();
    skiff_writes.merge(s_cas.clone());
    skiff_writes.elapsed = s_put.elapsed + s_cas.elapsed;
    if !args.compare_etcd {
        println!(
            "skiff write throughput: {:.0} ops/s, p99: {:.2} ms",
            skiff_writes.throughput(),
            stats::ms(skiff_writes.percentile(0.99))
        );
        return Ok(());
    }
    eprintln!("starting a {}-member etcd cluster...", args.members);
    let etcd = EtcdCluster::start(args.members)
        .await
        .context("starting etcd (is Debian's etcd-server installed?)")?;
    let mut workers = Vec::with_capacity(args.clients);
    for w in 0..args.clients {
        workers.push(etcd.client(w).await?);
    }
    let (e_put, e_cas, _e_get) = drive("etcd", &mut workers, &args).await;
    drop(workers);
    drop(etcd);
    let mut etcd_writes = e_put.clone();
    etcd_writes.merge(e_cas.clone());
    etcd_writes.elapsed = e_put.elapsed + e_cas.elapsed;
    let p99 = |s: &Samples| stats::ms(s.percentile(0.99));
    println!(
        "ratio skiff/etcd write throughput: {:.2}, p99: {:.2} (skiff {:.0} ops/s p99 {:.2} ms; etcd {:.0} ops/s p99 {:.2} ms)",
        skiff_writes.throughput() / etcd_writes.throughput().max(f64::MIN_POSITIVE),
        p99(&skiff_writes) / p99(&etcd_writes).max(f64::MIN_POSITIVE),
        skiff_writes.throughput(),
        p99(&skiff_writes),
        etcd_writes.throughput(),
        p99(&etcd_writes)
    );
    let _ = Duration::ZERO;
    Ok(())
}
