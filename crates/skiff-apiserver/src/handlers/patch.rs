//! PATCH of an object or its status: JSON merge patch, JSON patch, strategic merge patch and
//! server-side apply (which also creates a missing object).
//!
//! The patch is applied to the latest object and written with that object's resourceVersion
//! as precondition; on a conflict it is re-applied to the newer object (up to a few times),
//! unless the patch itself names a resourceVersion, which then must match.

use bytes::Bytes;
use http::StatusCode;
use serde_json::Value;
use skiff_core::registry::Resource;
use skiff_core::status;

use crate::admission::{apply_error, meta_mut};
use crate::api::{Api, Ctx, now_string, object_response};
use crate::body;
use crate::http::{self as h, BodyType, Response};
use crate::objects::Freshness;

use super::create::create_object;
use super::update::{commit_update, resource_version};

fn parse_json(body: &[u8]) -> Result<Value, status::Error> {
    serde_json::from_slice(body)
        .map_err(|e| status::Error::bad_request(format!("the patch is not valid JSON: {e}")))
}

fn patch_error(code: u16, message: String) -> status::Error {
    match code {
        409 => status::Error::conflict("", "", "", &message).with_message(message),
        413 => status::Error::request_entity_too_large(&message),
        422 => status::Error::invalid("", "", "", &[]).with_message(message),
        _ => status::Error::bad_request(message),
    }
}

pub async fn patch(
    api: &Api,
    ctx: &Ctx,
    resource: &Resource,
    body: &Bytes,
) -> Result<Response, status::Error> {
    let body_type = h::body_type(&ctx.headers)?;
    let mut warnings = Vec::new();
    let applied_config = match body_type {
        BodyType::MergePatch | BodyType::StrategicMergePatch | BodyType::JsonPatch => None,
        BodyType::ApplyPatch => {
            if ctx.query.get("fieldManager").is_none_or(str::is_empty) {
                return Err(status::Error::bad_request(
                    "PATCH requests of type apply must have a fieldManager (the fieldManager query parameter)",
                ));
            }
            let decoded =
                body::decode(ctx, resource, &resource.kind, &resource.api_version(), body)?;
            warnings = decoded.warnings;
            let mut config = decoded.object;
            body::check_type(&mut config, &resource.kind, &resource.api_version())?;
            Some(config)
        }
        _ => {
            return Err(status::Error::unsupported_media_type(
                "",
                &[
                    "application/json-patch+json",
                    "application/merge-patch+json",
                    "application/strategic-merge-patch+json",
                    "application/apply-patch+yaml",
                ],
            ));
        }
    };
    let force = ctx.query.flag("force");
    if force && applied_config.is_none() {
        return Err(status::Error::bad_request(
            "force is only allowed for apply patches",
        ));
    }
    for attempt in 0..5 {
        let old = api
            .objects
            .get(
                resource,
                &ctx.info.namespace,
                &ctx.info.name,
                Freshness::Latest,
            )
            .await?;
        let Some(old) = old else {
            if let Some(config) = &applied_config {
                if !ctx.info.subresource.is_empty() {
                    return Err(status::Error::not_found(
                        &resource.group,
                        &resource.plural,
                        &ctx.info.name,
                    ));
                }
                let created = apply_create(api, ctx, resource, config, force).await?;
                let resp = object_response(api, ctx, resource, StatusCode::CREATED, &created);
                return Ok(body::with_warnings(resp, &warnings));
            }
            return Err(status::Error::not_found(
                &resource.group,
                &resource.plural,
                &ctx.info.name,
            ));
        };
        let (patched, explicit_rv) = match (body_type, &applied_config) {
            (BodyType::MergePatch, _) => {
                let p = parse_json(body)?;
                let explicit = p.pointer("/metadata/resourceVersion").is_some();
                (
                    skiff_core::patch::merge::apply(&old, &p)
                        .map_err(|e| patch_error(400, e.to_string()))?,
                    explicit,
                )
            }
            (BodyType::JsonPatch, _) => {
                let p = parse_json(body)?;
                let patched = skiff_core::patch::json::apply(&old, &p)
                    .map_err(|e| patch_error(e.code(), e.to_string()))?;
                let explicit = patched.pointer("/metadata/resourceVersion")
                    != old.pointer("/metadata/resourceVersion");
                (patched, explicit)
            }
            (BodyType::StrategicMergePatch, _) => {
                let p = parse_json(body)?;
                let explicit = p.pointer("/metadata/resourceVersion").is_some();
                let schema = skiff_core::patch::schema::for_kind(&resource.group, &resource.kind);
                (
                    skiff_core::patch::strategic::apply(&old, &p, schema)
                        .map_err(|e| patch_error(e.code(), e.to_string()))?,
                    explicit,
                )
            }
            (_, Some(config)) => {
                let explicit = config.pointer("/metadata/resourceVersion").is_some();
                (
                    server_side_apply(ctx, resource, Some(&old), config, force)?,
                    explicit,
                )
            }
            _ => return Err(status::Error::bad_request("unsupported patch")),
        };
        let mut patched = patched;
        body::check_type(&mut patched, &resource.kind, &resource.api_version())?;
        meta_mut(&mut patched).insert("name".into(), Value::String(ctx.info.name.clone()));
        let current = resource_version(&old)?.unwrap_or(0);
        let expected = if explicit_rv {
            resource_version(&patched)?.unwrap_or(current)
        } else {
            current
        };
        if expected != current {
            return Err(status::Error::conflict_modified(
                &resource.group,
                &resource.plural,
                &ctx.info.name,
            ));
        }
        match commit_update(
            api,
            ctx,
            resource,
            &old,
            patched,
            expected,
            applied_config.is_none(),
        )
        .await
        {
            Ok(written) => {
                let resp = object_response(api, ctx, resource, StatusCode::OK, &written);
                return Ok(body::with_warnings(resp, &warnings));
            }
            Err(e)
                if e.code() == 409
                    && !explicit_rv
                    && attempt < 4
                    && e.message.contains("has been modified") =>
            {
                continue;
            }
            Err(e) => return Err(e),
        }
    }
    Err(status::Error::conflict_modified(
        &resource.group,
        &resource.plural,
        &ctx.info.name,
    ))
}

fn server_side_apply(
    ctx: &Ctx,
    resource: &Resource,
    live: Option<&Value>,
    config: &Value,
    force: bool,
) -> Result<Value, status::Error> {
    let time = now_string();
    let subresource = (!ctx.info.subresource.is_empty()).then_some(ctx.info.subresource.as_str());
    let request = skiff_core::apply::Request {
        manager: &ctx.field_manager,
        force,
        time: &time,
        subresource,
        schema: skiff_core::patch::schema::for_kind(&resource.group, &resource.kind),
    };
    skiff_core::apply::apply(live, config, &request).map_err(apply_error)
}

async fn apply_create(
    api: &Api,
    ctx: &Ctx,
    resource: &Resource,
    config: &Value,
    force: bool,
) -> Result<Value, status::Error> {
    let mut object = server_side_apply(ctx, resource, None, config, force)?;
    meta_mut(&mut object).insert("name".into(), Value::String(ctx.info.name.clone()));
    create_object(api, ctx, resource, object, false).await
}
