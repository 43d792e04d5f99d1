//! `skiff up`: an all-in-one cluster in one process: a one-member control plane (store and
//! Kubernetes API; the agent, scheduler and controllers join it as they are built). Creates the
//! cluster on the first run, restarts it afterwards; prints how to point kubectl at it.

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
    /// The member's name.
    #[arg(long, default_value = "skiff")]
    pub name: String,
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
    let store = skiff_store::Config {
        data_dir: args.data_dir.clone(),
        name: args.name.clone(),
        advertise_addr: peer.clone(),
        ..skiff_store::Config::default()
    };
    let member = crate::control_plane::start(crate::control_plane::Options {
        store,
        start: mode,
        peer_listener,
        api_listener,
        api_url: format!("https://{api}"),
    })
    .await?;
    crate::control_plane::wait_ready(&member, Duration::from_secs(30)).await?;
    println!(
        "Skiff is up ({} ms): one control-plane member at https://{api}",
        started.elapsed().as_millis()
    );
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
    member.shutdown().await;
    Ok(())
}
