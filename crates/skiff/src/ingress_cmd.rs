//! `skiff ingress`: serves Ingresses of class `skiff` on the node's HTTP and HTTPS ports.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::net::TcpListener;

use crate::kube_client;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Kubeconfig to reach the API (default: $KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    #[arg(long, default_value = "0.0.0.0:80")]
    http_listen: SocketAddr,
    #[arg(long, default_value = "0.0.0.0:443")]
    https_listen: SocketAddr,
    /// The IngressClass served.
    #[arg(long, default_value = "skiff")]
    class: String,
    /// The node address written to the Ingresses' status.loadBalancer.
    #[arg(long)]
    node_address: Option<IpAddr>,
    /// Prometheus metrics and health endpoints.
    #[arg(long, default_value = "0.0.0.0:10254")]
    metrics_listen: SocketAddr,
}

pub async fn run(args: Args) -> Result<()> {
    let config = skiff_ingress::Config {
        class_name: args.class.clone(),
        node_address: args.node_address,
        ..Default::default()
    };
    config.validate()?;
    let client = kube_client::client(args.kubeconfig.as_deref()).await?;
    let registry = prometheus::Registry::new();
    let metrics = skiff_ingress::metrics::Metrics::new(&registry)?;
    let controller = Arc::new(skiff_ingress::Controller::new(&config, Some(metrics)));
    let http = TcpListener::bind(args.http_listen)
        .await
        .with_context(|| format!("binding {}", args.http_listen))?;
    let https = TcpListener::bind(args.https_listen)
        .await
        .with_context(|| format!("binding {}", args.https_listen))?;
    let metrics_listener = TcpListener::bind(args.metrics_listen)
        .await
        .with_context(|| format!("binding metrics on {}", args.metrics_listen))?;
    tokio::spawn(skiff_proxy::metrics::serve(
        metrics_listener,
        registry,
        std::future::pending(),
    ));
    tokio::spawn(controller.serve_http(http, std::future::pending()));
    tokio::spawn(controller.serve_https(https, std::future::pending())?);
    tracing::info!(http = %args.http_listen, https = %args.https_listen, class = %args.class, "ingress starting");
    skiff_ingress::watch::run(config, client, controller, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
