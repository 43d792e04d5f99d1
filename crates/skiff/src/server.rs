//! `skiff server`: runs one control-plane member until SIGINT/SIGTERM.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use skiff_store::Config;
use skiff_store::node::Start;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Create a new cluster with this member as its first member (prints a join token).
    #[arg(long, conflicts_with = "join")]
    pub init: bool,
    /// Join the cluster of the member at this peer address (repeatable).
    #[arg(long, value_name = "PEER_ADDR")]
    pub join: Vec<String>,
    /// The join token printed by `--init` (or in a member's <data-dir>/token).
    #[arg(long, env = "SKIFF_TOKEN", requires = "join")]
    pub token: Option<String>,
    /// This member's unique name (lowercase letters, digits, '-'). Defaults to the host name.
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long, env = "SKIFF_DATA_DIR", default_value_os_t = crate::endpoints::default_data_dir())]
    pub data_dir: PathBuf,
    /// Where to listen for peers and the KV/admin services.
    #[arg(long, default_value = "0.0.0.0:2380")]
    pub peer_listen: String,
    /// The address other members reach this one at; defaults to the listen address (with
    /// 127.0.0.1 for an unspecified host).
    #[arg(long)]
    pub advertise: Option<String>,
    /// Where the Kubernetes API (HTTPS) listens.
    #[arg(long, default_value = "0.0.0.0:6443")]
    pub api_listen: String,
    /// The host:port clients use for this member's API (written into the admin kubeconfig);
    /// defaults to the API listen address (127.0.0.1 for an unspecified host).
    #[arg(long)]
    pub api_advertise: Option<String>,
    #[arg(long, default_value_t = 50)]
    pub heartbeat_ms: u64,
    #[arg(long, default_value_t = 200)]
    pub election_min_ms: u64,
    #[arg(long, default_value_t = 400)]
    pub election_max_ms: u64,
    /// Build a snapshot after this many log entries (then purge older log entries).
    #[arg(long, default_value_t = 20_000)]
    pub snapshot_after_logs: u64,
    /// Log entries kept behind the latest snapshot.
    #[arg(long, default_value_t = 2_000)]
    pub logs_kept: u64,
    /// Keep at least this much history for watches and reads at past revisions.
    #[arg(long, default_value_t = 300)]
    pub history_window_secs: u64,
    #[arg(long, default_value_t = 30)]
    pub compaction_interval_secs: u64,
    /// Plain-HTTP Prometheus endpoint (`/metrics`, `/healthz`) for the whole member (store,
    /// API, scheduler, controllers); `off` disables it [default: 127.0.0.1:2381, skipped with a
    /// warning when taken].
    #[arg(long)]
    pub metrics_listen: Option<crate::metrics_endpoint::Listen>,
    /// Seconds a Node's Lease may go unrenewed before the node is NotReady (Unknown) and
    /// tainted unreachable (agents renew every 10 s; like kube-controller-manager's
    /// --node-monitor-grace-period).
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u64).range(1..))]
    pub node_monitor_grace_secs: u64,
    /// When this member writes a backup of its replica (cron in UTC, an @macro, or `off`).
    #[arg(long, default_value = crate::backup_cmd::schedule::DEFAULT_SCHEDULE)]
    pub backup_schedule: String,
    /// Where scheduled backups go (default `<data-dir>/backups`).
    #[arg(long)]
    pub backup_dir: Option<PathBuf>,
    /// How many scheduled backups to keep.
    #[arg(long, default_value_t = 5)]
    pub backup_keep: usize,
    /// Recover from a lost quorum: make this (stopped) member the only member of its cluster,
    /// keeping its data, then start. The other members must never start again with their old
    /// data; they join again with empty data directories. Run it once: a later start with the
    /// flag would drop the members added since.
    #[arg(long, conflicts_with_all = ["init", "join"])]
    pub force_new_cluster: bool,
    /// UNSAFE negative control for fault injection: linearizable reads skip the read index.
    #[arg(long, hide = true)]
    pub unsafe_local_reads: bool,
    /// UNSAFE negative control for fault injection: never fsync.
    #[arg(long, hide = true)]
    pub unsafe_no_fsync: bool,
    /// UNSAFE negative control for fault injection: acknowledge transactions before they commit.
    #[arg(long, hide = true)]
    pub unsafe_ack_before_commit: bool,
}

pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_ascii_lowercase())
        .unwrap_or_else(|_| "skiff".into())
}

pub fn store_config(args: &Args, listen: std::net::SocketAddr) -> Config {
    let advertise = args.advertise.clone().unwrap_or_else(|| {
        if listen.ip().is_unspecified() {
            format!("127.0.0.1:{}", listen.port())
        } else {
            listen.to_string()
        }
    });
    Config {
        data_dir: args.data_dir.clone(),
        name: args.name.clone().unwrap_or_else(host_name),
        advertise_addr: advertise,
        heartbeat_interval: Duration::from_millis(args.heartbeat_ms),
        election_timeout_min: Duration::from_millis(args.election_min_ms),
        election_timeout_max: Duration::from_millis(args.election_max_ms),
        snapshot_after_logs: args.snapshot_after_logs,
        logs_kept_after_snapshot: args.logs_kept,
        history_window: Duration::from_secs(args.history_window_secs),
        compaction_interval: Duration::from_secs(args.compaction_interval_secs.max(1)),
        unsafe_local_reads: args.unsafe_local_reads,
        unsafe_no_fsync: args.unsafe_no_fsync,
        unsafe_ack_before_commit: args.unsafe_ack_before_commit,
        ..Config::default()
    }
}

/// The API URL to advertise for a bound API listener.
pub fn api_url(advertise: Option<&str>, listen: std::net::SocketAddr) -> String {
    match advertise {
        Some(a) => format!("https://{a}"),
        None if listen.ip().is_unspecified() => format!("https://127.0.0.1:{}", listen.port()),
        None => format!("https://{listen}"),
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let started_at = std::time::Instant::now();
    let schedule = crate::backup_cmd::schedule::parse(&args.backup_schedule)?;
    if args.force_new_cluster {
        crate::cluster_cmd::force_new_cluster(&args.data_dir)?;
    }
    let peer_listener = tokio::net::TcpListener::bind(&args.peer_listen)
        .await
        .with_context(|| format!("binding the peer port {}", args.peer_listen))?;
    let api_listener = tokio::net::TcpListener::bind(&args.api_listen)
        .await
        .with_context(|| format!("binding the API port {}", args.api_listen))?;
    let config = store_config(&args, peer_listener.local_addr()?);
    let api_url = api_url(args.api_advertise.as_deref(), api_listener.local_addr()?);
    let mode = if args.init {
        Start::Init {
            cluster_files: crate::control_plane::new_cluster_files()?,
        }
    } else if !args.join.is_empty() {
        Start::Join {
            peers: args.join.clone(),
            token: args.token.clone().context("--join needs --token")?,
        }
    } else {
        Start::Existing
    };
    let member = crate::control_plane::start(crate::control_plane::Options {
        store: config.clone(),
        start: mode,
        peer_listener,
        api_listener,
        api_url: api_url.clone(),
        node_grace_period: Duration::from_secs(args.node_monitor_grace_secs),
        service_cidr: None,
    })
    .await?;
    let metrics = crate::metrics_endpoint::serve(
        args.metrics_listen,
        crate::metrics_endpoint::SERVER_DEFAULT,
        &member.registry,
        "server",
    )
    .await?;
    let store = &member.store;
    if let Some(addr) = metrics {
        eprintln!("metrics on http://{addr}/metrics");
    }
    eprintln!(
        "skiff member {} (id {}) of cluster {}: peers on {}, API on {} ({} ms)",
        store.name(),
        store.member_id(),
        store.cluster_id(),
        config.advertise_addr,
        api_url,
        started_at.elapsed().as_millis()
    );
    if member.created {
        println!("Created a new cluster.");
        println!(
            "  kubectl:     export KUBECONFIG={}",
            member.kubeconfig.display()
        );
        println!(
            "  add members: skiff server --join {} --token {} --name <name> --data-dir <dir>",
            config.advertise_addr, member.store_token
        );
        println!(
            "  add nodes:   skiff agent --server {api_url} --token {} --name <node>",
            member.node_token
        );
    }
    if let Some(schedule) = schedule {
        let config = crate::backup_cmd::schedule::Config {
            schedule,
            dir: args
                .backup_dir
                .clone()
                .unwrap_or_else(|| args.data_dir.join("backups")),
            keep: args.backup_keep,
        };
        crate::backup_cmd::schedule::run(
            store.clone(),
            config,
            &member.registry,
            store.shutdown_signal(),
        )
        .await?;
    }
    wait_for_signal().await;
    eprintln!("shutting down");
    member.shutdown().await;
    Ok(())
}

pub async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
