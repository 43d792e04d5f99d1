//! `skiff agent`: runs a node agent (the kubelet) that joins a cluster with a node join token,
//! registers its Node and runs the pods bound to it on this machine's Docker Engine.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

#[derive(clap::Args)]
pub struct Args {
    /// The API servers: every control-plane member, comma-separated or the flag repeated (e.g.
    /// https://10.0.0.1:6443,https://10.0.0.2:6443), or one address in front of them all.
    /// Requests go to one until it fails or stops answering, then to the next.
    #[arg(
        long = "server",
        env = "SKIFF_SERVER",
        value_delimiter = ',',
        required = true
    )]
    servers: Vec<String>,
    /// The node join token (skiffnode1.<ca sha256>.<secret>), as `skiff server` prints it.
    #[arg(long, env = "SKIFF_NODE_TOKEN", hide_env_values = true)]
    token: String,
    /// The Node's name (several agents on one machine need distinct names).
    #[arg(long)]
    name: String,
    /// Identity and pod volumes [default: /var/lib/skiff/agent-<name>, or
    /// ~/.local/share/skiff/agent-<name> when not root].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The node's address [default: the one used to reach the API server].
    #[arg(long)]
    node_ip: Option<IpAddr>,
    /// The pod CIDR until the cluster assigns one [default: 10.42.<hash of name>.0/24].
    #[arg(long)]
    pod_cidr: Option<String>,
    /// The cluster's pod CIDR: pod traffic within it crosses node bridges without NAT.
    #[arg(long, default_value = "10.42.0.0/16")]
    cluster_cidr: String,
    /// Where the node API (logs, exec, port-forward, stats) listens.
    #[arg(long, default_value = "0.0.0.0:10250")]
    node_api_listen: SocketAddr,
    /// The Docker Engine socket.
    #[arg(long, default_value = "unix:///var/run/docker.sock")]
    docker_socket: String,
    /// Plain-HTTP Prometheus endpoint (`/metrics`, `/healthz`) [default: 127.0.0.1:10255, skipped
    /// with a warning when taken]; `off` disables it.
    #[arg(long)]
    metrics_listen: Option<crate::metrics_endpoint::Listen>,
    /// The cluster DNS address pods get as their resolver (`dnsPolicy: ClusterFirst`).
    #[arg(long, default_value = "10.43.0.10")]
    cluster_dns: IpAddr,
    /// The node's resolv.conf: what `dnsPolicy: Default` pods get, and the search domains
    /// `ClusterFirst` pods get after the cluster's (with systemd-resolved, use
    /// /run/systemd/resolve/resolv.conf: its 127.0.0.53 is unreachable from pods).
    #[arg(long, default_value = "/etc/resolv.conf")]
    resolv_conf: PathBuf,
    /// How often a quiet pod is synced anyway, in seconds.
    #[arg(long, default_value_t = 10)]
    resync_seconds: u64,
}

fn default_data_dir(name: &str) -> PathBuf {
    // Root (the owner of /proc/self is the effective user) keeps state in /var/lib.
    let is_root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    if is_root {
        PathBuf::from(format!("/var/lib/skiff/agent-{name}"))
    } else {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        home.join(format!(".local/share/skiff/agent-{name}"))
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let registry = prometheus::Registry::new();
    let config = skiff_agent::Config {
        servers: args
            .servers
            .into_iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        token: args.token,
        data_dir: args
            .data_dir
            .unwrap_or_else(|| default_data_dir(&args.name)),
        node_name: args.name,
        node_ip: args.node_ip,
        pod_cidr: args.pod_cidr,
        cluster_cidr: args.cluster_cidr,
        node_api_listen: args.node_api_listen,
        docker_socket: Some(args.docker_socket),
        resync: Duration::from_secs(args.resync_seconds.max(1)),
        metrics_registry: Some(registry.clone()),
        cluster_dns: vec![args.cluster_dns],
        resolv_conf: args.resolv_conf,
        ..skiff_agent::Config::default()
    };
    if let Err(problems) = config.validate() {
        anyhow::bail!("invalid agent configuration:\n  {}", problems.join("\n  "));
    }
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let listener = tokio::net::TcpListener::bind(config.node_api_listen)
        .await
        .with_context(|| format!("binding the node API to {}", config.node_api_listen))?;
    if let Some(addr) = crate::metrics_endpoint::serve(
        args.metrics_listen,
        crate::metrics_endpoint::AGENT_DEFAULT,
        &registry,
        "agent",
    )
    .await?
    {
        tracing::info!(%addr, "metrics on http://{addr}/metrics");
    }
    let shutdown = async {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
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
        tracing::info!("stopping the agent (containers keep running)");
    };
    skiff_agent::run(config, listener, shutdown).await?;
    Ok(())
}
