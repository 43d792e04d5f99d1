//! The agent's shell: everything that talks to the Kubernetes API (kube-rs) around the pure
//! core and the pod workers. [`run`] bootstraps the node's identity, registers the Node, keeps
//! its Lease and status fresh, serves the node API, and feeds the pods bound to this node
//! (watched with the field selector `spec.nodeName=<node>`) to the [`PodManager`].
//!
//! Kept thin on purpose: what it decides is decided elsewhere and unit-tested there.

pub mod api;
pub mod bootstrap;
pub mod failover;
pub mod node;

use std::collections::HashSet;
use std::future::Future;
use std::net::{IpAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::runtime::watcher;
use tokio::net::TcpListener;

use crate::config::{self, Config};
use crate::container_config::ClusterFacts;
use crate::downward::NodeFacts;
use crate::images;
use crate::metrics::Metrics;
use crate::node_api;
use crate::pod;
use crate::pod_network;
use crate::pods::PodManager;
use crate::runtime::docker::DockerRuntime;
use crate::runtime::{ContainerRuntime, NetworkSpec};
use crate::worker::{Deps, Settings};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid configuration:\n  {}", .0.join("\n  "))]
    Config(Vec<String>),
    #[error(transparent)]
    Bootstrap(#[from] bootstrap::Error),
    #[error("building the API client: {0}")]
    Client(String),
    #[error("the container runtime: {0}")]
    Runtime(#[from] crate::runtime::Error),
    #[error("building the local images: {0}")]
    Images(#[from] images::Error),
    #[error("registering the node: {0}")]
    Register(kube::Error),
    #[error("node API TLS: {0}")]
    Tls(#[from] node_api::tls::Error),
    #[error("metrics: {0}")]
    Metrics(#[from] crate::metrics::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The address this host uses to reach the first API server it can route to (no packet is
/// sent).
fn detect_node_ip(servers: &[String]) -> Option<IpAddr> {
    servers.iter().find_map(|server| {
        let (host, port) = bootstrap::host_port(server).ok()?;
        let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
        socket.connect((host.as_str(), port)).ok()?;
        let ip = socket.local_addr().ok()?.ip();
        (!ip.is_unspecified()).then_some(ip)
    })
}

/// A kube-rs client for one server with the node's certificate and the cluster CA as the only
/// root; no retries of its own, a read timeout for silent connections.
pub fn server_client(server: &str, identity: &bootstrap::Identity) -> Result<kube::Client> {
    use base64::Engine;
    let uri: http::Uri = server
        .parse()
        .map_err(|_| Error::Client(format!("invalid server URL {server:?}")))?;
    let mut config = kube::Config::new(uri);
    let roots = node_api::tls::certificates(&identity.ca_pem)?;
    config.root_cert = Some(roots.iter().map(|c| c.to_vec()).collect());
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    config.auth_info = serde_json::from_value(serde_json::json!({
        "client-certificate-data": b64(&identity.cert_pem),
        "client-key-data": b64(&identity.key_pem),
    }))
    .map_err(|e| Error::Client(e.to_string()))?;
    // The agent's loops retry on their own schedule; see ARCHITECTURE.md (client retries).
    config.default_retry = false;
    // A paused or cut-off server never closes the connection: a read that hears nothing for
    // longer than the API server's bookmark interval (twice over) ends the request or watch.
    config.read_timeout = Some(failover::SILENCE_TIMEOUT);
    config.reset_reader_on_write = true;
    kube::Client::try_from(config).map_err(|e| Error::Client(e.to_string()))
}

/// The agent's kube-rs client over every API server in `servers`, in that order: each request
/// goes to the current server, and a failure there moves the next requests to the next one
/// ([`failover`]).
pub fn client(
    servers: &[String],
    identity: &bootstrap::Identity,
    metrics: Option<&Metrics>,
) -> Result<kube::Client> {
    let servers = servers
        .iter()
        .map(|url| {
            Ok(failover::Server {
                url: url.clone(),
                client: server_client(url, identity)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let failover = failover::Failover::new(servers, failover::REQUEST_TIMEOUT, metrics.cloned())
        .map_err(|e| Error::Client(e.to_string()))?;
    Ok(kube::Client::new(failover, "default"))
}

/// Registers the Node, trying again (through the next server, after a failure moved the
/// rotation) up to twice per server.
async fn register(nodes: &Api<Node>, facts: &node::Facts, servers: usize) -> Result<Node> {
    let attempts = 2 * servers.max(1);
    let mut attempt = 1;
    loop {
        match node::register(nodes, facts).await {
            Ok(node) => return Ok(node),
            Err(e) if attempt < attempts => {
                tracing::warn!(error = %e, attempt, "registering the node failed; trying again");
                attempt += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(Error::Register(e)),
        }
    }
}

/// Runs the agent until `shutdown` resolves. Containers keep running when it returns.
pub async fn run(
    config: Config,
    node_api_listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    config.validate().map_err(Error::Config)?;
    let node_ip = config
        .node_ip
        .or_else(|| detect_node_ip(&config.servers))
        .map(|ip| ip.to_string())
        .unwrap_or_else(|| "127.0.0.1".to_string());
    let identity = bootstrap::ensure(
        &config.data_dir,
        &config.servers,
        &config.token,
        &config.node_name,
        std::slice::from_ref(&node_ip),
    )
    .await?;
    let metrics = match &config.metrics_registry {
        Some(registry) => Metrics::register(registry)?,
        None => Metrics::new()?,
    };
    let client = client(&config.servers, &identity, Some(&metrics))?;
    let runtime: Arc<dyn ContainerRuntime> = Arc::new(
        DockerRuntime::connect(config.docker_socket.as_deref(), Some(metrics.clone())).await?,
    );
    // The sandbox and the test images (`skiff-test/busybox:1`, `skiff-test/httpd:1`): there is
    // no registry, so they are built here, once per engine.
    images::ensure(
        runtime.as_ref(),
        &[
            images::LocalImage::Sandbox,
            images::LocalImage::TestBusybox,
            images::LocalImage::TestHttpd,
        ],
        images::BUSYBOX_PATH,
    )
    .await?;

    let node_api_port = node_api_listener
        .local_addr()
        .map(|a| i32::from(a.port()))
        .unwrap_or(10250);
    let mut facts = node::measure(
        node::Facts {
            name: config.node_name.clone(),
            internal_ip: node_ip.clone(),
            max_pods: config.max_pods,
            node_api_port,
            runtime_version: runtime
                .version()
                .await
                .unwrap_or_else(|_| "docker://unknown".into()),
            ..Default::default()
        },
        &config.data_dir,
    );
    let nodes: Api<Node> = Api::all(client.clone());
    let registered = register(&nodes, &facts, config.servers.len()).await?;
    let pod_cidr = registered
        .spec
        .as_ref()
        .and_then(|s| s.pod_cidr.clone())
        .or(config.pod_cidr.clone())
        .unwrap_or_else(|| config::derived_pod_cidr(&config.node_name));
    facts.pod_cidr = pod_cidr.clone();
    let network = format!("skiff-{}", config.node_name);
    let bridge = runtime
        .ensure_network(&NetworkSpec {
            name: network.clone(),
            subnet: pod_cidr.clone(),
            gateway: config::gateway(&pod_cidr).unwrap_or_default(),
            labels: [(crate::labels::NODE.to_string(), config.node_name.clone())].into(),
        })
        .await?;
    tracing::info!(node = %config.node_name, %node_ip, %pod_cidr, "node registered");
    if let Err(e) =
        pod_network::ensure_rules(&pod_network::cluster_rules(&config.cluster_cidr)).await
    {
        tracing::warn!(error = %e, "installing the pod network rules failed; pods of other nodes may be unreachable");
    }
    // Pods that were running before this agent started (each new sandbox gets it at start).
    match &bridge {
        Some(bridge) => {
            if let Err(e) = pod_network::ensure_hairpin(
                std::path::Path::new(pod_network::SYS_CLASS_NET),
                bridge,
            ) {
                tracing::warn!(error = %e, "turning on hairpin mode failed");
            }
        }
        None => {
            tracing::warn!(%network, "the pod network has no known Linux bridge; pods reaching their own Service through its ClusterIP may get no answer")
        }
    }

    let settings = Arc::new(Settings {
        node_name: config.node_name.clone(),
        data_dir: config.data_dir.clone(),
        network,
        bridge,
        node_resolv_conf: config.resolv_conf.clone(),
        sandbox_image: images::SANDBOX_IMAGE.to_string(),
        node: NodeFacts {
            node_name: config.node_name.clone(),
            host_ip: node_ip.clone(),
            pod_ip: None,
            allocatable_cpu_millis: facts.cpu_millis,
            allocatable_memory_bytes: facts.memory_bytes,
        },
        cluster: ClusterFacts {
            dns_servers: config.cluster_dns.clone(),
            domain: config.cluster_domain.clone(),
            kubernetes_service: config.kubernetes_service.clone(),
        },
        resync: config.resync,
    });
    let deps = Deps {
        runtime: runtime.clone(),
        objects: Arc::new(api::ApiObjects::new(client.clone())),
        status: Arc::new(api::ApiStatus::new(client.clone(), &config.node_name)),
        settings,
        metrics: Some(metrics.clone()),
    };

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let tls =
        node_api::tls::server_config(&identity.cert_pem, &identity.key_pem, &identity.ca_pem)?;
    let api_state = Arc::new(node_api::State::new(
        &config.node_name,
        runtime.clone(),
        Some(metrics.clone()),
    ));
    let mut stop = stop_rx.clone();
    let server = tokio::spawn(node_api::serve(
        node_api_listener,
        tls,
        api_state,
        async move {
            let _ = stop.wait_for(|s| *s).await;
        },
    ));
    let routing = tokio::spawn(route_to_nodes(
        client.clone(),
        config.node_name.clone(),
        node_ip.clone(),
        stop_rx.clone(),
    ));
    let heartbeat = tokio::spawn(heartbeat(
        client.clone(),
        nodes.clone(),
        registered,
        facts,
        config.data_dir.clone(),
        metrics.clone(),
        stop_rx.clone(),
    ));

    let result = watch_pods(client, config.node_name.clone(), deps, runtime, shutdown).await;
    let _ = stop_tx.send(true);
    let _ = server.await;
    let _ = heartbeat.await;
    let _ = routing.await;
    result
}

/// Keeps a route to every other machine's pod CIDR, from the Nodes' `podCIDR` and InternalIP.
async fn route_to_nodes(
    client: kube::Client,
    own_name: String,
    own_ip: String,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut stream = watcher::watcher(Api::<Node>::all(client), watcher::Config::default()).boxed();
    let mut nodes: std::collections::BTreeMap<String, pod_network::NodeRoute> =
        std::collections::BTreeMap::new();
    let route_of = |n: &Node| pod_network::NodeRoute {
        name: n.metadata.name.clone().unwrap_or_default(),
        pod_cidr: n.spec.as_ref().and_then(|s| s.pod_cidr.clone()),
        internal_ip: n
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .and_then(|a| a.iter().find(|a| a.type_ == "InternalIP"))
            .map(|a| a.address.clone()),
    };
    loop {
        let event = tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            event = stream.next() => event,
        };
        let changed = match event {
            Some(Ok(watcher::Event::Apply(n))) | Some(Ok(watcher::Event::InitApply(n))) => {
                let route = route_of(&n);
                nodes.insert(route.name.clone(), route);
                true
            }
            Some(Ok(watcher::Event::Delete(n))) => nodes
                .remove(n.metadata.name.as_deref().unwrap_or(""))
                .is_some(),
            Some(Ok(watcher::Event::Init)) => {
                nodes.clear();
                false
            }
            Some(Ok(watcher::Event::InitDone)) => true,
            Some(Err(e)) => {
                tracing::debug!(error = %e, "watching nodes failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                false
            }
            None => return,
        };
        if changed {
            let list: Vec<_> = nodes.values().cloned().collect();
            if let Err(e) =
                pod_network::ensure_routes(&pod_network::routes(&own_name, &own_ip, &list)).await
            {
                tracing::warn!(error = %e, "routing to other nodes' pods failed");
            }
        }
    }
}

async fn heartbeat(
    client: kube::Client,
    nodes: Api<Node>,
    registered: Node,
    facts: node::Facts,
    data_dir: std::path::PathBuf,
    metrics: Metrics,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let leases: Api<Lease> = Api::namespaced(client, node::LEASE_NAMESPACE);
    let mut last_status = registered.status.clone();
    // The Lease is owned by the Node (its uid); it is renewed even while status writes fail.
    let mut node_object = Some(registered);
    let mut status_written = false;
    let mut ticks = 0u64;
    loop {
        let measured = node::measure(facts.clone(), &data_dir);
        // Status every minute (and at once); the Lease every tick.
        if ticks.is_multiple_of(6) || !status_written {
            match node::update_status(&nodes, &measured, last_status.as_ref()).await {
                Ok(node) => {
                    last_status = node.status.clone();
                    node_object = Some(node);
                    status_written = true;
                    metrics
                        .node_status_updates
                        .with_label_values(&["status", "ok"])
                        .inc();
                }
                Err(e) => {
                    metrics
                        .node_status_updates
                        .with_label_values(&["status", "error"])
                        .inc();
                    tracing::warn!(error = %e, "updating the node status failed");
                }
            }
        }
        let mut renewed = true;
        if let Some(node) = &node_object {
            match node::renew_lease(&leases, node).await {
                Ok(()) => metrics
                    .node_status_updates
                    .with_label_values(&["lease", "ok"])
                    .inc(),
                Err(e) => {
                    renewed = false;
                    metrics
                        .node_status_updates
                        .with_label_values(&["lease", "error"])
                        .inc();
                    tracing::warn!(error = %e, "renewing the node lease failed; trying again shortly");
                }
            }
        }
        // A failed renewal is tried again soon (through another API server, if the failure
        // moved the client on), not a whole period later: the Lease must not lapse.
        let pause = if renewed {
            ticks += 1;
            node::LEASE_RENEW
        } else {
            node::LEASE_RETRY
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

async fn watch_pods(
    client: kube::Client,
    node_name: String,
    deps: Deps,
    runtime: Arc<dyn ContainerRuntime>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    let pods: Api<Pod> = Api::all(client);
    let config = watcher::Config::default().fields(&format!("spec.nodeName={node_name}"));
    let mut stream = watcher::watcher(pods, config).boxed();
    let mut manager = PodManager::new(deps);
    let mut known: HashSet<String> = HashSet::new();
    let mut listing: HashSet<String> = HashSet::new();
    let mut synced = false;
    let (wake_tx, mut wake_rx) = tokio::sync::mpsc::unbounded_channel::<(String, _)>();
    let events_node = node_name.clone();
    let events = tokio::spawn(async move {
        loop {
            let mut stream = runtime.events(&events_node);
            while let Some(event) = stream.next().await {
                match event {
                    Ok(event) => {
                        if let Some(uid) = event.pod_uid
                            && wake_tx.send((uid, event.at)).is_err()
                        {
                            return;
                        }
                    }
                    Err(_) => break,
                }
            }
            // The engine went away (restart): subscribe again shortly.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let mut gc = tokio::time::interval(Duration::from_secs(60));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some((uid, at)) = wake_rx.recv() => manager.container_changed(&uid, at),
            _ = gc.tick(), if synced => {
                if let Err(e) = manager.collect_orphans(&known).await {
                    tracing::warn!(error = %e, "orphan collection failed");
                }
            }
            event = stream.next() => match event {
                Some(Ok(watcher::Event::Init)) => listing.clear(),
                Some(Ok(watcher::Event::InitApply(p))) => {
                    listing.insert(pod::uid(&p).to_string());
                    manager.apply(p);
                }
                Some(Ok(watcher::Event::InitDone)) => {
                    // Pods that vanished while we were not watching.
                    known = std::mem::take(&mut listing);
                    synced = true;
                    if let Err(e) = manager.collect_orphans(&known).await {
                        tracing::warn!(error = %e, "orphan collection failed");
                    }
                }
                Some(Ok(watcher::Event::Apply(p))) => {
                    known.insert(pod::uid(&p).to_string());
                    manager.apply(p);
                }
                Some(Ok(watcher::Event::Delete(p))) => {
                    known.remove(pod::uid(&p));
                    manager.delete(&p);
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "watching pods failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                None => break,
            },
        }
    }
    events.abort();
    manager.shutdown().await;
    Ok(())
}
