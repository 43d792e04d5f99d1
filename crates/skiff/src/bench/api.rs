//! `skiff bench api`: the Kubernetes API of a local 3-member cluster under load, through
//! kube-rs clients: creates/s and gets/s with p50/p99, lists of every object (whole and paged),
//! watch fan-out (event latency from write to delivery at many watchers), and each member's
//! resident memory with the objects loaded.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};

use super::local::LocalCluster;
use super::stats::{self, Samples};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, default_value_t = 3)]
    pub members: usize,
    #[arg(long, default_value_t = 32)]
    pub clients: usize,
    #[arg(long, default_value_t = 10_000)]
    pub objects: usize,
    /// Watchers for the fan-out phase.
    #[arg(long, default_value_t = 500)]
    pub watchers: usize,
    /// Writes observed by every watcher in the fan-out phase.
    #[arg(long, default_value_t = 50)]
    pub watch_events: usize,
}

pub(super) async fn client_for(
    cluster: &LocalCluster,
    member: usize,
) -> anyhow::Result<kube::Client> {
    let text = std::fs::read_to_string(cluster.members[0].data_dir.join("admin.kubeconfig"))?;
    let mut kubeconfig = kube::config::Kubeconfig::from_yaml(&text)?;
    for c in &mut kubeconfig.clusters {
        if let Some(cluster_info) = c.cluster.as_mut() {
            cluster_info.server = Some(format!("https://{}", cluster.members[member].api));
        }
    }
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    Ok(kube::Client::try_from(config)?)
}

/// What each member's own metrics say of the creates: how many took over 25 and 50 ms inside
/// the API server, and how many WAL syncs and apply commits took over 25.6 ms. A tail the
/// clients see but the servers do not lies between them (connections, the client's stack).
async fn server_view(cluster: &LocalCluster, clients: &[kube::Client]) {
    for (member, client) in cluster.members.iter().zip(clients) {
        let text = match http::Request::get("/metrics").body(Vec::new()) {
            Ok(request) => client.request_text(request).await,
            Err(e) => {
                println!("server view {}: {e}", member.name);
                continue;
            }
        };
        let text = match text {
            Ok(t) => t,
            Err(e) => {
                println!("server view {}: no metrics ({e})", member.name);
                continue;
            }
        };
        let creates = stats::histogram_buckets(
            &text,
            "apiserver_request_duration_seconds",
            &["verb=\"CREATE\"", "resource=\"configmaps\""],
        );
        let (n, over25) = stats::count_above(&creates, 0.025);
        let (_, over50) = stats::count_above(&creates, 0.05);
        let fsync = stats::histogram_buckets(&text, "skiff_store_wal_fsync_duration_seconds", &[]);
        let (syncs, slow_syncs) = stats::count_above(&fsync, 0.026);
        let apply =
            stats::histogram_buckets(&text, "skiff_store_apply_commit_duration_seconds", &[]);
        let (applies, slow_applies) = stats::count_above(&apply, 0.026);
        println!(
            "server view {}: {n} creates, {over25} over 25 ms, {over50} over 50 ms; \
             WAL syncs {slow_syncs} of {syncs} over 25.6 ms; apply commits {slow_applies} of {applies} over 25.6 ms",
            member.name
        );
    }
}

fn object(i: usize) -> ConfigMap {
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some(format!("bench-{i:06}"));
    cm.metadata.labels = Some(
        [("bench".to_string(), "api".to_string())]
            .into_iter()
            .collect(),
    );
    cm.data = Some(
        [("payload".to_string(), "x".repeat(512))]
            .into_iter()
            .collect(),
    );
    cm
}

pub(super) fn rss_mib(pid: u32) -> Option<f64> {
    super::stats::proc_status_kib(pid, "VmRSS:").map(|kib| kib as f64 / 1024.0)
}

fn print_rss(cluster: &LocalCluster, when: &str) {
    let rss: Vec<String> = cluster
        .members
        .iter()
        .filter_map(|m| {
            let pid = m.child.as_ref()?.id();
            Some(format!("{} {}", m.name, super::stats::rss_text(pid)))
        })
        .collect();
    println!("rss {when}: {}", rss.join(", "));
}

/// CPU time (user + system) a process has used so far.
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) in parentheses; utime and stime
    // are the 14th and 15th fields of the line, in clock ticks of 10 ms.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

fn members_cpu(cluster: &LocalCluster) -> Vec<Duration> {
    cluster
        .members
        .iter()
        .map(|m| {
            m.child
                .as_ref()
                .and_then(|c| cpu_time(c.id()))
                .unwrap_or_default()
        })
        .collect()
}

fn now_micros() -> u128 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0)
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.members >= 1 && args.clients >= 1 && args.objects >= 1,
        "members, clients and objects must be positive"
    );
    eprintln!("starting a {}-member Skiff cluster...", args.members);
    let cluster = LocalCluster::start(args.members, &[]).await?;
    let mut clients = Vec::new();
    for i in 0..args.members {
        clients.push(client_for(&cluster, i).await?);
    }
    // Wait for the API of every member (bootstrap objects in place).
    for c in &clients {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(c.clone());
            if ns.get_opt("default").await.ok().flatten().is_some() {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "the API did not become ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    println!(
        "bench api: {} members, {} clients, {} ConfigMaps (512-byte payload), {} watchers",
        args.members, args.clients, args.objects, args.watchers
    );
    stats::header();

    // Creates, spread over every member.
    let start = Instant::now();
    let per_client = args.objects.div_ceil(args.clients);
    let mut tasks = Vec::new();
    for w in 0..args.clients {
        let api: Api<ConfigMap> = Api::namespaced(clients[w % clients.len()].clone(), "default");
        let range = (w * per_client)..((w + 1) * per_client).min(args.objects);
        tasks.push(tokio::spawn(async move {
            let mut s = Samples::default();
            for i in range {
                let t = Instant::now();
                match api.create(&PostParams::default(), &object(i)).await {
                    Ok(_) => s.latencies.push(t.elapsed()),
                    Err(_) => s.errors += 1,
                }
            }
            s
        }));
    }
    let mut creates = Samples::default();
    for t in tasks {
        creates.merge(t.await?);
    }
    creates.elapsed = start.elapsed();
    stats::row("skiff", "create", &creates);
    server_view(&cluster, &clients).await;
    print_rss(&cluster, "after the creates");

    // Gets of random objects.
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..args.clients {
        let api: Api<ConfigMap> = Api::namespaced(clients[w % clients.len()].clone(), "default");
        let n = args.objects;
        tasks.push(tokio::spawn(async move {
            let mut s = Samples::default();
            for k in 0..per_client {
                let i = (k * 7919 + w * 104_729) % n;
                let t = Instant::now();
                match api.get(&format!("bench-{i:06}")).await {
                    Ok(_) => s.latencies.push(t.elapsed()),
                    Err(_) => s.errors += 1,
                }
            }
            s
        }));
    }
    let mut gets = Samples::default();
    for t in tasks {
        gets.merge(t.await?);
    }
    gets.elapsed = start.elapsed();
    stats::row("skiff", "get (linearizable)", &gets);

    // Lists of every object: whole, and paged by 500 like kubectl.
    let api: Api<ConfigMap> = Api::namespaced(clients[0].clone(), "default");
    let mut whole = Samples::default();
    let mut paged = Samples::default();
    let start = Instant::now();
    for _ in 0..5 {
        let t = Instant::now();
        let list = api.list(&ListParams::default().labels("bench=api")).await?;
        anyhow::ensure!(
            list.items.len() == args.objects,
            "listed {} of {}",
            list.items.len(),
            args.objects
        );
        whole.latencies.push(t.elapsed());
        let t = Instant::now();
        let mut token: Option<String> = None;
        let mut n = 0;
        loop {
            let mut lp = ListParams::default().labels("bench=api").limit(500);
            if let Some(c) = &token {
                lp = lp.continue_token(c);
            }
            let page = api.list(&lp).await?;
            n += page.items.len();
            token = page.metadata.continue_.filter(|c| !c.is_empty());
            if token.is_none() {
                break;
            }
        }
        anyhow::ensure!(n == args.objects, "paged list saw {n} of {}", args.objects);
        paged.latencies.push(t.elapsed());
    }
    whole.elapsed = start.elapsed();
    paged.elapsed = whole.elapsed;
    stats::row("skiff", &format!("list {} (whole)", args.objects), &whole);
    stats::row(
        "skiff",
        &format!("list {} (500/page)", args.objects),
        &paged,
    );

    // Memory of each member with the objects loaded (and listed through the first member).
    print_rss(&cluster, "after the lists");

    // Watch fan-out: many watchers (spread over members) each see every update; the latency is
    // from just before the write to delivery.
    let target = "bench-000000";
    let rv = api
        .get(target)
        .await?
        .metadata
        .resource_version
        .context("no resourceVersion")?;
    // (index of the event for its watcher, latency)
    let latencies = Arc::new(std::sync::Mutex::new(Vec::<(usize, Duration)>::new()));
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(args.watchers.max(1));
    let mut watchers = Vec::new();
    for w in 0..args.watchers {
        let api: Api<ConfigMap> = Api::namespaced(clients[w % clients.len()].clone(), "default");
        let rv = rv.clone();
        let latencies = latencies.clone();
        let want = args.watch_events;
        let ready = ready_tx.clone();
        watchers.push(tokio::spawn(async move {
            let wp = WatchParams::default()
                .fields(&format!("metadata.name={target}"))
                .timeout(290);
            let Ok(stream) = api.watch(&wp, &rv).await else {
                return 0usize;
            };
            // The response has started: the server holds the watch.
            let _ = ready.send(()).await;
            drop(ready);
            let mut stream = stream.boxed();
            let mut seen = 0;
            while let Ok(Some(ev)) = stream.try_next().await {
                if let WatchEvent::Modified(cm) = ev {
                    let sent: u128 = cm
                        .data
                        .as_ref()
                        .and_then(|d| d.get("sent"))
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                    let latency = Duration::from_micros(now_micros().saturating_sub(sent) as u64);
                    if let Ok(mut l) = latencies.lock() {
                        l.push((seen, latency));
                    }
                    seen += 1;
                    if seen >= want {
                        break;
                    }
                }
            }
            seen
        }));
    }
    // Every watch is established before the first write (so latencies are delivery, not setup).
    drop(ready_tx);
    let mut established = 0;
    while established < args.watchers {
        match tokio::time::timeout(Duration::from_secs(60), ready_rx.recv()).await {
            Ok(Some(())) => established += 1,
            _ => break,
        }
    }
    println!("watches established: {established}/{}", args.watchers);
    let cpu_before = members_cpu(&cluster);
    let start = Instant::now();
    let mut writes = Samples::default();
    for _ in 0..args.watch_events {
        let patch = serde_json::json!({"data": {"sent": now_micros().to_string()}});
        let t = Instant::now();
        api.patch(target, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        writes.latencies.push(t.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut complete = 0;
    for w in watchers {
        if tokio::time::timeout(Duration::from_secs(30), w)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(0)
            >= args.watch_events
        {
            complete += 1;
        }
    }
    let cpu_used: Vec<Duration> = members_cpu(&cluster)
        .iter()
        .zip(&cpu_before)
        .map(|(after, before)| after.saturating_sub(*before))
        .collect();
    let by_index = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    let elapsed = start.elapsed();
    writes.elapsed = elapsed;
    stats::row("skiff", "watched writes", &writes);
    let samples = |keep: &dyn Fn(usize) -> bool| Samples {
        latencies: by_index
            .iter()
            .filter(|(i, _)| keep(*i))
            .map(|(_, l)| *l)
            .collect(),
        errors: 0,
        elapsed,
    };
    let fanout = samples(&|_| true);
    stats::row(
        "skiff",
        &format!("watch fan-out x{}", args.watchers),
        &fanout,
    );
    // The first event of a watch also waits for the watch's replay of history from its
    // resourceVersion; the later ones are fan-out alone.
    stats::row("skiff", "  first event", &samples(&|i| i == 0));
    stats::row("skiff", "  later events", &samples(&|i| i > 0));
    // What the members spent (CPU) from the first write until every watcher finished:
    // robust against other load on the machine, unlike the latencies.
    let total_cpu: Duration = cpu_used.iter().sum();
    println!(
        "cpu of the members during the fan-out: {} = {:.0} ms, {:.1} us per delivered event",
        cpu_used
            .iter()
            .zip(&cluster.members)
            .map(|(cpu, m)| format!("{} {:.0} ms", m.name, stats::ms(*cpu)))
            .collect::<Vec<_>>()
            .join(", "),
        stats::ms(total_cpu),
        total_cpu.as_secs_f64() * 1e6 / by_index.len().max(1) as f64
    );
    print_rss(&cluster, "after the watches");
    println!(
        "watchers that saw all {} events: {complete}/{}",
        args.watch_events, args.watchers
    );
    println!(
        "api: creates {:.0}/s p99 {:.1} ms; gets {:.0}/s p99 {:.1} ms; list {} p50 {:.0} ms; watch p99 {:.1} ms",
        creates.throughput(),
        stats::ms(creates.percentile(0.99)),
        gets.throughput(),
        stats::ms(gets.percentile(0.99)),
        args.objects,
        stats::ms(whole.percentile(0.5)),
        stats::ms(fanout.percentile(0.99))
    );
    drop(cluster);
    Ok(())
}
