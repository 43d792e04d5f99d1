//! The node API: the agent's HTTPS server (default port 10250) for the API server only. Mutual
//! TLS with the cluster CA; only a client certificate whose CN is `skiff-apiserver` is served.
//!
//! Endpoints, as the kubelet's: `/containerLogs/{ns}/{pod}/{container}`, `/exec/...` and
//! `/attach/...` (WebSocket channel protocols), `/portForward/{ns}/{pod}` (channel protocol with
//! `?ports=`, or SPDY/3.1 inside WebSocket for kubectl), `/stats/summary`, `/healthz`,
//! `/metrics`. Containers are found by their Docker labels, so the node API needs no pod cache.

pub mod channels;
mod exec;
mod logs;
pub mod netns;
mod portforward;
pub mod spdy;
mod stats;
pub mod tls;
mod ws;

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::labels::{self, Kind};
use crate::metrics::Metrics;
use crate::runtime::{ContainerRuntime, ObservedContainer};

pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// The CN of the only client the node API serves.
pub const API_SERVER_CN: &str = "skiff-apiserver";

/// What the node API serves from.
pub struct State {
    pub node_name: String,
    pub runtime: Arc<dyn ContainerRuntime>,
    pub metrics: Option<Metrics>,
    pub stats: stats::Sampler,
}

impl State {
    pub fn new(
        node_name: &str,
        runtime: Arc<dyn ContainerRuntime>,
        metrics: Option<Metrics>,
    ) -> State {
        State {
            node_name: node_name.to_string(),
            runtime,
            metrics,
            stats: stats::Sampler::default(),
        }
    }
}

pub fn full(status: StatusCode, text: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(
        Full::new(text.into())
            .map_err(|never: Infallible| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Query parameters, repeated keys kept in order.
pub fn query(req: &Request<Incoming>) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for pair in req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        out.entry(decode_component(key))
            .or_default()
            .push(decode_component(value));
    }
    out
}

fn decode_component(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(
                    std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                    16,
                ) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn flag(q: &HashMap<String, Vec<String>>, name: &str) -> bool {
    q.get(name)
        .and_then(|v| v.last())
        .map(|v| v == "true" || v == "1" || v.is_empty())
        .unwrap_or(false)
}

pub fn number(q: &HashMap<String, Vec<String>>, name: &str) -> Option<i64> {
    q.get(name)
        .and_then(|v| v.last())
        .and_then(|v| v.parse().ok())
}

/// The app (or init) container instance of `container` in pod `ns/pod`: the newest attempt, or
/// the one before it with `previous`.
pub async fn find_container(
    state: &State,
    namespace: &str,
    pod: &str,
    container: &str,
    previous: bool,
) -> Result<ObservedContainer, Response<Body>> {
    let list = state
        .runtime
        .list_containers(&[
            (labels::NODE, state.node_name.as_str()),
            (labels::POD_NAMESPACE, namespace),
            (labels::POD_NAME, pod),
            (labels::CONTAINER_NAME, container),
        ])
        .await
        .map_err(|e| full(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    let mut list: Vec<_> = list
        .into_iter()
        .filter(|c| c.identity.kind != Kind::Sandbox)
        .collect();
    // Several pod uids can share a name briefly (a replaced pod): the newest uid's containers
    // have the newest attempts only by accident, so prefer running ones, then the highest attempt.
    list.sort_by_key(|c| std::cmp::Reverse(c.identity.attempt));
    let index = usize::from(previous);
    list.into_iter().nth(index).ok_or_else(|| {
        let message = if previous {
            format!("previous terminated container \"{container}\" in pod \"{pod}\" not found")
        } else {
            format!("container \"{container}\" in pod \"{pod}\" is not available")
        };
        full(StatusCode::NOT_FOUND, message)
    })
}

/// The running sandbox of pod `ns/pod`.
pub async fn find_sandbox(
    state: &State,
    namespace: &str,
    pod: &str,
) -> Result<ObservedContainer, Response<Body>> {
    let list = state
        .runtime
        .list_containers(&[
            (labels::NODE, state.node_name.as_str()),
            (labels::POD_NAMESPACE, namespace),
            (labels::POD_NAME, pod),
            (labels::KIND, Kind::Sandbox.as_label()),
        ])
        .await
        .map_err(|e| full(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    list.into_iter()
        .filter(|c| c.state.is_running())
        .max_by_key(|c| c.identity.attempt)
        .ok_or_else(|| {
            full(
                StatusCode::NOT_FOUND,
                format!("pod \"{pod}\" has no running sandbox"),
            )
        })
}

/// `/exec/{ns}/{pod}/{container}` or `/exec/{ns}/{pod}/{uid}/{container}` → (ns, pod, container).
fn pod_container(segments: &[&str]) -> Option<(String, String, String)> {
    match segments {
        [ns, pod, container] | [ns, pod, _, container] => {
            Some((ns.to_string(), pod.to_string(), container.to_string()))
        }
        _ => None,
    }
}

async fn route(state: Arc<State>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (req.method(), segments.first().copied().unwrap_or("")) {
        (&Method::GET, "healthz") => full(StatusCode::OK, "ok"),
        (&Method::GET, "metrics") => stats::metrics(&state).await,
        (&Method::GET, "stats") if segments.get(1) == Some(&"summary") => {
            stats::summary(&state).await
        }
        (&Method::GET, "containerLogs") => match pod_container(&segments[1..]) {
            Some((ns, pod, container)) => logs::serve(&state, &req, &ns, &pod, &container).await,
            None => full(
                StatusCode::NOT_FOUND,
                "expected /containerLogs/{namespace}/{pod}/{container}",
            ),
        },
        (&Method::GET | &Method::POST, kind @ ("exec" | "attach")) => {
            match pod_container(&segments[1..]) {
                Some((ns, pod, container)) => {
                    exec::serve(state.clone(), req, kind == "attach", &ns, &pod, &container).await
                }
                None => full(
                    StatusCode::NOT_FOUND,
                    "expected /exec/{namespace}/{pod}/{container}",
                ),
            }
        }
        (&Method::GET | &Method::POST, "portForward") => match &segments[1..] {
            [ns, pod] | [ns, pod, _] => portforward::serve(state.clone(), req, ns, pod).await,
            _ => full(
                StatusCode::NOT_FOUND,
                "expected /portForward/{namespace}/{pod}",
            ),
        },
        _ => full(StatusCode::NOT_FOUND, format!("no such endpoint: {path}")),
    }
}

/// Serves the node API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    state: Arc<State>,
    shutdown: impl Future<Output = ()> + Send,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "node API accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Exec and attach streams carry keystrokes: no Nagle delay on small writes.
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let state = state.clone();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(
                std::time::Duration::from_secs(10),
                acceptor.accept(tcp),
            )
            .await
            {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "node API TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let authorized = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(|cert| tls::common_name(cert.as_ref()))
                .map(|cn| cn == API_SERVER_CN)
                .unwrap_or(false);
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let state = state.clone();
                async move {
                    if !authorized {
                        return Ok::<_, Infallible>(full(
                            StatusCode::FORBIDDEN,
                            format!("only {API_SERVER_CN} may use the node API"),
                        ));
                    }
                    Ok(route(state, req).await)
                }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "node API connection ended");
            }
        });
    }
}
