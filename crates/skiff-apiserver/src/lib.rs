//! skiff-apiserver: the Kubernetes REST API over HTTPS, backed by skiff-store.
//!
//! Every control-plane member runs it; any member takes any request (writes reach the Raft
//! leader through the store; watches are served from the local replica). Objects are JSON in
//! the store (`/registry/<group>/<resource>/<namespace>/<name>`), Secrets encrypted at rest.
//! The API machinery (registry, validation, patches, Tables, protobuf) is skiff-core's; this
//! crate is the I/O around it: TLS, authentication and authorization, handlers, watch, node
//! proxying, metrics.
//!
//! Entry points: [`start`] serves on a bound listener; [`admin_kubeconfig`] writes a kubeconfig.

pub mod admission;
pub mod allocator;
pub mod api;
pub mod auth;
mod body;
pub mod bootstrap;
pub mod config;
pub mod encryption;
pub mod handlers;
pub mod http;
pub mod join;
pub mod metrics;
pub mod objects;
pub mod output;
pub mod request_info;
pub mod sa_token;
pub mod server;

use std::sync::Arc;

use base64::Engine;
use skiff_store::Store;
use skiff_store::tls::{Ca, CertSpec};
use tokio::net::TcpListener;

pub use api::Api;
pub use config::Config;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid API server configuration:\n  - {}", .0.join("\n  - "))]
    Config(Vec<String>),
    #[error("certificates: {0}")]
    Certificates(#[from] skiff_store::tls::Error),
    #[error(transparent)]
    Tls(#[from] server::Error),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// What the API server needs besides its config.
pub struct Setup {
    pub config: Config,
    pub store: Store,
    pub encryption: encryption::Encryption,
    /// The cluster's service-account token key (shared by all members).
    pub service_account_key: Vec<u8>,
    /// The hash of the node join token's secret, stored at bootstrap if none is.
    pub node_token_hash: Option<Vec<u8>>,
}

/// Builds the API and serves it on `listener` until `shutdown` turns true.
pub async fn start(
    setup: Setup,
    listener: TcpListener,
    registry: &prometheus::Registry,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<Arc<Api>, Error> {
    setup.config.validate().map_err(Error::Config)?;
    let ca = setup.store.ca().clone();
    let mut sans = setup.config.serving_names.clone();
    for name in [
        "localhost",
        "127.0.0.1",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
    ] {
        sans.push(name.to_string());
    }
    sans.push(format!(
        "kubernetes.default.svc.{}",
        setup.config.cluster_domain
    ));
    sans.push(setup.config.kubernetes_service_ip().to_string());
    sans.sort();
    sans.dedup();
    let serving = ca.issue(&CertSpec {
        common_name: "kube-apiserver".into(),
        organizations: vec![],
        sans,
        server: true,
        client: false,
        valid_years: 5,
    })?;
    let node_client = ca.issue(&CertSpec {
        common_name: "skiff-apiserver".into(),
        organizations: vec!["system:masters".into()],
        sans: vec![],
        server: false,
        client: true,
        valid_years: 5,
    })?;
    let tls = server::server_config(
        &format!("{}{}", serving.cert_pem, ca.cert_pem),
        &serving.key_pem,
        &ca.cert_pem,
    )?;
    let node_tls =
        server::node_client_config(&node_client.cert_pem, &node_client.key_pem, &ca.cert_pem)?;
    let api = Arc::new(Api {
        objects: objects::Objects {
            store: setup.store.clone(),
            crypt: Arc::new(setup.encryption),
        },
        registry: skiff_core::registry::Registry::builtin(),
        config: setup.config,
        metrics: metrics::ApiMetrics::register(registry)?,
        tokens: auth::TokenCache::default(),
        ca,
        node_tls,
        sa_key: setup.service_account_key,
        watch_events: Arc::default(),
    });
    let bootstrap_api = api.clone();
    let hash = setup.node_token_hash;
    tokio::spawn(async move { bootstrap::run(&bootstrap_api, hash).await });
    tokio::spawn(server::serve(api.clone(), listener, tls, shutdown));
    Ok(api)
}

/// A kubeconfig for a `system:masters` administrator of the cluster at `server_url`.
pub fn admin_kubeconfig(
    ca: &Ca,
    server_url: &str,
    user: &str,
) -> Result<String, skiff_store::tls::Error> {
    let cert = ca.issue(&CertSpec {
        common_name: user.to_string(),
        organizations: vec!["system:masters".into()],
        sans: vec![],
        server: false,
        client: true,
        valid_years: 5,
    })?;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    Ok(format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: skiff\n  cluster:\n    server: {server_url}\n    certificate-authority-data: {}\nusers:\n- name: {user}\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: skiff\n  context:\n    cluster: skiff\n    user: {user}\ncurrent-context: skiff\n",
        b64(&ca.cert_pem),
        b64(&cert.cert_pem),
        b64(&cert.key_pem)
    ))
}
