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
    let (http, https) = bind(args.http_listen, args.https_listen).await?;
    let metrics_listener = TcpListener::bind(args.metrics_listen)
        .await
        .with_context(|| format!("binding metrics on {}", args.metrics_listen))?;
    tokio::spawn(skiff_proxy::metrics::serve(
        metrics_listener,
        registry,
        std::future::pending(),
    ));
    tracing::info!(http = %args.http_listen, https = %args.https_listen, class = %args.class, "ingress starting");
    serve(config, client, http, https, Some(metrics), async {
        let _ = tokio::signal::ctrl_c().await;
    })?
    .await?;
    Ok(())
}

/// Binds the ingress's HTTP and HTTPS listeners, saying which port is taken.
pub async fn bind(http: SocketAddr, https: SocketAddr) -> Result<(TcpListener, TcpListener)> {
    let http = TcpListener::bind(http).await.with_context(|| {
        format!("binding the ingress HTTP port {http} (taken? choose another port)")
    })?;
    let https = TcpListener::bind(https).await.with_context(|| {
        format!("binding the ingress HTTPS port {https} (taken? choose another port)")
    })?;
    Ok((http, https))
}

/// Serves HTTP and HTTPS on the listeners and returns the watch loop that keeps the
/// configuration current (listeners stop with `shutdown` too). Shared with `skiff up`.
pub fn serve(
    config: skiff_ingress::Config,
    client: kube::Client,
    http: TcpListener,
    https: TcpListener,
    metrics: Option<skiff_ingress::metrics::Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<impl std::future::Future<Output = Result<(), skiff_ingress::watch::Error>>> {
    let controller = Arc::new(skiff_ingress::Controller::new(&config, metrics));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = move || {
        let mut rx = stopped.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    tokio::spawn(controller.serve_http(http, until_stopped()));
    tokio::spawn(
        controller
            .serve_https(https, until_stopped())
            .context("setting up TLS for the ingress")?,
    );
    Ok(async move {
        let result = skiff_ingress::watch::run(config, client, controller, shutdown).await;
        let _ = stop.send(true);
        result
    })
}
