//! `pods/log`, `pods/exec`, `pods/attach` and `pods/portforward`: forwarded to the agent of the
//! pod's node over mutual TLS (the API server's client certificate CN is `skiff-apiserver`).
//!
//! The request is passed on as is (method, query, upgrade headers); after a `101 Switching
//! Protocols` the two connections are spliced byte for byte, so the streaming protocols
//! (WebSocket channels, SPDY over WebSocket) live entirely in the agent.

use std::net::IpAddr;
use std::sync::Arc;

use http::{HeaderValue, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use skiff_core::registry::Resource;
use skiff_core::status;

use crate::api::{Api, Ctx};
use crate::http::Response;
use crate::objects::Freshness;

/// The container a log/exec/attach request is for (the one named, the default one, or the only one).
fn container(ctx: &Ctx, pod: &Value) -> Result<String, status::Error> {
    if let Some(c) = ctx.query.get("container").filter(|c| !c.is_empty()) {
        return Ok(c.to_string());
    }
    if let Some(c) = pod
        .pointer("/metadata/annotations/kubectl.kubernetes.io~1default-container")
        .and_then(Value::as_str)
    {
        return Ok(c.to_string());
    }
    let names: Vec<&str> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c.get("name").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    match names.as_slice() {
        [only] => Ok(only.to_string()),
        _ => Err(status::Error::bad_request(format!(
            "a container name must be specified for pod {}, choose one of: [{}]",
            ctx.info.name,
            names.join(" ")
        ))),
    }
}

/// The address of a node's agent: its InternalIP (else first address) and kubelet port.
async fn node_endpoint(api: &Api, node: &str) -> Result<(IpAddr, u16), status::Error> {
    let nodes = api
        .registry
        .get("", "v1", "nodes")
        .ok_or_else(|| status::Error::internal("no nodes resource"))?;
    let object = api
        .objects
        .get(nodes, "", node, Freshness::Any)
        .await?
        .ok_or_else(|| status::Error::not_found("", "nodes", node))?;
    let addresses = object
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let pick = |kind: &str| {
        addresses
            .iter()
            .find(|a| a.get("type").and_then(Value::as_str) == Some(kind))
            .and_then(|a| a.get("address"))
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<IpAddr>().ok())
    };
    let ip = pick("InternalIP")
        .or_else(|| pick("ExternalIP"))
        .ok_or_else(|| {
            status::Error::service_unavailable(format!(
                "node {node} reports no IP address for its agent"
            ))
        })?;
    let port = object
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .filter(|p| *p > 0 && *p < 65536)
        .map(|p| p as u16)
        .unwrap_or(api.config.node_api_port);
    Ok((ip, port))
}

pub async fn handle(
    api: &Api,
    ctx: &Ctx,
    resource: &Resource,
    mut req: http::Request<Incoming>,
) -> Result<Response, status::Error> {
    let pod = api
        .objects
        .get(
            resource,
            &ctx.info.namespace,
            &ctx.info.name,
            Freshness::Latest,
        )
        .await?
        .ok_or_else(|| status::Error::not_found("", "pods", &ctx.info.name))?;
    let node = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            status::Error::bad_request(format!(
                "pod {} does not have a host assigned",
                ctx.info.name
            ))
        })?
        .to_string();
    let (ns, name) = (&ctx.info.namespace, &ctx.info.name);
    let query = req
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let path = match ctx.info.subresource.as_str() {
        "log" => format!(
            "/containerLogs/{ns}/{name}/{}{query}",
            container(ctx, &pod)?
        ),
        "exec" => format!("/exec/{ns}/{name}/{}{query}", container(ctx, &pod)?),
        "attach" => format!("/attach/{ns}/{name}/{}{query}", container(ctx, &pod)?),
        "portforward" => format!("/portForward/{ns}/{name}{query}"),
        other => {
            return Err(status::Error::method_not_allowed()
                .with_message(format!("pods/{other} is not supported")));
        }
    };
    let (ip, port) = node_endpoint(api, &node).await?;
    let unavailable = |why: String| {
        status::Error::service_unavailable(format!(
            "cannot reach the agent of node {node} at {ip}:{port}: {why}"
        ))
    };
    let tcp = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        tokio::net::TcpStream::connect((ip, port)),
    )
    .await
    .map_err(|_| unavailable("timed out".into()))?
    .map_err(|e| unavailable(e.to_string()))?;
    let _ = tcp.set_nodelay(true);
    let connector = tokio_rustls::TlsConnector::from(Arc::clone(&api.node_tls));
    let server_name = rustls::pki_types::ServerName::IpAddress(ip.into());
    let tls = connector
        .connect(server_name, tcp)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!("node API connection ended: {e}");
        }
    });
    let mut forward = http::Request::builder()
        .method(req.method().clone())
        .uri(path);
    for (k, v) in req.headers() {
        if k == http::header::AUTHORIZATION || k == http::header::HOST || k == "x-skiff-fence-term"
        {
            continue;
        }
        forward = forward.header(k, v);
    }
    let forward = forward
        .header(http::header::HOST, format!("{ip}:{port}"))
        .header(
            "x-remote-user",
            HeaderValue::from_str(&ctx.user.name).unwrap_or(HeaderValue::from_static("unknown")),
        )
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| status::Error::internal(&e.to_string()))?;
    let node_resp = sender
        .send_request(forward)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    if node_resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let client_upgrade = hyper::upgrade::on(&mut req);
        let mut response = http::Response::builder().status(StatusCode::SWITCHING_PROTOCOLS);
        for (k, v) in node_resp.headers() {
            response = response.header(k, v);
        }
        let node_upgrade = hyper::upgrade::on(node_resp);
        tokio::spawn(async move {
            match (client_upgrade.await, node_upgrade.await) {
                (Ok(client), Ok(node)) => {
                    let mut client = TokioIo::new(client);
                    let mut node = TokioIo::new(node);
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut node).await;
                }
                (c, n) => {
                    tracing::debug!("upgrade failed: client {:?} node {:?}", c.err(), n.err())
                }
            }
        });
        return response
            .body(crate::http::empty())
            .map_err(|e| status::Error::internal(&e.to_string()));
    }
    let (parts, body) = node_resp.into_parts();
    let body = body.map_err(std::io::Error::other).boxed();
    Ok(http::Response::from_parts(parts, body))
}
