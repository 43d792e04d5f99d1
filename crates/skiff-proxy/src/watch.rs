//! The shell of `skiff proxy`: kube-rs reflectors on Services and EndpointSlices feed the rule
//! sync loop and the DNS model; the DNS server answers from it.
//!
//! Level-triggered: every change rebuilds from the whole cache (never from "what the event
//! said"); nothing is published before both caches have synced, so a starting proxy never
//! applies a half-empty rule set that would reject traffic to Services it has not seen yet.

use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;

use crate::config::Config;
use crate::dns::forward::Forwarder;
use crate::dns::model::DnsModel;
use crate::dns::server;
use crate::metrics::Metrics;
use crate::model::NodeInfo;
use crate::nft::Nft;
use crate::sync::{self, LoopConfig, Snapshot};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] crate::config::Error),
    #[error("the {0} watch ended")]
    WatchEnded(&'static str),
    #[error(transparent)]
    Dns(#[from] server::Error),
    #[error(transparent)]
    Nft(#[from] crate::nft::Error),
}

/// Listeners of the cluster DNS server, bound by the caller.
#[derive(Debug)]
pub struct DnsListeners {
    pub udp: UdpSocket,
    pub tcp: Option<TcpListener>,
}

/// Runs the proxy until `shutdown` resolves: rules in `table ip skiff` and the cluster DNS.
/// The rules stay in place on shutdown (connections keep flowing while the proxy restarts);
/// [`cleanup`] removes them.
pub async fn run(
    config: Config,
    client: Client,
    dns: DnsListeners,
    metrics: Option<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    config.validate()?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let (snapshot_tx, snapshot_rx) = watch::channel(Arc::new(Snapshot::default()));
    let (applied_tx, _applied_rx) = watch::channel(0u64);
    let (model_tx, model_rx) = watch::channel(Arc::new(DnsModel::build::<Service, EndpointSlice>(
        &config.dns.domain,
        &[],
        &[],
    )));

    let host = std::fs::read_to_string(&config.resolv_conf)
        .map(|t| skiff_core::resolv_conf::parse(&t))
        .unwrap_or_default();
    let upstreams = server::upstreams(&host, &[config.dns_listen.ip()]);
    if upstreams.is_empty() {
        tracing::warn!(path = %config.resolv_conf.display(), "no upstream resolvers: names outside the cluster domain get SERVFAIL");
    }
    let handler = server::Handler::new(
        model_rx,
        Forwarder::new(upstreams, &config.dns),
        config.dns.ttl,
        metrics.clone(),
    );
    let dns_task = tokio::spawn(server::serve(handler, dns.udp, dns.tcp, stopped()));

    let loop_config = LoopConfig {
        node: NodeInfo {
            name: config.node_name.clone(),
        },
        rules: config.rules(),
        min_interval: config.min_sync_interval,
        max_backoff: config.max_sync_backoff,
    };
    let nft = Nft::new(config.nft_command.clone(), config.conntrack_command.clone())
        .with_table(&config.table);
    let mut ready_rx = snapshot_rx.clone();
    let sync_task = tokio::spawn({
        let stopped = stopped();
        let metrics = metrics.clone();
        async move {
            // Wait for the first complete snapshot before touching the rules.
            if ready_rx.wait_for(|s| s.generation > 0).await.is_err() {
                return;
            }
            sync::run(loop_config, nft, snapshot_rx, applied_tx, metrics, stopped).await;
        }
    });

    let domain = config.dns.domain.clone();
    let watch_result = tokio::select! {
        r = watch_cluster(client, snapshot_tx, model_tx, domain) => r,
        _ = shutdown => Ok(()),
    };
    let _ = stop_tx.send(true);
    let _ = sync_task.await;
    if let Ok(Err(e)) = dns_task.await {
        tracing::warn!(error = %e, "cluster DNS stopped");
    }
    watch_result
}

/// Removes the proxy's table, `config.table` (`skiff proxy --cleanup`).
pub async fn cleanup(config: &Config) -> Result<(), Error> {
    let mut nft = Nft::new(config.nft_command.clone(), None).with_table(&config.table);
    nft.cleanup().await?;
    Ok(())
}

async fn watch_cluster(
    client: Client,
    snapshots: watch::Sender<Arc<Snapshot>>,
    models: watch::Sender<Arc<DnsModel>>,
    domain: String,
) -> Result<(), Error> {
    let (services, services_writer) = reflector::store::<Service>();
    let (slices, slices_writer) = reflector::store::<EndpointSlice>();
    let service_events = reflector(
        services_writer,
        watcher(
            Api::<Service>::all(client.clone()),
            watcher::Config::default(),
        ),
    )
    .default_backoff()
    .map(|_| ())
    .boxed();
    let slice_events = reflector(
        slices_writer,
        watcher(
            Api::<EndpointSlice>::all(client),
            watcher::Config::default(),
        ),
    )
    .default_backoff()
    .map(|_| ())
    .boxed();
    let mut events = futures::stream::select(service_events, slice_events);
    let mut generation = 0u64;
    let mut dirty = false;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            event = events.next() => match event {
                Some(_) => dirty = true,
                None => return Err(Error::WatchEnded("services/endpointslices")),
            },
            _ = tick.tick() => {
                if !dirty {
                    continue;
                }
                // Publish only once both caches hold a complete list.
                let ready = services.wait_until_ready().now_or_never().is_some_and(|r| r.is_ok())
                    && slices.wait_until_ready().now_or_never().is_some_and(|r| r.is_ok());
                if !ready {
                    continue;
                }
                dirty = false;
                generation += 1;
                let service_list = services.state();
                let slice_list = slices.state();
                models.send_replace(Arc::new(DnsModel::build(&domain, &service_list, &slice_list)));
                snapshots.send_replace(Arc::new(Snapshot {
                    generation,
                    services: service_list,
                    slices: slice_list,
                }));
            }
        }
    }
}
