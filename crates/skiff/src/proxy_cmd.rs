//! `skiff proxy`: the node's service proxy (nftables rules for Service IPs and NodePorts) and the
//! cluster DNS server; `skiff proxy --cleanup` removes the proxy's nftables table.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::net::{TcpListener, UdpSocket};

use crate::kube_client;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Remove the proxy's nftables table (`table ip skiff`) and exit.
    #[arg(long)]
    cleanup: bool,
    /// Kubeconfig to reach the API (default: $KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// This node's name (endpoints on it are local).
    #[arg(long, env = "NODE_NAME")]
    node_name: Option<String>,
    #[arg(long, default_value = "10.42.0.0/16")]
    cluster_cidr: ipnet::Ipv4Net,
    #[arg(long, default_value = "10.43.0.0/16")]
    service_cidr: ipnet::Ipv4Net,
    /// Addresses NodePorts answer on (repeatable; default: every local address).
    #[arg(long = "nodeport-address")]
    nodeport_addresses: Vec<Ipv4Addr>,
    /// Where the cluster DNS listens (UDP and TCP).
    #[arg(long, default_value = "10.43.0.10:53")]
    dns_listen: SocketAddr,
    /// Do not add the DNS address to `lo` (it must then be local already).
    #[arg(long)]
    no_dns_address: bool,
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    #[arg(long, default_value = "/etc/resolv.conf")]
    resolv_conf: PathBuf,
    /// Prometheus metrics and health endpoints.
    #[arg(long, default_value = "0.0.0.0:10249")]
    metrics_listen: SocketAddr,
    /// Minimum time between two rule syncs, milliseconds.
    #[arg(long, default_value_t = 50)]
    min_sync_interval_ms: u64,
    /// The nftables table this proxy owns (`table ip <table>`); `--cleanup` removes it.
    #[arg(long, default_value = "skiff")]
    table: String,
}

fn config(args: &Args) -> Result<skiff_proxy::Config> {
    let node_name = match &args.node_name {
        Some(n) => n.clone(),
        None => hostname()?,
    };
    let config = skiff_proxy::Config {
        node_name,
        cluster_cidr: args.cluster_cidr,
        service_cidr: args.service_cidr,
        nodeport_addresses: args.nodeport_addresses.clone(),
        min_sync_interval: Duration::from_millis(args.min_sync_interval_ms),
        dns: skiff_proxy::dns::Config {
            domain: args.cluster_domain.clone(),
            ..Default::default()
        },
        dns_listen: args.dns_listen,
        resolv_conf: args.resolv_conf.clone(),
        table: args.table.clone(),
        ..Default::default()
    };
    config.validate()?;
    Ok(config)
}

fn hostname() -> Result<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .context("reading the hostname; pass --node-name")?;
    Ok(name.trim().to_lowercase())
}

pub async fn run(args: Args) -> Result<()> {
    let config = config(&args)?;
    if args.cleanup {
        skiff_proxy::watch::cleanup(&config).await?;
        eprintln!("removed table ip {}", config.table);
        return Ok(());
    }
    let client = kube_client::client(args.kubeconfig.as_deref()).await?;
    let dns = bind_dns(&config, !args.no_dns_address).await?;
    let registry = prometheus::Registry::new();
    let metrics = skiff_proxy::metrics::Metrics::new(&registry)?;
    let metrics_listener = TcpListener::bind(args.metrics_listen)
        .await
        .with_context(|| format!("binding metrics on {}", args.metrics_listen))?;
    tokio::spawn(skiff_proxy::metrics::serve(
        metrics_listener,
        registry,
        std::future::pending(),
    ));
    tracing::info!(node = %config.node_name, dns = %args.dns_listen, table = %config.table, "service proxy starting");
    skiff_proxy::watch::run(config, client, dns, Some(metrics), async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}

/// Binds the cluster DNS on `config.dns_listen` (UDP and TCP), first adding its address to `lo`
/// when `add_address` and it is neither loopback nor unspecified. Shared with `skiff up`.
pub async fn bind_dns(
    config: &skiff_proxy::Config,
    add_address: bool,
) -> Result<skiff_proxy::watch::DnsListeners> {
    let listen = config.dns_listen;
    if add_address
        && let std::net::IpAddr::V4(ip) = listen.ip()
        && !ip.is_unspecified()
        && !ip.is_loopback()
    {
        skiff_proxy::podnet::ensure_local_address(&Default::default(), ip)
            .await
            .with_context(|| format!("adding the cluster DNS address {ip} to lo (needs root)"))?;
    }
    let udp = UdpSocket::bind(listen).await.with_context(|| {
        format!("binding the cluster DNS (UDP) on {listen} (another proxy on this host?)")
    })?;
    let tcp = TcpListener::bind(listen).await.with_context(|| {
        format!("binding the cluster DNS (TCP) on {listen} (another proxy on this host?)")
    })?;
    Ok(skiff_proxy::watch::DnsListeners {
        udp,
        tcp: Some(tcp),
    })
}
