//! Starting a control-plane member: the replicated store plus the Kubernetes API server, and
//! the files they share with the other members (Secret encryption keys, the service-account
//! token key, the node join secret), created when the cluster is created.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use skiff_apiserver::encryption::{Encryption, KeyFile};
use skiff_store::Store;
use skiff_store::identity::DataDir;
use skiff_store::node::{self, Start};

pub const ENCRYPTION_KEYS: &str = "encryption-keys.json";
pub const SERVICE_ACCOUNT_KEY: &str = "serviceaccount.key";
pub const NODE_SECRET: &str = "node-join-secret";

/// The shared files of a new cluster.
pub fn new_cluster_files() -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let mut files = BTreeMap::new();
    files.insert(
        ENCRYPTION_KEYS.to_string(),
        serde_json::to_vec_pretty(&KeyFile::generate())?,
    );
    files.insert(
        SERVICE_ACCOUNT_KEY.to_string(),
        hex::encode(rand::random::<[u8; 32]>()).into_bytes(),
    );
    files.insert(
        NODE_SECRET.to_string(),
        hex::encode(rand::random::<[u8; 24]>()).into_bytes(),
    );
    Ok(files)
}

/// How to run a member.
pub struct Options {
    pub store: skiff_store::Config,
    pub start: Start,
    pub peer_listener: tokio::net::TcpListener,
    pub api_listener: tokio::net::TcpListener,
    /// `https://host:port` clients should use for this member's API.
    pub api_url: String,
}

/// A running member.
pub struct Member {
    pub store: Store,
    pub api: std::sync::Arc<skiff_apiserver::Api>,
    pub created: bool,
    pub store_token: String,
    pub node_token: String,
    pub kubeconfig: PathBuf,
    /// Every metric of the member (store and API), for `/metrics` endpoints.
    pub registry: prometheus::Registry,
    shutdown: tokio::sync::watch::Sender<bool>,
}

impl Member {
    pub async fn shutdown(&self) {
        let _ = self.shutdown.send(true);
        self.store.shutdown().await;
    }
}

fn host_of(url: &str) -> String {
    let rest = url.trim_start_matches("https://");
    let host_port = rest.split('/').next().unwrap_or(rest);
    match host_port.rsplit_once(':') {
        Some((h, _)) => h.trim_matches(['[', ']']).to_string(),
        None => host_port.to_string(),
    }
}

pub async fn start(opts: Options) -> anyhow::Result<Member> {
    let data_dir = opts.store.data_dir.clone();
    let registry = prometheus::Registry::new();
    let started = node::start(
        opts.store.clone(),
        opts.peer_listener,
        opts.start,
        Some(&registry),
    )
    .await?;
    let store = started.store;
    let dir = DataDir::new(&data_dir);
    let files = dir.load_cluster_files()?;
    let cluster_files = dir.cluster_files();
    let key_file = cluster_files.join(ENCRYPTION_KEYS);
    if !key_file.exists() {
        bail!(
            "the Secret encryption key file {} is missing: Secrets cannot be read without it. Restore it from your backup of {} (it is not in the store by design)",
            key_file.display(),
            cluster_files.display()
        );
    }
    let encryption = Encryption::from_file(&key_file)?;
    let sa_key = files
        .get(SERVICE_ACCOUNT_KEY)
        .cloned()
        .context("the service-account key is missing from cluster-files")?;
    let node_secret = String::from_utf8_lossy(
        files
            .get(NODE_SECRET)
            .context("the node join secret is missing from cluster-files")?,
    )
    .trim()
    .to_string();
    let node_token = format!("skiffnode1.{}.{node_secret}", store.ca().fingerprint()?);
    let node_token_hash = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(node_secret.as_bytes())).into_bytes()
    };
    let api_host = host_of(&opts.api_url);
    let mut serving_names = vec![api_host.clone()];
    if let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        serving_names.push(h.trim().to_string());
    }
    let config = skiff_apiserver::Config {
        encryption_key_file: key_file,
        serving_names,
        advertise_url: opts.api_url.clone(),
        ..skiff_apiserver::Config::default()
    };
    let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
    let api = skiff_apiserver::start(
        skiff_apiserver::Setup {
            config,
            store: store.clone(),
            encryption,
            service_account_key: sa_key,
            node_token_hash: Some(node_token_hash),
        },
        opts.api_listener,
        &registry,
        shutdown_rx,
    )
    .await?;
    start_control_loops(&store, &opts.api_url, &registry, shutdown.subscribe()).await?;
    let kubeconfig = data_dir.join("admin.kubeconfig");
    if !kubeconfig.exists() {
        let text = skiff_apiserver::admin_kubeconfig(store.ca(), &opts.api_url, "skiff-admin")?;
        skiff_store::identity::write_file(&kubeconfig, text.as_bytes(), 0o600)?;
    }
    Ok(Member {
        store,
        api,
        created: started.created,
        store_token: started.token,
        node_token,
        kubeconfig,
        registry,
        shutdown,
    })
}

/// Runs the scheduler and controllers in this member; they act only while it leads (fenced).
async fn start_control_loops(
    store: &Store,
    api_url: &str,
    registry: &prometheus::Registry,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    use skiff_controllers::supervisor;
    let text =
        skiff_apiserver::admin_kubeconfig(store.ca(), api_url, "system:kube-controller-manager")?;
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&text)?;
    let kube_config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    let config = supervisor::Config {
        member_name: store.name().to_string(),
        ..supervisor::Config::default()
    };
    let problems = config.validate();
    if !problems.is_empty() {
        bail!(
            "invalid controller configuration:\n  {}",
            problems.join("\n  ")
        );
    }
    let sup = supervisor::Supervisor::new(config, registry)
        .map_err(|e| anyhow::anyhow!("starting the control loops: {e}"))?;
    // The store's leadership, as (is leader, term).
    let mut leadership = store.leadership();
    let (tx, rx) = tokio::sync::watch::channel((false, 0u64));
    tokio::spawn(async move {
        loop {
            let l = *leadership.borrow_and_update();
            let _ = tx.send((l.is_self, l.term));
            if leadership.changed().await.is_err() {
                return;
            }
        }
    });
    tokio::spawn(sup.run(
        rx,
        move |term| supervisor::fenced_client(&kube_config, term),
        shutdown,
    ));
    Ok(())
}

/// Waits until the API serves the bootstrap objects (the `default` namespace exists).
pub async fn wait_ready(member: &Member, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let namespaces = member
        .api
        .registry
        .get("", "v1", "namespaces")
        .context("no namespaces resource")?
        .clone();
    loop {
        if let Ok(Some(_)) = member
            .api
            .objects
            .get(
                &namespaces,
                "",
                "default",
                skiff_apiserver::objects::Freshness::Any,
            )
            .await
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "the API server did not become ready within {timeout:?} (is a majority of members running?)"
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
