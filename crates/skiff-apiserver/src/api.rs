//! The API server's request pipeline: health and version (no credentials needed), node joins
//! (join token), then authentication, discovery and OpenAPI, authorization, and the resource
//! handlers.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use skiff_core::registry::{Registry, Resource};
use skiff_core::status;
use skiff_store::Store;

use crate::auth::{self, TokenCache, User};
use crate::config::Config;
use crate::http::{self as h, Output, Response};
use crate::metrics::ApiMetrics;
use crate::objects::Objects;
use crate::request_info::{self, Query, RequestInfo};

/// Everything a request needs; shared by all connections.
pub struct Api {
    pub objects: Objects,
    pub registry: Registry,
    pub config: Config,
    pub metrics: ApiMetrics,
    pub tokens: TokenCache,
    /// Signs node certificates (`/skiff/v1/join-node`) and verifies agents.
    pub ca: skiff_store::tls::Ca,
    /// TLS for calling node agents (client certificate CN `skiff-apiserver`).
    pub node_tls: Arc<rustls::ClientConfig>,
    /// Signs and verifies ServiceAccount tokens.
    pub sa_key: Vec<u8>,
    /// Watch events decoded once and shared by every watch of this member.
    pub watch_events: Arc<crate::handlers::watch::decoded::Cache>,
}

/// Per-request context.
pub struct Ctx {
    pub user: User,
    pub info: RequestInfo,
    pub query: Query,
    pub headers: http::HeaderMap,
    pub output: Output,
    /// `x-skiff-fence-term`: writes are refused unless proposed in this term.
    pub fence: Option<u64>,
    pub dry_run: bool,
    pub field_manager: String,
    pub started: Instant,
}

impl Ctx {
    pub fn now(&self) -> k8s_openapi::jiff::Timestamp {
        k8s_openapi::jiff::Timestamp::now()
    }
}

/// RFC 3339 with seconds, as Kubernetes writes `metav1.Time`.
pub fn timestamp(t: k8s_openapi::jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub fn now_string() -> String {
    timestamp(k8s_openapi::jiff::Timestamp::now())
}

impl Api {
    pub fn store(&self) -> &Store {
        &self.objects.store
    }

    /// Handles one request; never fails (errors become Status responses).
    pub async fn handle(
        self: Arc<Self>,
        req: http::Request<Incoming>,
        peer_cert: Option<Arc<Vec<u8>>>,
    ) -> Response {
        let started = Instant::now();
        let query = Query::parse(req.uri().query());
        let info =
            request_info::parse(req.method().as_str(), req.uri().path(), query.flag("watch"));
        self.metrics.inflight.inc();
        let resp = match self
            .route(
                req,
                &info,
                query,
                peer_cert.as_deref().map(|v| v.as_slice()),
                started,
            )
            .await
        {
            Ok(r) => r,
            Err(e) => h::error(&e),
        };
        self.metrics.inflight.dec();
        self.metrics
            .observe(&info, resp.status(), started.elapsed());
        resp
    }

    async fn route(
        self: &Arc<Self>,
        req: http::Request<Incoming>,
        info: &RequestInfo,
        query: Query,
        peer_cert: Option<&[u8]>,
        started: Instant,
    ) -> Result<Response, status::Error> {
        let path = req.uri().path().to_string();
        match path.as_str() {
            "/healthz" | "/livez" | "/readyz" => {
                return Ok(crate::handlers::health::check(self, &path).await);
            }
            "/version" | "/version/" => return Ok(crate::handlers::discovery::version()),
            "/skiff/v1/join-node" if req.method() == Method::POST => {
                let headers = req.headers().clone();
                let body = read_body(req.into_body(), self.config.max_body_bytes).await?;
                return crate::join::join_node(self, &headers, &body).await;
            }
            _ => {}
        }
        let user = self.authenticate(peer_cert, req.headers()).await?;
        if !info.is_resource_request {
            return crate::handlers::discovery::route(self, &user, info, &path, req.headers())
                .await;
        }
        auth::authorize(&user, info)?;
        let resource = self.resource_for(info)?;
        let ctx = Ctx {
            output: h::negotiate(req.headers())?,
            fence: fence_term(req.headers())?,
            dry_run: dry_run(&query)?,
            field_manager: field_manager(&query, req.headers()),
            headers: req.headers().clone(),
            user,
            info: info.clone(),
            query,
            started,
        };
        crate::handlers::dispatch(self, &ctx, &resource, req).await
    }

    /// The registry entry a resource request names, or 404.
    fn resource_for(&self, info: &RequestInfo) -> Result<Resource, status::Error> {
        let resource = self
            .registry
            .get(&info.group, &info.version, &info.resource)
            .ok_or_else(|| {
                status::Error::not_found(&info.group, &info.resource, &info.name).with_message(
                    format!(
                        "the server could not find the requested resource ({} {})",
                        info.verb, info.path
                    ),
                )
            })?;
        if !info.subresource.is_empty() && resource.subresource(&info.subresource).is_none() {
            return Err(status::Error::not_found(
                &info.group,
                &format!("{}/{}", info.resource, info.subresource),
                &info.name,
            )
            .with_message(format!(
                "the server could not find the requested resource ({} {})",
                info.verb, info.path
            )));
        }
        if info.subresource.is_empty() && !resource.supports(&info.verb) {
            return Err(status::Error::method_not_allowed().with_message(format!(
                "{} does not support {}",
                resource.plural, info.verb
            )));
        }
        if resource.is_namespaced()
            && info.namespace.is_empty()
            && !matches!(info.verb.as_str(), "list" | "watch")
        {
            return Err(
                status::Error::not_found(&info.group, &info.resource, &info.name).with_message(
                    format!(
                        "{} is namespaced: use /namespaces/<namespace>/{}",
                        resource.plural, resource.plural
                    ),
                ),
            );
        }
        Ok(resource.clone())
    }

    async fn authenticate(
        &self,
        peer_cert: Option<&[u8]>,
        headers: &http::HeaderMap,
    ) -> Result<User, status::Error> {
        if let Some(token) = auth::bearer(headers) {
            if token.matches('.').count() == 2 && token.starts_with("ey") {
                let now = k8s_openapi::jiff::Timestamp::now().as_second();
                return crate::sa_token::verify(&self.sa_key, token, now)
                    .and_then(|claims| crate::sa_token::user_of(&claims))
                    .ok_or_else(unauthorized);
            }
            if let Some(cached) = self.tokens.get(token) {
                return cached.ok_or_else(unauthorized);
            }
            let found = self.objects.raw_get(&auth::token_key(token)).await?;
            let user = found
                .and_then(|kv| serde_json::from_slice::<User>(&kv.value).ok())
                .map(|mut u| {
                    if !u.groups.iter().any(|g| g == "system:authenticated") {
                        u.groups.push("system:authenticated".into());
                    }
                    u
                });
            self.tokens.put(token, user.clone());
            return user.ok_or_else(unauthorized);
        }
        match peer_cert {
            Some(der) => auth::from_certificate(der),
            None => Err(unauthorized()),
        }
    }
}

fn unauthorized() -> status::Error {
    status::Error::unauthorized("Unauthorized")
}

fn fence_term(headers: &http::HeaderMap) -> Result<Option<u64>, status::Error> {
    match headers.get("x-skiff-fence-term") {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(Some)
            .ok_or_else(|| status::Error::bad_request("x-skiff-fence-term must be a number")),
    }
}

fn dry_run(query: &Query) -> Result<bool, status::Error> {
    let values = query.all("dryRun");
    for v in &values {
        if *v != "All" {
            return Err(status::Error::bad_request(format!(
                "unsupported dryRun value {v:?}: the only supported value is All"
            )));
        }
    }
    Ok(!values.is_empty())
}

/// `fieldManager`, else the User-Agent's program name (as kube-apiserver does).
fn field_manager(query: &Query, headers: &http::HeaderMap) -> String {
    if let Some(m) = query.get("fieldManager").filter(|m| !m.is_empty()) {
        return m.chars().take(128).collect();
    }
    let ua = headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown");
    ua.split('/')
        .next()
        .unwrap_or("unknown")
        .chars()
        .take(128)
        .collect()
}

/// Reads a whole body, refusing more than `limit` bytes with 413. An oversized body is read to
/// its end (discarded, up to 64 MiB and 10 s) before answering, so the client, still sending,
/// receives the 413 instead of a reset connection.
pub async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, status::Error> {
    let mut body = body;
    let mut buf = bytes::BytesMut::new();
    let too_large = || {
        status::Error::request_entity_too_large(&format!(
            "the request body is larger than {limit} bytes"
        ))
    };
    loop {
        match body.frame().await {
            None => return Ok(buf.freeze()),
            Some(Err(e)) => {
                return Err(status::Error::bad_request(format!(
                    "reading the request body failed: {e}"
                )));
            }
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    if buf.len() + data.len() > limit {
                        let drain = async {
                            let mut seen = buf.len() + data.len();
                            while let Some(Ok(f)) = body.frame().await {
                                seen += f.data_ref().map(|d| d.len()).unwrap_or(0);
                                if seen > 64 << 20 {
                                    break;
                                }
                            }
                        };
                        let _ =
                            tokio::time::timeout(std::time::Duration::from_secs(10), drain).await;
                        return Err(too_large());
                    }
                    buf.extend_from_slice(&data);
                }
            }
        }
    }
}

/// A 201/200 response for an object in the negotiated representation.
pub fn object_response(
    api: &Api,
    ctx: &Ctx,
    resource: &Resource,
    code: StatusCode,
    object: &serde_json::Value,
) -> Response {
    let rendered = crate::output::object(api, ctx, resource, object);
    let ct = if ctx.output == Output::Table {
        h::TABLE_CT
    } else {
        h::JSON
    };
    h::respond(code, ct, serde_json::to_vec(&rendered).unwrap_or_default())
}
