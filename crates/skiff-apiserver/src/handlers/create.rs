//! POST to a collection: create an object.

use bytes::Bytes;
use http::StatusCode;
use serde_json::Value;
use skiff_core::registry::Resource;
use skiff_core::{names, status};

use crate::admission::{self, meta_mut, name_of};
use crate::api::{Api, Ctx, object_response};
use crate::body;
use crate::http::Response;
use crate::objects::{Freshness, Objects};

/// Checks that the namespace exists and is not being deleted.
pub async fn check_namespace(
    api: &Api,
    resource: &Resource,
    namespace: &str,
) -> Result<(), status::Error> {
    if !resource.is_namespaced() {
        return Ok(());
    }
    let Some(ns_res) = api.registry.get("", "v1", "namespaces") else {
        return Ok(());
    };
    match api
        .objects
        .get(ns_res, "", namespace, Freshness::Any)
        .await?
    {
        None => Err(status::Error::not_found("", "namespaces", namespace)),
        Some(ns)
            if ns.pointer("/metadata/deletionTimestamp").is_some()
                || ns.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating") =>
        {
            Err(status::Error::forbidden(
                &resource.group,
                &resource.plural,
                "",
                &format!(
                    "unable to create new content in namespace {namespace} because it is being terminated"
                ),
            ))
        }
        Some(_) => Ok(()),
    }
}

pub async fn create(
    api: &Api,
    ctx: &Ctx,
    resource: &Resource,
    body: &Bytes,
) -> Result<Response, status::Error> {
    let decoded = body::decode(ctx, resource, &resource.kind, &resource.api_version(), body)?;
    let mut object = decoded.object;
    body::check_type(&mut object, &resource.kind, &resource.api_version())?;
    let written = create_object(api, ctx, resource, object, true).await?;
    let resp = object_response(api, ctx, resource, StatusCode::CREATED, &written);
    Ok(body::with_warnings(resp, &decoded.warnings))
}

/// The create path shared by POST and server-side apply of a missing object.
/// `record_fields`: false when managedFields are already set (server-side apply).
pub async fn create_object(
    api: &Api,
    ctx: &Ctx,
    resource: &Resource,
    mut object: Value,
    record_fields: bool,
) -> Result<Value, status::Error> {
    let body_ns = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .map(str::to_string);
    let namespace = names::resolve_namespace(
        resource.is_namespaced(),
        Some(ctx.info.namespace.as_str()),
        body_ns.as_deref(),
    )
    .map_err(|e| status::Error::bad_request(e.to_string()))?;
    if name_of(&object).is_empty() {
        let base = object
            .pointer("/metadata/generateName")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if base.is_empty() {
            let err = skiff_core::field::Error::required(
                &skiff_core::field::Path::new("metadata.name"),
                "name or generateName is required",
            );
            return Err(status::Error::invalid(
                &resource.group,
                &resource.kind,
                "",
                &[err],
            ));
        }
        meta_mut(&mut object).insert(
            "name".into(),
            Value::String(names::generate_name(&base, &random_suffix())),
        );
    }
    check_namespace(api, resource, &namespace).await?;
    let original_spec = object.get("spec").cloned();
    let mut allocations =
        admission::prepare_create(api, ctx, resource, &namespace, &mut object, record_fields)
            .await?;
    if ctx.dry_run {
        return Ok(object);
    }
    let name = name_of(&object).to_string();
    let key = Objects::key(resource, &namespace, &name);
    let chose_automatically = allocations_were_automatic(original_spec.as_ref(), &object);
    for attempt in 0..8 {
        let bytes = api.objects.encode(resource, &object);
        if let Some(revision) = api
            .objects
            .create(&key, bytes, allocations.clone(), ctx.fence)
            .await?
        {
            meta_mut(&mut object).insert(
                "resourceVersion".into(),
                Value::String(revision.to_string()),
            );
            return Ok(object);
        }
        // Which compare failed: the object, or an allocation?
        if api
            .objects
            .get(resource, &namespace, &name, Freshness::Latest)
            .await?
            .is_some()
        {
            return Err(status::Error::already_exists(
                &resource.group,
                &resource.plural,
                &name,
            ));
        }
        if !chose_automatically || attempt == 7 {
            return Err(status::Error::invalid(
                &resource.group,
                &resource.kind,
                &name,
                &[skiff_core::field::Error::invalid(
                    &skiff_core::field::Path::new("spec.clusterIPs"),
                    object
                        .pointer("/spec/clusterIP")
                        .cloned()
                        .unwrap_or(Value::Null),
                    "provided IP or node port is already allocated",
                )],
            ));
        }
        // Choose again: restore what the client asked for, re-pick the rest.
        if let Some(spec) = &original_spec {
            restore_requested(spec, &mut object);
        }
        allocations = crate::allocator::allocate_service(api, &mut object, None)?;
    }
    Err(status::Error::internal("allocation kept clashing"))
}

/// Whether the ClusterIP or a node port was chosen by the server (so a clash can be retried).
fn allocations_were_automatic(original_spec: Option<&Value>, object: &Value) -> bool {
    let Some(spec) = original_spec else {
        return false;
    };
    let ip_requested = spec
        .get("clusterIP")
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty());
    let needs_ports = matches!(
        object.pointer("/spec/type").and_then(Value::as_str),
        Some("NodePort") | Some("LoadBalancer")
    );
    let all_ports_requested = spec
        .get("ports")
        .and_then(Value::as_array)
        .is_none_or(|ps| {
            ps.iter().all(|p| {
                p.get("nodePort")
                    .and_then(Value::as_i64)
                    .is_some_and(|n| n != 0)
            })
        });
    !ip_requested || (needs_ports && !all_ports_requested)
}

/// Puts back the client's own clusterIP and node ports (or their absence).
fn restore_requested(original_spec: &Value, object: &mut Value) {
    let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    for field in ["clusterIP", "clusterIPs"] {
        match original_spec.get(field) {
            Some(v) => spec.insert(field.into(), v.clone()),
            None => spec.remove(field),
        };
    }
    let originals: Vec<Option<Value>> = original_spec
        .get("ports")
        .and_then(Value::as_array)
        .map(|ps| ps.iter().map(|p| p.get("nodePort").cloned()).collect())
        .unwrap_or_default();
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for (port, original) in ports.iter_mut().zip(originals) {
            if let Some(p) = port.as_object_mut() {
                match original {
                    Some(v) => p.insert("nodePort".into(), v),
                    None => p.remove("nodePort"),
                };
            }
        }
    }
}

/// Five lowercase alphanumerics without vowels (as kube-apiserver's generateName suffix).
pub fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| ALPHABET[rand::random::<u32>() as usize % ALPHABET.len()] as char)
        .collect()
}
