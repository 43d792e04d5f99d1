//! A real ingress on loopback ports: two hosts and two paths routed to two backends, TLS with
//! two certificates chosen by SNI (checked with a real rustls client and the certificates'
//! subjects), rotation without restart, HTTP/2, WebSocket pass-through and retry on connect
//! failure. Backends are hyper servers in this process.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use skiff_ingress::{Config, Controller, Objects};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A backend answering `<name> <path> xff=<X-Forwarded-For> proto=<X-Forwarded-Proto>`, and
/// accepting WebSocket upgrades on `/ws` (then echoing bytes).
async fn backend(name: &'static str, mut stop: watch::Receiver<bool>) -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
            };
            tokio::spawn(async move {
                let service = service_fn(move |mut request: Request<Incoming>| async move {
                    if request.headers().contains_key("upgrade") {
                        let upgrade = hyper::upgrade::on(&mut request);
                        tokio::spawn(async move {
                            if let Ok(io) = upgrade.await {
                                let mut io = TokioIo::new(io);
                                let mut buffer = [0u8; 1024];
                                while let Ok(n) = io.read(&mut buffer).await {
                                    if n == 0 || io.write_all(&buffer[..n]).await.is_err() {
                                        break;
                                    }
                                }
                            }
                        });
                        let response = Response::builder()
                            .status(StatusCode::SWITCHING_PROTOCOLS)
                            .header("connection", "upgrade")
                            .header("upgrade", "websocket")
                            .body(Full::new(Bytes::new()))
                            .unwrap_or_default();
                        return Ok::<_, std::convert::Infallible>(response);
                    }
                    let header = |n: &str| {
                        request
                            .headers()
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("-")
                            .to_string()
                    };
                    let text = format!(
                        "{name} {} xff={} proto={} fhost={}",
                        request.uri().path(),
                        header("x-forwarded-for"),
                        header("x-forwarded-proto"),
                        header("x-forwarded-host")
                    );
                    Ok(Response::new(Full::new(Bytes::from(text))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    Ok(addr)
}

fn service(name: &str) -> Value {
    json!({"metadata": {"name": name, "namespace": "default"},
           "spec": {"clusterIP": "10.43.0.5", "ports": [{"name": "http", "port": 80}]}})
}

fn slice(name: &str, endpoints: &[SocketAddr]) -> Value {
    // One slice per endpoint port (a slice has one port list).
    let port = endpoints.first().map(|e| e.port()).unwrap_or(1);
    let list: Vec<Value> = endpoints
        .iter()
        .map(|e| json!({"addresses": [e.ip().to_string()], "conditions": {"ready": true}}))
        .collect();
    json!({"metadata": {"name": format!("{name}-1"), "namespace": "default",
                        "labels": {"kubernetes.io/service-name": name}},
           "addressType": "IPv4", "endpoints": list,
           "ports": [{"name": "http", "port": port, "protocol": "TCP"}]})
}

struct Ca {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    der: CertificateDer<'static>,
}

fn ca() -> Result<Ca> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "test ingress CA");
    let cert = params.self_signed(&key)?;
    Ok(Ca {
        der: cert.der().clone(),
        issuer: rcgen::Issuer::new(params, key),
    })
}

fn tls_secret(ca: &Ca, name: &str, host: &str, common_name: &str) -> Result<Secret> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(vec![host.to_string()])?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    let cert = params.signed_by(&key, &ca.issuer)?;
    let mut data = BTreeMap::new();
    data.insert("tls.crt".to_string(), ByteString(cert.pem().into_bytes()));
    data.insert(
        "tls.key".to_string(),
        ByteString(key.serialize_pem().into_bytes()),
    );
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "type": "kubernetes.io/tls",
        "data": serde_json::to_value(&data)?,
    }))?)
}

fn objects(alpha: &[SocketAddr], beta: &[SocketAddr], secrets: Vec<Secret>) -> Result<Objects> {
    let path = |p: &str, kind: &str, svc: &str| json!({"path": p, "pathType": kind, "backend": {"service": {"name": svc, "port": {"name": "http"}}}});
    let ingress = json!({
    "metadata": {"name": "shop", "namespace": "default"},
    "spec": {
        "ingressClassName": "skiff",
        "tls": [{"hosts": ["shop.test"], "secretName": "shop-tls"},
                {"hosts": ["*.blog.test"], "secretName": "blog-tls"}],
        "rules": [
            {"host": "shop.test", "http": {"paths": [path("/", "Prefix", "alpha"), path("/api", "Prefix", "beta")]}},
            {"host": "*.blog.test", "http": {"paths": [path("/", "Prefix", "beta"), path("/ws", "Exact", "alpha")]}}
        ]}});
    Ok(Objects {
        ingresses: vec![Arc::new(serde_json::from_value(ingress)?)],
        classes: vec![],
        services: vec![
            Arc::new(serde_json::from_value(service("alpha"))?),
            Arc::new(serde_json::from_value(service("beta"))?),
        ],
        slices: vec![
            Arc::new(serde_json::from_value(slice("alpha", alpha))?),
            Arc::new(serde_json::from_value(slice("beta", beta))?),
        ],
        secrets: secrets.into_iter().map(Arc::new).collect(),
    })
}

struct Ingress {
    controller: Arc<Controller>,
    http: SocketAddr,
    https: SocketAddr,
}

async fn start_ingress(stop: &watch::Receiver<bool>) -> Result<Ingress> {
    let controller = Arc::new(Controller::new(
        &Config {
            connect_timeout: Duration::from_millis(500),
            ..Config::default()
        },
        None,
    ));
    let http = TcpListener::bind("127.0.0.1:0").await?;
    let https = TcpListener::bind("127.0.0.1:0").await?;
    let (http_addr, https_addr) = (http.local_addr()?, https.local_addr()?);
    let mut s1 = stop.clone();
    let mut s2 = stop.clone();
    tokio::spawn(controller.serve_http(http, async move {
        let _ = s1.wait_for(|s| *s).await;
    }));
    tokio::spawn(controller.serve_https(https, async move {
        let _ = s2.wait_for(|s| *s).await;
    })?);
    Ok(Ingress {
        controller,
        http: http_addr,
        https: https_addr,
    })
}

async fn get(addr: SocketAddr, host: &str, path: &str) -> Result<(StatusCode, String)> {
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let request = Request::get(path)
        .header("host", host)
        .body(Empty::<Bytes>::new())?;
    let response =
        tokio::time::timeout(Duration::from_secs(5), sender.send_request(request)).await??;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).to_string()))
}

fn tls_client(ca: &Ca, alpn: &[&[u8]]) -> Result<tokio_rustls::TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der.clone())?;
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    // Full handshakes only: a resumed session shows the certificate of its first handshake.
    config.resumption = rustls::client::Resumption::disabled();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// A TLS connection to the ingress for `sni`; returns the stream and the leaf's subject CN.
async fn tls_connect(
    connector: &tokio_rustls::TlsConnector,
    addr: SocketAddr,
    sni: &str,
) -> Result<(tokio_rustls::client::TlsStream<TcpStream>, String)> {
    let stream = TcpStream::connect(addr).await?;
    let tls = connector
        .connect(ServerName::try_from(sni.to_string())?, stream)
        .await?;
    let leaf = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .context("no certificate")?
        .clone();
    let (_, parsed) = x509_parser::parse_x509_certificate(&leaf)?;
    let cn = parsed
        .subject()
        .iter_common_name()
        .next()
        .and_then(|c| c.as_str().ok())
        .context("no CN")?
        .to_string();
    Ok((tls, cn))
}

async fn https_get(
    connector: &tokio_rustls::TlsConnector,
    addr: SocketAddr,
    host: &str,
    path: &str,
) -> Result<(String, String)> {
    let (tls, cn) = tls_connect(connector, addr, host).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(connection);
    let response = sender
        .send_request(
            Request::get(path)
                .header("host", host)
                .body(Empty::<Bytes>::new())?,
        )
        .await?;
    let body = response.into_body().collect().await?.to_bytes();
    Ok((cn, String::from_utf8_lossy(&body).to_string()))
}

#[tokio::test]
async fn routes_hosts_and_paths_over_http_with_forwarded_headers() -> Result<()> {
    let (stop_tx, stop) = watch::channel(false);
    let alpha = backend("alpha", stop.clone()).await?;
    let beta = backend("beta", stop.clone()).await?;
    let ingress = start_ingress(&stop).await?;
    let problems = ingress
        .controller
        .update(&objects(&[alpha], &[beta], vec![])?);
    assert_eq!(
        problems.len(),
        2,
        "the TLS secrets are missing: {problems:?}"
    );

    let (status, body) = get(ingress.http, "shop.test", "/cart").await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "alpha /cart xff=127.0.0.1 proto=http fhost=shop.test");
    assert!(
        get(ingress.http, "shop.test:80", "/api/items")
            .await?
            .1
            .starts_with("beta /api/items")
    );
    assert!(
        get(ingress.http, "shop.test", "/apiary")
            .await?
            .1
            .starts_with("alpha ")
    );
    assert!(
        get(ingress.http, "www.blog.test", "/post/1")
            .await?
            .1
            .starts_with("beta /post/1")
    );
    assert!(
        get(ingress.http, "www.blog.test", "/ws")
            .await?
            .1
            .starts_with("alpha /ws")
    );
    assert_eq!(
        get(ingress.http, "other.test", "/").await?.0,
        StatusCode::NOT_FOUND
    );

    // A configuration swap applies to the next request on the same server, no restart.
    ingress
        .controller
        .update(&objects(&[beta], &[alpha], vec![])?);
    assert!(
        get(ingress.http, "shop.test", "/")
            .await?
            .1
            .starts_with("beta ")
    );
    let _ = stop_tx.send(true);
    Ok(())
}

#[tokio::test]
async fn balances_and_retries_when_an_endpoint_refuses() -> Result<()> {
    let (stop_tx, stop) = watch::channel(false);
    let alpha = backend("alpha", stop.clone()).await?;
    // A port nothing listens on, at the backend's port number on another loopback address.
    let dead: SocketAddr = format!("127.0.0.2:{}", alpha.port()).parse()?;
    let ingress = start_ingress(&stop).await?;
    ingress
        .controller
        .update(&objects(&[alpha, dead], &[alpha], vec![])?);
    for _ in 0..10 {
        let (status, body) = get(ingress.http, "shop.test", "/").await?;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // Nothing but dead endpoints: 502, quickly.
    ingress
        .controller
        .update(&objects(&[dead], &[dead], vec![])?);
    assert_eq!(
        get(ingress.http, "shop.test", "/").await?.0,
        StatusCode::BAD_GATEWAY
    );
    // No endpoints at all: 503.
    ingress.controller.update(&objects(&[], &[], vec![])?);
    assert_eq!(
        get(ingress.http, "shop.test", "/").await?.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let _ = stop_tx.send(true);
    Ok(())
}

#[tokio::test]
async fn terminates_tls_by_sni_and_picks_up_rotated_certificates() -> Result<()> {
    let (stop_tx, stop) = watch::channel(false);
    let alpha = backend("alpha", stop.clone()).await?;
    let beta = backend("beta", stop.clone()).await?;
    let ingress = start_ingress(&stop).await?;
    let ca = ca()?;
    let secrets = vec![
        tls_secret(&ca, "shop-tls", "shop.test", "shop certificate v1")?,
        tls_secret(&ca, "blog-tls", "*.blog.test", "blog wildcard certificate")?,
    ];
    let problems = ingress
        .controller
        .update(&objects(&[alpha], &[beta], secrets)?);
    assert!(problems.is_empty(), "{problems:?}");
    let connector = tls_client(&ca, &[b"http/1.1"])?;

    let (cn, body) = https_get(&connector, ingress.https, "shop.test", "/x").await?;
    assert_eq!(cn, "shop certificate v1");
    assert_eq!(body, "alpha /x xff=127.0.0.1 proto=https fhost=shop.test");
    let (cn, body) = https_get(&connector, ingress.https, "news.blog.test", "/y").await?;
    assert_eq!(cn, "blog wildcard certificate");
    assert!(body.starts_with("beta /y"));
    // A name with no certificate: the handshake fails rather than presenting a wrong one.
    assert!(
        tls_connect(&connector, ingress.https, "unknown.test")
            .await
            .is_err()
    );

    // Keep a TLS connection open across the rotation.
    let (open, _) = tls_connect(&connector, ingress.https, "shop.test").await?;
    let (mut open_sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(open)).await?;
    tokio::spawn(connection);

    let rotated = vec![
        tls_secret(&ca, "shop-tls", "shop.test", "shop certificate v2")?,
        tls_secret(&ca, "blog-tls", "*.blog.test", "blog wildcard certificate")?,
    ];
    ingress
        .controller
        .update(&objects(&[alpha], &[beta], rotated)?);
    let (cn, _) = https_get(&connector, ingress.https, "shop.test", "/").await?;
    assert_eq!(cn, "shop certificate v2");
    let response = open_sender
        .send_request(
            Request::get("/still")
                .header("host", "shop.test")
                .body(Empty::<Bytes>::new())?,
        )
        .await?;
    let body = response.into_body().collect().await?.to_bytes();
    assert!(String::from_utf8_lossy(&body).starts_with("alpha /still"));

    // HTTP/2 over TLS (ALPN h2) to the same routes.
    let h2 = tls_client(&ca, &[b"h2"])?;
    let (tls, _) = tls_connect(&h2, ingress.https, "shop.test").await?;
    if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
        bail!("h2 was not negotiated");
    }
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await?;
    tokio::spawn(connection);
    let response = sender
        .send_request(Request::get("https://shop.test/api/v2").body(Empty::<Bytes>::new())?)
        .await?;
    assert_eq!(response.version(), http::Version::HTTP_2);
    let body = response.into_body().collect().await?.to_bytes();
    assert_eq!(
        String::from_utf8_lossy(&body),
        "beta /api/v2 xff=127.0.0.1 proto=https fhost=shop.test"
    );
    let _ = stop_tx.send(true);
    Ok(())
}

#[tokio::test]
async fn passes_websocket_upgrades_through() -> Result<()> {
    let (stop_tx, stop) = watch::channel(false);
    let alpha = backend("alpha", stop.clone()).await?;
    let beta = backend("beta", stop.clone()).await?;
    let ingress = start_ingress(&stop).await?;
    ingress
        .controller
        .update(&objects(&[alpha], &[beta], vec![])?);
    let mut stream = TcpStream::connect(ingress.http).await?;
    stream
        .write_all(
            b"GET /ws HTTP/1.1\r\nHost: chat.blog.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
              Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .await?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte)).await??;
        if n == 0 {
            bail!(
                "closed before the response head: {}",
                String::from_utf8_lossy(&head)
            );
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_string();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    for message in [&b"ping"[..], b"\x81\x05hello", b"bytes both ways"] {
        stream.write_all(message).await?;
        let mut echoed = vec![0u8; message.len()];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut echoed)).await??;
        assert_eq!(echoed, message);
    }
    let _ = stop_tx.send(true);
    Ok(())
}
