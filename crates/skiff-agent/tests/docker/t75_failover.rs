//! The agent's failover client against real HTTPS servers on loopback: one that accepts TCP
//! connections and never answers (as a paused member does), one that answers 503, one that
//! serves. The rotation moves past the silent and the unavailable server after one request
//! each (nothing is sent twice), stays on the one that serves, and a watch from a server the
//! rotation leaves ends.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use futures::channel::mpsc;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::ConfigMap;
use skiff_agent::shell::bootstrap::Identity;
use skiff_agent::shell::failover::{Failover, Server};

use crate::client::TestCa;

type WatchSender = mpsc::UnboundedSender<Result<Frame<Bytes>, Infallible>>;

/// A stand-in API server: what it has seen, whether it answers 503 to everything, and the
/// open watches (kept open by holding their senders).
#[derive(Default)]
struct Stand {
    requests: AtomicUsize,
    unavailable: AtomicBool,
    watches: Mutex<Vec<WatchSender>>,
}

fn full(text: &'static str) -> BoxBody<Bytes, Infallible> {
    Full::new(Bytes::from_static(text.as_bytes())).boxed()
}

fn answer(
    stand: &Stand,
    req: &http::Request<hyper::body::Incoming>,
) -> http::Response<BoxBody<Bytes, Infallible>> {
    stand.requests.fetch_add(1, Ordering::SeqCst);
    if stand.unavailable.load(Ordering::SeqCst) {
        let mut response = http::Response::new(full(
            r#"{"kind":"Status","apiVersion":"v1","status":"Failure","code":503,"reason":"ServiceUnavailable","message":"unavailable"}"#,
        ));
        *response.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
        return response;
    }
    if req.uri().query().is_some_and(|q| q.contains("watch=true")) {
        let (tx, rx) = mpsc::unbounded();
        if let Ok(mut watches) = stand.watches.lock() {
            watches.push(tx);
        }
        return http::Response::new(StreamBody::new(rx).boxed());
    }
    http::Response::new(full(
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","namespace":"default"}}"#,
    ))
}

/// Serves `stand` over HTTPS with a certificate for 127.0.0.1 from `ca`; returns its URL.
async fn serve(ca: &TestCa, stand: Arc<Stand>) -> Result<String> {
    let (cert, key) = ca.issue("skiff-apiserver-serving", &["127.0.0.1"])?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(
        skiff_agent::node_api::tls::certificates(&cert)?,
        skiff_agent::node_api::tls::private_key(&key)?,
    )?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, stand) = (acceptor.clone(), stand.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let response = answer(&stand, &req);
                        async move { Ok::<_, Infallible>(response) }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    Ok(format!("https://{addr}"))
}

/// A listener that accepts connections and never reads or writes (the kernel of a stopped
/// process does the same); counts the connections.
async fn silent(accepted: Arc<AtomicUsize>) -> Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            accepted.fetch_add(1, Ordering::SeqCst);
            held.push(tcp);
        }
    });
    Ok(format!("https://{addr}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t75_failover_moves_past_silent_and_unavailable_servers_without_resending() -> Result<()> {
    let ca = TestCa::new()?;
    let (cert_pem, key_pem) = ca.issue("system:node:n1", &["n1"])?;
    let identity = Identity {
        key_pem,
        cert_pem,
        ca_pem: ca.cert_pem.clone(),
    };
    let accepted = Arc::new(AtomicUsize::new(0));
    let unavailable = Arc::new(Stand::default());
    unavailable.unavailable.store(true, Ordering::SeqCst);
    let serving = Arc::new(Stand::default());
    let urls = [
        silent(accepted.clone()).await?,
        serve(&ca, unavailable.clone()).await?,
        serve(&ca, serving.clone()).await?,
    ];
    let servers = urls
        .iter()
        .map(|url| {
            Ok(Server {
                url: url.clone(),
                client: skiff_agent::shell::server_client(url, &identity)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let timeout = Duration::from_millis(500);
    let failover = Failover::new(servers, timeout, None)?;
    let client = kube::Client::new(failover.clone(), "default");
    let configmaps: kube::Api<ConfigMap> = kube::Api::default_namespaced(client.clone());

    // The silent server: no answer within the timeout, and the request is not sent elsewhere.
    let started = Instant::now();
    let err = configmaps
        .get("x")
        .await
        .err()
        .context("a silent server answered")?;
    assert!(
        started.elapsed() >= timeout,
        "gave up after {:?}",
        started.elapsed()
    );
    assert!(err.to_string().contains("did not answer within"), "{err}");
    assert_eq!(failover.current_url(), urls[1]);
    assert_eq!(
        unavailable.requests.load(Ordering::SeqCst),
        0,
        "the request was resent"
    );
    assert_eq!(
        serving.requests.load(Ordering::SeqCst),
        0,
        "the request was resent"
    );

    // The unavailable server: its 503 reaches the caller, the next request goes on.
    match configmaps.get("x").await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 503),
        other => anyhow::bail!("expected the 503, got {other:?}"),
    }
    assert_eq!(failover.current_url(), urls[2]);
    assert_eq!(
        serving.requests.load(Ordering::SeqCst),
        0,
        "the request was resent"
    );

    // The serving one keeps the requests.
    for _ in 0..3 {
        configmaps.get("x").await?;
    }
    assert_eq!(failover.current_url(), urls[2]);
    assert_eq!(serving.requests.load(Ordering::SeqCst), 3);
    assert_eq!(unavailable.requests.load(Ordering::SeqCst), 1);
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one connection to the silent server"
    );

    // A watch on the serving server ends once a failure there moves the rotation on.
    let request = http::Request::get("/api/v1/namespaces/default/configmaps?watch=true")
        .body(kube::client::Body::empty())?;
    let watch = client.send(request).await?;
    let mut frames = watch.into_body().into_data_stream();
    let ended = tokio::spawn(async move {
        use futures::StreamExt;
        while frames.next().await.is_some() {}
    });
    serving.unavailable.store(true, Ordering::SeqCst);
    let _ = configmaps.get("x").await;
    assert_eq!(failover.current_url(), urls[0]);
    tokio::time::timeout(Duration::from_secs(5), ended)
        .await
        .context("the watch on the server the rotation left did not end")??;
    assert_eq!(
        serving.watches.lock().map(|w| w.len()).unwrap_or(0),
        1,
        "the server still holds its watch open: the client ended it"
    );
    Ok(())
}
