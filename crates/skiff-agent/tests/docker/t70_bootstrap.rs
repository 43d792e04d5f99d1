//! Node bootstrap against a stand-in join endpoint speaking the contract: the CA is learned
//! over an unauthenticated handshake and trusted only when its hash matches the token; the CSR
//! carries `system:node:<name>`; the identity is stored (key 0600) and reused. Given several
//! servers, the node joins through the first that completes the join.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use anyhow::Result;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use skiff_agent::shell::bootstrap;

use crate::client::TestCa;

/// Serves POST /skiff/v1/join-node over TLS (chain: leaf, CA); accepts `secret` only.
async fn join_server(ca: Arc<TestCa>, secret: String) -> Result<std::net::SocketAddr> {
    let (leaf, key) = ca.issue("skiff-apiserver-serving", &["localhost", "127.0.0.1"])?;
    let mut chain = skiff_agent::node_api::tls::certificates(&leaf)?;
    chain.extend(skiff_agent::node_api::tls::certificates(&ca.cert_pem)?);
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(chain, skiff_agent::node_api::tls::private_key(&key)?)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, ca, secret) = (acceptor.clone(), ca.clone(), secret.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(
                    move |req: http::Request<hyper::body::Incoming>| {
                        let (ca, secret) = (ca.clone(), secret.clone());
                        async move {
                            let authorized = req
                                .headers()
                                .get("authorization")
                                .and_then(|v| v.to_str().ok())
                                .map(|v| v.ends_with(&secret))
                                .unwrap_or(false);
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let request: serde_json::Value =
                                serde_json::from_slice(&body).unwrap_or_default();
                            let csr = request["csrPEM"].as_str().unwrap_or_default().to_string();
                            let (status, reply) = match (authorized, ca.sign_csr(&csr)) {
                            (true, Ok((cert, cn))) if cn == format!("system:node:{}", request["nodeName"].as_str().unwrap_or("")) => {
                                (200, serde_json::json!({"certificatePEM": cert, "caPEM": ca.cert_pem}).to_string())
                            }
                            (true, _) => (400, "bad CSR".to_string()),
                            (false, _) => (401, "bad token".to_string()),
                        };
                            let mut response = http::Response::new(Full::new(Bytes::from(reply)));
                            *response.status_mut() = http::StatusCode::from_u16(status)
                                .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t70_bootstrap_pins_the_ca_and_keeps_the_identity() -> Result<()> {
    let ca = Arc::new(TestCa::new()?);
    let secret = "0123456789abcdef0123456789abcdef".to_string();
    let addr = join_server(ca.clone(), secret.clone()).await?;
    let server = format!("https://{addr}");
    let ca_der = skiff_agent::node_api::tls::certificates(&ca.cert_pem)?;
    let hash = hex::encode(Sha256::digest(ca_der[0].as_ref()));
    let dir = tempfile::tempdir()?;

    // A token naming another CA: refused before anything is sent.
    let wrong = format!("skiffnode1.{}.{secret}", "ab".repeat(32));
    let servers = std::slice::from_ref(&server);
    let err = bootstrap::ensure(dir.path(), servers, &wrong, "n1", &["127.0.0.1".into()])
        .await
        .err();
    assert!(
        matches!(err, Some(bootstrap::Error::CaMismatch { .. })),
        "{err:?}"
    );
    assert!(bootstrap::load(dir.path())?.is_none());

    // The right CA but a wrong secret: refused by the server.
    let bad_secret = format!("skiffnode1.{hash}.{}", "f".repeat(32));
    let err = bootstrap::ensure(
        dir.path(),
        servers,
        &bad_secret,
        "n1",
        &["127.0.0.1".into()],
    )
    .await
    .err();
    assert!(
        matches!(err, Some(bootstrap::Error::Refused { status: 401, .. })),
        "{err:?}"
    );

    let token = format!("skiffnode1.{hash}.{secret}");
    // The first server is down (a closed port): the join goes through the second.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        format!("https://{}", l.local_addr()?)
    };
    let identity = bootstrap::ensure(
        dir.path(),
        &[closed.clone(), server.clone()],
        &token,
        "n1",
        &["127.0.0.1".into()],
    )
    .await?;
    let cert = skiff_agent::node_api::tls::certificates(&identity.cert_pem)?;
    assert_eq!(
        skiff_agent::node_api::tls::common_name(cert[0].as_ref()).as_deref(),
        Some("system:node:n1")
    );
    let key_mode = std::fs::metadata(dir.path().join("tls/node.key"))?
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(key_mode, 0o600);
    // A kube client builds from it (the CA as the only root, the node certificate as identity).
    skiff_agent::shell::client(&[closed, server.clone()], &identity, None)?;

    // Restarting reuses the stored identity, even with the server gone.
    let gone = ["https://127.0.0.1:1".to_string()];
    let again = bootstrap::ensure(dir.path(), &gone, &token, "n1", &[]).await?;
    assert_eq!(again.cert_pem, identity.cert_pem);
    Ok(())
}
