//! HTTP plumbing: body and response types, JSON and `Status` responses, streaming bodies, and
//! content negotiation (what the client accepts, what it sent).
//!
//! Responses are always JSON (also when protobuf is offered: every client lists JSON too); a
//! Table or PartialObjectMetadata is produced when the Accept header asks for it.

#[cfg(test)]
mod tests;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use serde_json::Value;
use skiff_core::status;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

pub type Body = BoxBody<Bytes, std::io::Error>;
pub type Response = http::Response<Body>;

pub const JSON: &str = "application/json";
pub const TABLE_CT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

pub fn empty() -> Body {
    full(Bytes::new())
}

/// A body fed by a channel (watches, logs, proxied streams).
pub fn stream(rx: mpsc::Receiver<Bytes>) -> Body {
    let s = ReceiverStream::new(rx).map(|b| Ok::<_, std::io::Error>(Frame::data(b)));
    BodyExt::boxed(StreamBody::new(s))
}

pub fn respond(code: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response {
    let mut r = http::Response::new(full(body));
    *r.status_mut() = code;
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    r
}

pub fn json(code: StatusCode, value: &Value) -> Response {
    respond(code, JSON, serde_json::to_vec(value).unwrap_or_default())
}

pub fn error(e: &status::Error) -> Response {
    let code = StatusCode::from_u16(e.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = json(code, &e.to_json());
    if let Some(d) = &e.details
        && let Some(secs) = d.retry_after_seconds
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        r.headers_mut().insert(http::header::RETRY_AFTER, v);
    }
    r
}

/// What representation the client asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    Json,
    Table,
    /// `PartialObjectMetadata` for a single object, `PartialObjectMetadataList` for a list.
    Metadata,
}

/// Chooses the representation from the Accept header (first acceptable media type wins).
pub fn negotiate(headers: &HeaderMap) -> Result<Output, status::Error> {
    let accept = match headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
    {
        Some(a) if !a.trim().is_empty() => a,
        _ => return Ok(Output::Json),
    };
    let mut saw_any = false;
    for media in accept.split(',') {
        let mut parts = media.split(';').map(str::trim);
        let mime = parts.next().unwrap_or("").to_ascii_lowercase();
        let params: Vec<(String, String)> = parts
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| {
                (
                    k.trim().to_ascii_lowercase(),
                    v.trim().trim_matches('"').to_string(),
                )
            })
            .collect();
        let param = |k: &str| {
            params
                .iter()
                .find(|(pk, _)| pk == k)
                .map(|(_, v)| v.as_str())
        };
        saw_any = true;
        match mime.as_str() {
            "application/json" | "*/*" | "application/*" => match param("as") {
                None => return Ok(Output::Json),
                Some("Table") if param("g") == Some("meta.k8s.io") => return Ok(Output::Table),
                Some("PartialObjectMetadata") | Some("PartialObjectMetadataList")
                    if param("g") == Some("meta.k8s.io") =>
                {
                    return Ok(Output::Metadata);
                }
                // apidiscovery etc. are handled by the discovery endpoints; skip here.
                Some(_) => continue,
            },
            _ => continue,
        }
    }
    if saw_any {
        Err(status::Error::not_acceptable(&[JSON, TABLE_CT]))
    } else {
        Ok(Output::Json)
    }
}

/// How a request body is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyType {
    Json,
    Yaml,
    Protobuf,
    MergePatch,
    StrategicMergePatch,
    JsonPatch,
    ApplyPatch,
}

/// The body type from Content-Type; a missing Content-Type is JSON (the Python client sends none).
pub fn body_type(headers: &HeaderMap) -> Result<BodyType, status::Error> {
    let ct = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    Ok(match ct.as_str() {
        "" | "application/json" | "*/*" => BodyType::Json,
        "application/yaml" | "application/x-yaml" | "text/yaml" => BodyType::Yaml,
        "application/vnd.kubernetes.protobuf" => BodyType::Protobuf,
        "application/merge-patch+json" => BodyType::MergePatch,
        "application/strategic-merge-patch+json" => BodyType::StrategicMergePatch,
        "application/json-patch+json" => BodyType::JsonPatch,
        "application/apply-patch+yaml" | "application/apply-patch+json" => BodyType::ApplyPatch,
        other => {
            return Err(status::Error::unsupported_media_type(
                other,
                &[
                    "application/json",
                    "application/yaml",
                    "application/vnd.kubernetes.protobuf",
                ],
            ));
        }
    })
}
