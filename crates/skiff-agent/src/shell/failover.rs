//! Several API servers for one agent. [`Failover`] is the `tower::Service` the agent's
//! `kube::Client` is built on (`kube::Client::new`): it holds one kube client per server and
//! sends each request to the *current* server; a connection error, no answer within
//! [`REQUEST_TIMEOUT`], or a 503/504 answer from the current server makes the next server
//! current. The choice is the pure [`Rotation`]; this file's shell only times and forwards.
//!
//! Invariants:
//! - A request is sent once. The failover never resends anything (a write whose outcome is
//!   unknown must not be repeated blindly): it only changes where the *next* request goes. The
//!   agent's loops retry on their own, after re-reading (ARCHITECTURE.md, client retries).
//! - Only an outcome from the current server moves the rotation, so several requests failing
//!   together at one server move it once, not once each.
//! - A watch answered by a server the rotation has since left ends (cleanly, as when the
//!   server closes it), so kube-runtime's watcher watches again from its last resourceVersion
//!   through the current server. Without this, a watch on a member cut off from the others
//!   (which still answers bookmarks) would go quiet until it timed out.
//! - A silent connection errors after [`SILENCE_TIMEOUT`] (more than twice the API server's
//!   30 s bookmark interval), so a watch on a paused or unreachable member ends too.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use http::{Request, Response};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use kube::client::Body;

use crate::metrics::Metrics;

/// How long a request may wait for its response headers (a watch: for its first line of
/// headers only) before the server is given up on. A paused member still accepts TCP
/// connections; this is what notices it. The API server answers 504 after its own 10 s.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a connection may be silent while a response is read (the read timeout of every
/// server's client). A watch with bookmarks hears from the API server at least every 30 s.
pub const SILENCE_TIMEOUT: Duration = Duration::from_secs(65);

/// What became of one request, as far as choosing a server goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The server answered with this HTTP status.
    Answered(u16),
    /// No answer: the connection could not be made or broke (refused, reset, TLS).
    Failed,
    /// No response headers within the request timeout.
    TimedOut,
}

impl Outcome {
    /// Whether the server cannot serve now: it did not answer, or answered 503 (unavailable)
    /// or 504 (the store did not commit in time, as on a member without a majority).
    pub fn condemns(self) -> bool {
        matches!(
            self,
            Outcome::Failed | Outcome::TimedOut | Outcome::Answered(503 | 504)
        )
    }
}

/// Which server requests go to: the current one until it fails, then the next in the given
/// order (wrapping around).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rotation {
    servers: usize,
    current: usize,
    switches: u64,
}

impl Rotation {
    /// A rotation over `servers` servers starting at the first.
    pub fn new(servers: usize) -> Rotation {
        Rotation {
            servers,
            current: 0,
            switches: 0,
        }
    }

    /// The server the next request goes to.
    pub fn current(&self) -> usize {
        self.current
    }

    /// How often the rotation has moved.
    pub fn switches(&self) -> u64 {
        self.switches
    }

    /// Records the outcome of a request sent to `server`; true if the next requests go to
    /// another server now. An outcome from a server that is no longer current changes nothing
    /// (the rotation already left it).
    pub fn observe(&mut self, server: usize, outcome: Outcome) -> bool {
        if server != self.current || self.servers < 2 || !outcome.condemns() {
            return false;
        }
        self.current = (self.current + 1) % self.servers;
        self.switches += 1;
        true
    }

    /// Whether a stream answered by `server` is to end: the rotation has left that server.
    pub fn abandoned(&self, server: usize) -> bool {
        self.current != server
    }
}

/// Whether a request is a watch (`watch=true` or `watch=1` in its query).
pub fn is_watch(uri: &http::Uri) -> bool {
    uri.query().is_some_and(|query| {
        query
            .split('&')
            .any(|pair| matches!(pair, "watch=true" | "watch=1"))
    })
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no API server given; pass at least one with --server")]
    NoServers,
    #[error(
        "API server {server} did not answer ({source}); the agent's next requests go to {next}"
    )]
    Failed {
        server: String,
        next: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "API server {server} did not answer within {}s; the agent's next requests go to {next}",
        .after.as_secs()
    )]
    TimedOut {
        server: String,
        next: String,
        after: Duration,
    },
}

/// One API server: its URL and a kube client for it alone (no retries of its own).
#[derive(Clone)]
pub struct Server {
    pub url: String,
    pub client: kube::Client,
}

/// The response body: the server's, ended early for a watch whose server was left.
pub type ResponseBody = UnsyncBoxBody<Bytes, kube::Error>;

/// Sends each request to the current server of a [`Rotation`]; see the module doc.
#[derive(Clone)]
pub struct Failover {
    servers: Arc<[Server]>,
    rotation: Arc<tokio::sync::watch::Sender<Rotation>>,
    request_timeout: Duration,
    metrics: Option<Metrics>,
}

impl Failover {
    /// A failover over `servers` in this order, starting with the first.
    pub fn new(
        servers: Vec<Server>,
        request_timeout: Duration,
        metrics: Option<Metrics>,
    ) -> Result<Failover, Error> {
        if servers.is_empty() {
            return Err(Error::NoServers);
        }
        let (rotation, _) = tokio::sync::watch::channel(Rotation::new(servers.len()));
        let failover = Failover {
            servers: servers.into(),
            rotation: Arc::new(rotation),
            request_timeout,
            metrics,
        };
        failover.publish(0);
        Ok(failover)
    }

    /// The URL requests go to now.
    pub fn current_url(&self) -> String {
        self.url(self.rotation.borrow().current())
    }

    fn url(&self, index: usize) -> String {
        self.servers
            .get(index)
            .map(|s| s.url.clone())
            .unwrap_or_default()
    }

    /// Marks `current` as the server in use in the metrics.
    fn publish(&self, current: usize) {
        if let Some(metrics) = &self.metrics {
            for (i, server) in self.servers.iter().enumerate() {
                metrics
                    .api_server_current
                    .with_label_values(&[server.url.as_str()])
                    .set(i64::from(i == current));
            }
        }
    }

    async fn send(self, request: Request<Body>) -> Result<Response<ResponseBody>, Error> {
        let index = self.rotation.borrow().current();
        let Some(server) = self.servers.get(index) else {
            return Err(Error::NoServers);
        };
        let watch = is_watch(request.uri());
        let answer = tokio::time::timeout(self.request_timeout, server.client.send(request)).await;
        let outcome = match &answer {
            Ok(Ok(response)) => Outcome::Answered(response.status().as_u16()),
            Ok(Err(_)) => Outcome::Failed,
            Err(_) => Outcome::TimedOut,
        };
        if self
            .rotation
            .send_if_modified(|rotation| rotation.observe(index, outcome))
        {
            let next = self.rotation.borrow().current();
            tracing::warn!(
                from = %server.url,
                to = %self.url(next),
                ?outcome,
                "the API server did not serve; the agent's next requests go to another one"
            );
            if let Some(metrics) = &self.metrics {
                metrics.api_server_switches.inc();
            }
            self.publish(next);
        }
        let next = self.current_url();
        let response = match answer {
            Ok(Ok(response)) => response,
            Ok(Err(source)) => {
                return Err(Error::Failed {
                    server: server.url.clone(),
                    next,
                    source,
                });
            }
            Err(_) => {
                return Err(Error::TimedOut {
                    server: server.url.clone(),
                    next,
                    after: self.request_timeout,
                });
            }
        };
        let (parts, body) = response.into_parts();
        let body = if watch {
            let mut rotation = self.rotation.subscribe();
            let left = async move {
                // An error means the failover is gone: the stream ends as well.
                let _ = rotation
                    .wait_for(|rotation| rotation.abandoned(index))
                    .await;
            };
            let frames = http_body_util::BodyStream::new(body).take_until(Box::pin(left));
            http_body_util::StreamBody::new(frames).boxed_unsync()
        } else {
            body.boxed_unsync()
        };
        Ok(Response::from_parts(parts, body))
    }
}

impl tower_service::Service<Request<Body>> for Failover {
    type Response = Response<ResponseBody>;
    type Error = Error;
    type Future = BoxFuture<'static, Result<Self::Response, Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        Box::pin(self.clone().send(request))
    }
}

#[cfg(test)]
mod tests;
