//! TLS termination: certificates from the `kubernetes.io/tls` Secrets that our Ingresses name in
//! `spec.tls`, chosen by the SNI name of each handshake.
//!
//! [`CertStore::build`] is pure (Secrets in, parsed keys out, problems reported, never fatal).
//! [`SniResolver`] is the rustls `ResolvesServerCert` over an `ArcSwap<CertStore>`: the shell
//! swaps in a new store when a Secret or an Ingress changes, so a rotated certificate is served
//! from the next handshake on, without a restart and without touching open connections.
//! Selection: the exact host, else a wildcard entry one label up (`*.example.com`), else nothing
//! (the handshake fails: we never present a certificate for a name it was not issued for).
//! A `spec.tls` entry without hosts covers the hosts of that Ingress's rules.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::Ingress;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::routing::{ClassSelector, Problem, normalize_host};

/// The Secret type that holds a certificate and key.
pub const TLS_SECRET_TYPE: &str = "kubernetes.io/tls";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("secret has no {0}")]
    Missing(&'static str),
    #[error("bad PEM in {field}: {detail}")]
    Pem { field: &'static str, detail: String },
    #[error("unsupported private key: {0}")]
    Key(String),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Certificates by host.
#[derive(Debug, Default)]
pub struct CertStore {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// Keyed by the suffix after `*.`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    pub problems: Vec<Problem>,
}

/// Parses a `kubernetes.io/tls` Secret into a signing key with its chain.
pub fn certified_key(secret: &Secret) -> Result<CertifiedKey, Error> {
    let data = secret.data.as_ref();
    let get = |field: &'static str| {
        data.and_then(|d| d.get(field))
            .map(|b| b.0.clone())
            .ok_or(Error::Missing(field))
    };
    let cert_pem = get("tls.crt")?;
    let key_pem = get("tls.key")?;
    let chain: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| Error::Pem {
            field: "tls.crt",
            detail: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(Error::Missing("certificate in tls.crt"));
    }
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| Error::Pem {
            field: "tls.key",
            detail: e.to_string(),
        })?
        .ok_or(Error::Missing("private key in tls.key"))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| Error::Key(e.to_string()))?;
    Ok(CertifiedKey::new(chain, signing))
}

impl CertStore {
    /// Builds the store from our Ingresses' `spec.tls` and the Secrets they name.
    pub fn build<I: Borrow<Ingress>, S: Borrow<Secret>>(
        selector: &ClassSelector,
        ingresses: &[I],
        secrets: &[S],
    ) -> CertStore {
        let mut by_name: HashMap<(&str, &str), &Secret> = HashMap::new();
        for s in secrets {
            let s: &Secret = s.borrow();
            if let (Some(ns), Some(name)) =
                (s.metadata.namespace.as_deref(), s.metadata.name.as_deref())
            {
                by_name.insert((ns, name), s);
            }
        }
        let mut store = CertStore::default();
        let mut parsed: HashMap<(String, String), Option<Arc<CertifiedKey>>> = HashMap::new();
        let mut ours: Vec<&Ingress> = ingresses
            .iter()
            .map(|i| i.borrow())
            .filter(|i| selector.selects(i))
            .collect();
        ours.sort_by_key(|i| {
            (
                i.metadata.creation_timestamp.as_ref().map(|t| t.0),
                i.metadata.namespace.clone(),
                i.metadata.name.clone(),
            )
        });
        for ingress in ours {
            let (Some(ns), Some(name), Some(spec)) = (
                ingress.metadata.namespace.as_deref(),
                ingress.metadata.name.as_deref(),
                ingress.spec.as_ref(),
            ) else {
                continue;
            };
            let origin = format!("{ns}/{name}");
            let rule_hosts: Vec<String> = spec
                .rules
                .iter()
                .flatten()
                .filter_map(|r| r.host.as_deref())
                .map(normalize_host)
                .collect();
            for tls in spec.tls.iter().flatten() {
                let Some(secret_name) = tls.secret_name.as_deref().filter(|s| !s.is_empty()) else {
                    continue;
                };
                let entry = parsed
                    .entry((ns.to_string(), secret_name.to_string()))
                    .or_insert_with(|| {
                        let result = match by_name.get(&(ns, secret_name)) {
                            None => Err(format!("TLS secret {ns}/{secret_name} not found")),
                            Some(secret) if secret.type_.as_deref() != Some(TLS_SECRET_TYPE) => {
                                Err(format!(
                                    "secret {ns}/{secret_name} is not of type {TLS_SECRET_TYPE}"
                                ))
                            }
                            Some(secret) => certified_key(secret)
                                .map(Arc::new)
                                .map_err(|e| format!("TLS secret {ns}/{secret_name}: {e}")),
                        };
                        match result {
                            Ok(key) => Some(key),
                            Err(message) => {
                                store.problems.push(Problem {
                                    ingress: origin.clone(),
                                    message,
                                });
                                None
                            }
                        }
                    })
                    .clone();
                let Some(key) = entry else {
                    continue;
                };
                let hosts: Vec<String> = match tls.hosts.as_deref() {
                    Some(hosts) if !hosts.is_empty() => {
                        hosts.iter().map(|h| normalize_host(h)).collect()
                    }
                    _ => rule_hosts.clone(),
                };
                for host in hosts {
                    // The first (oldest) Ingress to claim a host keeps it.
                    match host.strip_prefix("*.") {
                        Some(suffix) => {
                            store
                                .wildcard
                                .entry(suffix.to_string())
                                .or_insert_with(|| key.clone());
                        }
                        None => {
                            store.exact.entry(host).or_insert_with(|| key.clone());
                        }
                    }
                }
            }
        }
        store
    }

    /// The certificate for an SNI name.
    pub fn select(&self, server_name: &str) -> Option<Arc<CertifiedKey>> {
        let host = normalize_host(server_name);
        if let Some(key) = self.exact.get(&host) {
            return Some(key.clone());
        }
        let (_, suffix) = host.split_once('.')?;
        self.wildcard.get(suffix).cloned()
    }

    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.wildcard.is_empty()
    }
}

/// rustls' certificate choice, reading the current store on every handshake.
#[derive(Debug)]
pub struct SniResolver {
    store: Arc<ArcSwap<CertStore>>,
}

impl SniResolver {
    pub fn new(store: Arc<ArcSwap<CertStore>>) -> SniResolver {
        SniResolver { store }
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = client_hello.server_name()?;
        self.store.load().select(name)
    }
}

/// A rustls server config that picks certificates with `resolver` and offers h2 and http/1.1.
pub fn server_config(resolver: SniResolver) -> Result<rustls::ServerConfig, Error> {
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests;
