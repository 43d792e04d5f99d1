//! Forwarding one request: route it, pick an endpoint (round-robin, moving on to the next one
//! when a connect fails), rewrite headers, and relay the response, or for a WebSocket (any
//! `Upgrade`) the raw bytes both ways after the backend's `101 Switching Protocols`.
//!
//! Backends are spoken to in HTTP/1.1 over pooled keep-alive connections, whatever the client
//! used (HTTP/1.1 or HTTP/2). Hop-by-hop headers are dropped; `X-Forwarded-For` (appended),
//! `X-Forwarded-Proto` and `X-Forwarded-Host` are set. The route table is read per request from
//! an `ArcSwap`, so a new configuration applies to the next request, even on an open connection.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::metrics::Metrics;
use crate::routing::{Backend, RouteTable};

pub type Body = BoxBody<Bytes, hyper::Error>;

/// Idle keep-alive connections to backends, by endpoint.
#[derive(Default)]
pub struct Pool {
    idle: Mutex<HashMap<SocketAddr, Vec<SendRequest<Incoming>>>>,
    max_idle: usize,
}

impl Pool {
    pub fn new(max_idle: usize) -> Pool {
        Pool {
            idle: Mutex::new(HashMap::new()),
            max_idle,
        }
    }

    fn take(&self, endpoint: SocketAddr) -> Option<SendRequest<Incoming>> {
        let mut idle = self.idle.lock().ok()?;
        let list = idle.get_mut(&endpoint)?;
        list.retain(|s| !s.is_closed());
        let index = list.iter().position(|s| s.is_ready())?;
        Some(list.swap_remove(index))
    }

    fn put(&self, endpoint: SocketAddr, sender: SendRequest<Incoming>) {
        if let Ok(mut idle) = self.idle.lock() {
            let list = idle.entry(endpoint).or_default();
            if list.len() < self.max_idle {
                list.push(sender);
            }
        }
    }
}

/// What every request handler shares.
pub struct Shared {
    pub routes: Arc<ArcSwap<RouteTable>>,
    pub metrics: Option<Metrics>,
    pub pool: Arc<Pool>,
    pub connect_timeout: Duration,
    /// Endpoints tried per request at most.
    pub max_attempts: usize,
}

const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
];

fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // Headers named by Connection are hop-by-hop too.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .filter(|n| !(keep_upgrade && n == header::UPGRADE))
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    if !keep_upgrade {
        headers.remove(header::UPGRADE);
    }
}

fn is_upgrade<B>(request: &Request<B>) -> bool {
    request.version() == Version::HTTP_11
        && request.headers().contains_key(header::UPGRADE)
        && request
            .headers()
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
}

fn text(status: StatusCode, message: &str) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from(format!("{message}\n")))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The request's host (with port, as sent) from the URI authority (HTTP/2) or `Host`.
fn request_host<B>(request: &Request<B>) -> String {
    request
        .uri()
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| {
            request
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_default()
}

/// Handles one request; never fails (errors become 4xx/5xx responses).
pub async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
    client: SocketAddr,
    scheme: &'static str,
) -> Result<Response<Body>, Infallible> {
    let started = Instant::now();
    let host = request_host(&request);
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let backend = shared.routes.load().route(&host, &path);
    let response = match &backend {
        None => text(
            StatusCode::NOT_FOUND,
            "no ingress rule matches this host and path",
        ),
        Some(b) if b.endpoints.is_empty() => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "the service has no ready endpoints",
        ),
        Some(b) => forward(&shared, b, request, &host, client, scheme).await,
    };
    let status = response.status();
    let (ingress, service) = backend
        .as_ref()
        .map(|b| (b.ingress.as_str(), b.service.as_str()))
        .unwrap_or(("", ""));
    let elapsed = started.elapsed();
    if let Some(metrics) = &shared.metrics {
        metrics.observe(ingress, service, status.as_u16(), elapsed);
    }
    tracing::info!(
        target: "skiff_ingress::access",
        client = %client.ip(), %method, host = %host, path = %path,
        status = status.as_u16(), ingress, service,
        micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        "request"
    );
    Ok(response)
}

async fn connect(shared: &Shared, endpoint: SocketAddr) -> Option<SendRequest<Incoming>> {
    let stream = tokio::time::timeout(shared.connect_timeout, TcpStream::connect(endpoint))
        .await
        .ok()?
        .ok()?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(async move {
        if let Err(e) = connection.with_upgrades().await {
            tracing::debug!(error = %e, "backend connection ended");
        }
    });
    Some(sender)
}

async fn forward(
    shared: &Shared,
    backend: &Backend,
    mut request: Request<Incoming>,
    host: &str,
    client: SocketAddr,
    scheme: &'static str,
) -> Response<Body> {
    let upgrade = is_upgrade(&request);
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
    let (mut parts, body) = request.into_parts();
    strip_hop_by_hop(&mut parts.headers, upgrade);
    if upgrade {
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    let forwarded_for = match parts
        .headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
    {
        Some(previous) => format!("{previous}, {}", client.ip()),
        None => client.ip().to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&forwarded_for) {
        parts.headers.insert("x-forwarded-for", v);
    }
    parts
        .headers
        .insert("x-forwarded-proto", HeaderValue::from_static(scheme));
    if let Ok(v) = HeaderValue::from_str(host) {
        parts.headers.insert("x-forwarded-host", v.clone());
        parts.headers.insert(header::HOST, v);
    }
    parts.version = Version::HTTP_11;
    let origin_form = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    parts.uri = match origin_form.parse() {
        Ok(uri) => uri,
        Err(_) => return text(StatusCode::BAD_REQUEST, "bad request target"),
    };

    // Connect: pooled connection, else a new one; a failed connect moves to the next endpoint.
    let mut chosen = None;
    for endpoint in backend
        .attempt_order()
        .into_iter()
        .take(shared.max_attempts.max(1))
    {
        let sender = match (upgrade, shared.pool.take(endpoint)) {
            (false, Some(sender)) => Some(sender),
            _ => connect(shared, endpoint).await,
        };
        if let Some(sender) = sender {
            chosen = Some((endpoint, sender));
            break;
        }
        tracing::debug!(%endpoint, service = %backend.service, "connect failed; trying the next endpoint");
    }
    let Some((endpoint, mut sender)) = chosen else {
        return text(
            StatusCode::BAD_GATEWAY,
            "no endpoint of the service accepted a connection",
        );
    };
    let upstream = Request::from_parts(parts, body);
    let mut response = match sender.send_request(upstream).await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(error = %e, %endpoint, "backend request failed");
            return text(StatusCode::BAD_GATEWAY, "the backend closed the connection");
        }
    };
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(client_upgrade) = client_upgrade {
            let backend_upgrade = hyper::upgrade::on(&mut response);
            tokio::spawn(async move {
                match tokio::try_join!(client_upgrade, backend_upgrade) {
                    Ok((client_io, backend_io)) => {
                        let mut client_io = TokioIo::new(client_io);
                        let mut backend_io = TokioIo::new(backend_io);
                        let _ =
                            tokio::io::copy_bidirectional(&mut client_io, &mut backend_io).await;
                    }
                    Err(e) => tracing::debug!(error = %e, "upgrade failed"),
                }
            });
        }
        let (parts, _) = response.into_parts();
        return Response::from_parts(
            parts,
            Full::new(Bytes::new())
                .map_err(|never| match never {})
                .boxed(),
        );
    }
    if !upgrade {
        // Back to the pool once the connection can take another request, i.e. after the
        // client has read this response's body (hyper's own pool works the same way).
        let pool = shared.pool.clone();
        tokio::spawn(async move {
            if sender.ready().await.is_ok() {
                pool.put(endpoint, sender);
            }
        });
    }
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers, false);
    Response::from_parts(parts, body.boxed())
}
