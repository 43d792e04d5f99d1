//! The HTTPS listener: TLS (rustls; client certificates optional at the handshake and verified
//! against the cluster CA when presented), HTTP/1.1 and HTTP/2, upgrades, graceful shutdown.

use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;

use crate::api::Api;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("TLS setup: {0}")]
    Tls(String),
}

fn certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| Error::Tls(e.to_string()))
}

fn key(pem: &str) -> Result<PrivateKeyDer<'static>, Error> {
    rustls_pemfile::private_key(&mut pem.as_bytes())
        .map_err(|e| Error::Tls(e.to_string()))?
        .ok_or_else(|| Error::Tls("no private key in PEM".into()))
}

fn roots(ca_pem: &str) -> Result<rustls::RootCertStore, Error> {
    let mut roots = rustls::RootCertStore::empty();
    for c in certs(ca_pem)? {
        roots.add(c).map_err(|e| Error::Tls(e.to_string()))?;
    }
    Ok(roots)
}

/// The server TLS config: this member's serving chain; client certificates from the CA optional.
pub fn server_config(
    chain_pem: &str,
    key_pem: &str,
    ca_pem: &str,
) -> Result<Arc<rustls::ServerConfig>, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots(ca_pem)?),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()
    .map_err(|e| Error::Tls(e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs(chain_pem)?, key(key_pem)?)
        .map_err(|e| Error::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The client TLS config for calling node agents with the API server's certificate.
pub fn node_client_config(
    cert_pem: &str,
    key_pem: &str,
    ca_pem: &str,
) -> Result<Arc<rustls::ClientConfig>, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_root_certificates(roots(ca_pem)?)
        .with_client_auth_cert(certs(cert_pem)?, key(key_pem)?)
        .map_err(|e| Error::Tls(e.to_string()))?;
    Ok(Arc::new(config))
}

/// Serves until `shutdown` turns true.
pub async fn serve(
    api: Arc<Api>,
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let (tcp, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let api = api.clone();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(
                std::time::Duration::from_secs(10),
                acceptor.accept(tcp),
            )
            .await
            {
                Ok(Ok(s)) => s,
                _ => return,
            };
            let peer = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| Arc::new(c.to_vec()));
            let service = service_fn(move |req| {
                let api = api.clone();
                let peer = peer.clone();
                async move { Ok::<_, std::convert::Infallible>(api.handle(req, peer).await) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(e) = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!("connection ended: {e}");
            }
        });
    }
}
