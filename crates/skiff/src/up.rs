//! `skiff up`: an all-in-one cluster in one process: a one-member control plane (store,
//! Kubernetes API, scheduler and controllers) and a node agent running pods on this machine's
//! Docker. Creates the cluster on the first run, restarts it afterwards; prints how to point
//! kubectl at it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use skiff_store::identity::DataDir;
use skiff_store::node::Start;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, env = "SKIFF_DATA_DIR", default_value_os_t = crate::endpoints::default_data_dir())]
    pub data_dir: PathBuf,
    /// Port of the Kubernetes API on 127.0.0.1.
    #[arg(long, default_value_t = 6443)]
    pub api_port: u16,
    /// Port of the store's peer and KV services on 127.0.0.1.
    #[arg(long, default_value_t = 2380)]
    pub peer_port: u16,
    /// The member's name, also the Node's name [default: this machine's host name]. Node
    /// names must be unique on a machine: agents tell their containers apart by it.
    #[arg(long)]
    pub name: Option<String>,
    /// Port of the node agent's API (logs, exec, port-forward) on 127.0.0.1.
    #[arg(long, default_value_t = 10250)]
    pub node_api_port: u16,
    /// Run only the control plane, without a node agent.
    #[arg(long)]
    pub no_agent: bool,
    /// Plain-HTTP Prometheus endpoint (`/metrics`, `/healthz`) for the member and its agent;
    /// `off` disables it [default: 127.0.0.1:2381, skipped with a warning when taken].
    #[arg(long)]
    pub metrics_listen: Option<crate::metrics_endpoint::Listen>,
    /// Seconds a Node's Lease may go unrenewed before the node is NotReady (Unknown) and
    /// tainted unreachable (agents renew every 10 s; like kube-controller-manager's
    /// --node-monitor-grace-period).
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u64).range(1..))]
    pub node_monitor_grace_secs: u64,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let peer = format!("127.0.0.1:{}", args.peer_port);
    let api = format!("127.0.0.1:{}", args.api_port);
    let peer_listener = tokio::net::TcpListener::bind(&peer)
        .await
        .with_context(|| format!("binding {peer} (another skiff running? use --peer-port)"))?;
    let api_listener = tokio::net::TcpListener::bind(&api)
        .await
        .with_context(|| format!("binding {api} (another skiff running? use --api-port)"))?;
    let dir = DataDir::new(&args.data_dir);
    let mode = if dir.is_initialized() {
        Start::Existing
    } else {
        Start::Init {
            cluster_files: crate::control_plane::new_cluster_files()?,
        }
    };
    let name = args.name.clone().unwrap_or_else(crate::server::host_name);
    let store = skiff_store::Config {
        data_dir: args.data_dir.clone(),
        name: name.clone(),
        advertise_addr: peer.clone(),
        ..skiff_store::Config::default()
    };
    let member = crate::control_plane::start(crate::control_plane::Options {
        store,
        start: mode,
        peer_listener,
        api_listener,
        api_url: format!("https://{api}"),
        node_grace_period: Duration::from_secs(args.node_monitor_grace_secs),
    })
    .await?;
    crate::control_plane::wait_ready(&member, Duration::from_secs(30)).await?;
    let (agent_stop, agent_stopped) = tokio::sync::oneshot::channel::<()>();
    let agent = if args.no_agent {
        None
    } else {
        let node_api = format!("127.0.0.1:{}", args.node_api_port);
        let listener = tokio::net::TcpListener::bind(&node_api)
            .await
            .with_context(|| format!("binding the node API on {node_api} (use --node-api-port)"))?;
        let config = skiff_agent::Config {
            server: format!("https://{api}"),
            token: member.node_token.clone(),
            node_name: name.clone(),
            data_dir: args.data_dir.join("agent"),
            node_ip: Some(std::net::IpAddr::from([127, 0, 0, 1])),
            node_api_listen: listener.local_addr()?,
            metrics_registry: Some(member.registry.clone()),
            ..skiff_agent::Config::default()
        };
        std::fs::create_dir_all(&config.data_dir)?;
        Some(tokio::spawn(async move {
            if let Err(e) = skiff_agent::run(config, listener, async {
                let _ = agent_stopped.await;
            })
            .await
            {
                tracing::error!("the node agent stopped: {e}");
            }
        }))
    };
    let metrics = crate::metrics_endpoint::serve(
        args.metrics_listen,
        crate::metrics_endpoint::SERVER_DEFAULT,
        &member.registry,
        "up",
    )
    .await?;
    println!(
        "Skiff is up ({} ms): one control-plane member at https://{api}",
        started.elapsed().as_millis()
    );
    if let Some(addr) = metrics {
        println!("Prometheus metrics: http://{addr}/metrics");
    }
    println!();
    println!("  export KUBECONFIG={}", member.kubeconfig.display());
    println!("  kubectl get namespaces");
    println!();
    println!(
        "Add a node agent:  skiff agent --server https://{api} --token {} --name <node>",
        member.node_token
    );
    println!(
        "Stop with Ctrl-C; run `skiff up --data-dir {}` again to restart this cluster.",
        args.data_dir.display()
    );
    crate::server::wait_for_signal().await;
    eprintln!("shutting down");
    let _ = agent_stop.send(());
    if let Some(a) = agent {
        let _ = tokio::time::timeout(Duration::from_secs(5), a).await;
    }
    member.shutdown().await;
    Ok(())
}
