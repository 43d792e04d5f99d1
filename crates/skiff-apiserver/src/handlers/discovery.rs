//! Discovery (legacy and aggregated), `/version`, OpenAPI v3 (minimal documents kubectl needs to
//! send `fieldValidation`), and 404 for OpenAPI v2.

use http::StatusCode;
use serde_json::json;
use skiff_core::registry::discovery::{AGGREGATED_CONTENT_TYPE, DiscoveryRoot};
use skiff_core::status;

use crate::api::Api;
use crate::auth::User;
use crate::http::{self as h, Response};
use crate::request_info::RequestInfo;

/// The Kubernetes version Skiff serves (the kubectl dispatcher picks its client from `minor`).
pub fn version() -> Response {
    h::json(
        StatusCode::OK,
        &json!({
            "major": "1",
            "minor": "33",
            "gitVersion": format!("v1.33.0-skiff.{}", env!("CARGO_PKG_VERSION")),
            "gitCommit": "skiff",
            "gitTreeState": "clean",
            "buildDate": "2026-01-01T00:00:00Z",
            "goVersion": "rust",
            "compiler": "rustc",
            "platform": format!("linux/{}", std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64")),
        }),
    )
}

fn wants_aggregated(headers: &http::HeaderMap) -> Option<&'static str> {
    let accept = headers.get(http::header::ACCEPT)?.to_str().ok()?;
    for media in accept.split(',') {
        let m = media.replace(' ', "");
        if m.contains("as=APIGroupDiscoveryList") && m.contains("g=apidiscovery.k8s.io") {
            if m.contains("v=v2beta1") {
                return Some("v2beta1");
            }
            if m.contains("v=v2") {
                return Some("v2");
            }
        }
        if m.starts_with("application/json") && !m.contains("as=") {
            return None;
        }
    }
    None
}

fn aggregated(api: &Api, root: DiscoveryRoot, version: &str) -> Response {
    let mut body = api.registry.aggregated_discovery(root);
    let content_type = if version == "v2beta1" {
        body["apiVersion"] = json!("apidiscovery.k8s.io/v2beta1");
        AGGREGATED_CONTENT_TYPE.replace("v=v2", "v=v2beta1")
    } else {
        AGGREGATED_CONTENT_TYPE.to_string()
    };
    h::respond(
        StatusCode::OK,
        &content_type,
        serde_json::to_vec(&body).unwrap_or_default(),
    )
}

pub async fn route(
    api: &Api,
    user: &User,
    info: &RequestInfo,
    path: &str,
    headers: &http::HeaderMap,
) -> Result<Response, status::Error> {
    if info.verb != "get" && info.verb != "head" {
        return Err(status::Error::method_not_allowed());
    }
    let parts: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    match parts.as_slice() {
        ["api"] => Ok(match wants_aggregated(headers) {
            Some(v) => aggregated(api, DiscoveryRoot::Api, v),
            None => h::json(
                StatusCode::OK,
                &api.registry.api_versions(&api.config.advertise_url),
            ),
        }),
        ["apis"] => Ok(match wants_aggregated(headers) {
            Some(v) => aggregated(api, DiscoveryRoot::Apis, v),
            None => h::json(StatusCode::OK, &api.registry.api_group_list()),
        }),
        ["api", version] => api
            .registry
            .api_resource_list("", version)
            .map(|b| h::json(StatusCode::OK, &b))
            .ok_or_else(status::Error::path_not_found),
        ["apis", group] => api
            .registry
            .api_group(group)
            .map(|b| h::json(StatusCode::OK, &b))
            .ok_or_else(status::Error::path_not_found),
        ["apis", group, version] => api
            .registry
            .api_resource_list(group, version)
            .map(|b| h::json(StatusCode::OK, &b))
            .ok_or_else(status::Error::path_not_found),
        ["openapi", "v3"] => Ok(h::json(StatusCode::OK, &api.registry.openapi_v3_index())),
        ["openapi", "v3", rest @ ..] => {
            let doc_path = rest.join("/");
            api.registry
                .openapi_v3_document(&doc_path)
                .map(|b| h::json(StatusCode::OK, &b))
                .ok_or_else(status::Error::path_not_found)
        }
        ["metrics"] => {
            if !user.in_group(crate::auth::MASTERS) {
                return Err(crate::auth::forbidden(user, info));
            }
            Ok(h::respond(
                StatusCode::OK,
                "text/plain; version=0.0.4",
                api.metrics.render(),
            ))
        }
        _ => Err(status::Error::path_not_found()),
    }
}
