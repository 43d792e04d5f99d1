//! Decoding request bodies into objects: JSON and YAML with `fieldValidation` (Strict fails on
//! unknown or duplicate fields, Warn reports them in `Warning` headers, Ignore drops them), and
//! Kubernetes protobuf (`k8s\0` + runtime.Unknown) from typed clients such as kubectl 1.32+.

use serde_json::Value;
use skiff_core::registry::Resource;
use skiff_core::status;
use skiff_core::strict::{self, FieldValidation, Format};

use crate::api::Ctx;
use crate::http::{self as h, BodyType};

/// A decoded object and the warnings to send back.
pub struct Decoded {
    pub object: Value,
    pub warnings: Vec<String>,
}

pub fn field_validation(ctx: &Ctx) -> Result<FieldValidation, status::Error> {
    match ctx.query.get("fieldValidation").filter(|v| !v.is_empty()) {
        None => Ok(FieldValidation::Warn),
        Some(v) => FieldValidation::parse(v).map_err(|e| e.to_status()),
    }
}

/// Decodes an object body of `kind` (the resource's kind unless a subresource says otherwise).
pub fn decode(
    ctx: &Ctx,
    _resource: &Resource,
    kind: &str,
    api_version: &str,
    body: &[u8],
) -> Result<Decoded, status::Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(status::Error::bad_request(
            "the request body is empty; send the object as JSON, YAML or protobuf",
        ));
    }
    let (group, version) = skiff_core::registry::split_api_version(api_version);
    let body_type = h::body_type(&ctx.headers)?;
    match body_type {
        BodyType::Json | BodyType::Yaml | BodyType::ApplyPatch => {
            let first = body.iter().find(|b| !b.is_ascii_whitespace());
            let format = if body_type == BodyType::Json || first == Some(&b'{') {
                Format::Json
            } else {
                Format::Yaml
            };
            let checked = strict::check(body, format, group, version, kind, field_validation(ctx)?)
                .map_err(|e| e.to_status())?;
            Ok(Decoded {
                object: checked.value,
                warnings: checked.warnings,
            })
        }
        BodyType::Protobuf => {
            let object = skiff_core::protobuf::decode(body, api_version, kind).map_err(|e| {
                let code = e.code();
                if code == 415 {
                    status::Error::unsupported_media_type(
                        "application/vnd.kubernetes.protobuf",
                        &["application/json"],
                    )
                    .with_message(e.to_string())
                } else {
                    status::Error::bad_request(e.to_string())
                }
            })?;
            Ok(Decoded {
                object,
                warnings: Vec::new(),
            })
        }
        other => Err(status::Error::unsupported_media_type(
            &format!("{other:?}"),
            &[
                "application/json",
                "application/yaml",
                "application/vnd.kubernetes.protobuf",
            ],
        )),
    }
}

/// Checks (and fills in) `apiVersion` and `kind` of a decoded object.
pub fn check_type(object: &mut Value, kind: &str, api_version: &str) -> Result<(), status::Error> {
    let Some(map) = object.as_object_mut() else {
        return Err(status::Error::bad_request("the body is not a JSON object"));
    };
    match map.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("kind".into(), Value::String(kind.into()));
        }
        Some(k) if k == kind => {}
        Some(k) => {
            return Err(status::Error::bad_request(format!(
                "the object has kind {k:?}, but this endpoint takes {kind:?}"
            )));
        }
    }
    match map.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("apiVersion".into(), Value::String(api_version.into()));
        }
        Some(v) if v == api_version => {}
        Some(v) => {
            return Err(status::Error::bad_request(format!(
                "the object has apiVersion {v:?}, but this endpoint serves {api_version:?}"
            )));
        }
    }
    if !map.get("metadata").is_some_and(Value::is_object) {
        if map.get("metadata").is_some_and(|m| !m.is_null()) {
            return Err(status::Error::bad_request("metadata must be an object"));
        }
        map.insert("metadata".into(), serde_json::json!({}));
    }
    Ok(())
}

/// `Warning` header values (`299 - "text"`).
pub fn warning_headers(warnings: &[String]) -> Vec<http::HeaderValue> {
    warnings
        .iter()
        .filter_map(|w| {
            http::HeaderValue::from_str(&format!("299 - \"{}\"", w.replace('"', "'"))).ok()
        })
        .collect()
}

pub fn with_warnings(mut resp: h::Response, warnings: &[String]) -> h::Response {
    for v in warning_headers(warnings) {
        resp.headers_mut().append(http::header::WARNING, v);
    }
    resp
}
