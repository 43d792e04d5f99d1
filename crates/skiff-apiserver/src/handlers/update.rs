//! PUT of an object or its status, and the update path every modifying handler shares.

use bytes::Bytes;
use http::StatusCode;
use serde_json::Value;
use skiff_core::registry::Resource;
use skiff_core::status;

use crate::admission::{self, meta_mut, name_of};
use crate::api::{Api, Ctx, object_response};
use crate::body;
use crate::http::Response;
use crate::objects::{Freshness, Objects};

/// The resourceVersion an object carries, if any.
pub fn resource_version(object: &Value) -> Result<Option<u64>, status::Error> {
    match object
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        None => Ok(None),
        Some(s) => s.parse::<u64>().map(Some).map_err(|_| {
            status::Error::bad_request(format!(
                "invalid resourceVersion {s:?}: use the value from a previous response"
            ))
        }),
    }
}

pub async fn get_existing(
    api: &Api,
    ctx: &Ctx,
    resource: &Resource,
) -> Result<Value, status::Error> {
    api.objects
        .get(
            resource,
            &ctx.info.namespace,
            &ctx.info.name,
            Freshness::Latest,
        )
        .await?
        .ok_or_else(|| status::Error::not_found(&resource.group, &resource.plural, &ctx.info.name))
}

pub async fn put(
    api: &Api,
    ctx: &Ctx,
    resource: &Resource,
    body: &Bytes,
) -> Result<Response, status::Error> {
    let decoded = body::decode(ctx, resource, &resource.kind, &resource.api_version(), body)?;
    let mut new = decoded.object;
    body::check_type(&mut new, &resource.kind, &resource.api_version())?;
    let body_name = name_of(&new).to_string();
    if !body_name.is_empty() && body_name != ctx.info.name {
        return Err(status::Error::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({})",
            ctx.info.name
        )));
    }
    if let Some(ns) = new.pointer("/metadata/namespace").and_then(Value::as_str)
        && resource.is_namespaced()
        && ns != ctx.info.namespace
    {
        return Err(status::Error::bad_request(format!(
            "the namespace of the object ({ns}) does not match the namespace on the request ({})",
            ctx.info.namespace
        )));
    }
    meta_mut(&mut new).insert("name".into(), Value::String(ctx.info.name.clone()));
    let old = get_existing(api, ctx, resource).await?;
    let current = resource_version(&old)?.unwrap_or(0);
    let expected = resource_version(&new)?.unwrap_or(current);
    if expected != current {
        return Err(status::Error::conflict_modified(
            &resource.group,
            &resource.plural,
            &ctx.info.name,
        ));
    }
    let written = commit_update(api, ctx, resource, &old, new, expected, true).await?;
    let resp = object_response(api, ctx, resource, StatusCode::OK, &written);
    Ok(body::with_warnings(resp, &decoded.warnings))
}

fn without_bookkeeping(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
        meta.remove("resourceVersion");
    }
    v
}

/// Whether an object being deleted has no finalizers left (and may go).
fn finalized(object: &Value) -> bool {
    let deleting = object.pointer("/metadata/deletionTimestamp").is_some();
    let metadata_finalizers = object
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty());
    let namespace_finalizers = object.get("kind").and_then(Value::as_str) == Some("Namespace")
        && object
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
    deleting && !metadata_finalizers && !namespace_finalizers
}

/// Validates and writes `new` over `old` if `old` is still at revision `expected`.
/// `record_fields`: false when managedFields were already computed (server-side apply).
pub async fn commit_update(
    api: &Api,
    ctx: &Ctx,
    resource: &Resource,
    old: &Value,
    mut new: Value,
    expected: u64,
    record_fields: bool,
) -> Result<Value, status::Error> {
    let subresource = ctx.info.subresource.as_str();
    prepare(ctx, resource, old, &mut new, subresource, record_fields)?;
    let mut allocations = Vec::new();
    let mut released = Vec::new();
    if resource.group.is_empty() && resource.kind == "Service" && subresource.is_empty() {
        allocations = crate::allocator::allocate_service(api, &mut new, Some(old))?;
        released = crate::allocator::released_keys(old, &new);
    }
    if without_bookkeeping(&new) == without_bookkeeping(old) && allocations.is_empty() {
        // A no-op: nothing to write (kubectl apply "unchanged", idempotent controllers).
        return Ok(old.clone());
    }
    if ctx.dry_run {
        return Ok(new);
    }
    let name = name_of(old).to_string();
    let namespace = old
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let key = Objects::key(resource, &namespace, &name);
    if finalized(&new) {
        let mut holds = crate::allocator::held_keys(old);
        if !(resource.group.is_empty() && resource.kind == "Service") {
            holds.clear();
        }
        return match api.objects.delete(&key, expected, holds, ctx.fence).await? {
            Some(revision) => {
                meta_mut(&mut new).insert(
                    "resourceVersion".into(),
                    Value::String(revision.to_string()),
                );
                Ok(new)
            }
            None => Err(status::Error::conflict_modified(
                &resource.group,
                &resource.plural,
                &name,
            )),
        };
    }
    let bytes = api.objects.encode(resource, &new);
    match api
        .objects
        .update(&key, bytes, expected, allocations, released, ctx.fence)
        .await?
    {
        Some(revision) => {
            meta_mut(&mut new).insert(
                "resourceVersion".into(),
                Value::String(revision.to_string()),
            );
            Ok(new)
        }
        None => {
            if api
                .objects
                .get(resource, &namespace, &name, Freshness::Latest)
                .await?
                .is_none()
            {
                Err(status::Error::not_found(
                    &resource.group,
                    &resource.plural,
                    &name,
                ))
            } else {
                Err(status::Error::conflict_modified(
                    &resource.group,
                    &resource.plural,
                    &name,
                ))
            }
        }
    }
}

fn prepare(
    ctx: &Ctx,
    resource: &Resource,
    old: &Value,
    new: &mut Value,
    subresource: &str,
    record_fields: bool,
) -> Result<(), status::Error> {
    if record_fields {
        admission::prepare_update(ctx, resource, old, new, subresource)
    } else {
        // Server-side apply computed managedFields; keep them through the shared steps.
        let managed = new.pointer("/metadata/managedFields").cloned();
        admission::prepare_update(ctx, resource, old, new, subresource)?;
        if let Some(m) = managed {
            meta_mut(new).insert("managedFields".into(), m);
        }
        Ok(())
    }
}
