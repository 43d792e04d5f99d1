//! DELETE of an object and of a collection.
//!
//! An object goes at once unless something must happen first: finalizers (including the
//! `foregroundDeletion` and `orphan` ones a propagation policy adds), graceful termination of a
//! pod on a node (`deletionTimestamp` = now + grace; the agent deletes it with grace 0 once its
//! containers are gone), or a namespace's contents (phase Terminating until the namespace
//! controller finalizes it). Deleting releases a Service's IP and node ports atomically.

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Value, json};
use skiff_core::registry::Resource;
use skiff_core::{selector, status};

use crate::admission::{meta_mut, name_of};
use crate::api::{Api, Ctx, now_string, object_response};
use crate::http::{self as h, Response};
use crate::objects::{Freshness, ListOptions, Objects};

/// The parts of DeleteOptions Skiff honours.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub grace_period_seconds: Option<i64>,
    pub propagation_policy: Option<String>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
}

pub fn parse_options(ctx: &Ctx, body: &[u8]) -> Result<Options, status::Error> {
    let mut value = Value::Null;
    if !body.iter().all(u8::is_ascii_whitespace) {
        value = if body.starts_with(skiff_core::protobuf::MAGIC) {
            skiff_core::protobuf::decode(body, "meta.k8s.io/v1", "DeleteOptions")
                .or_else(|_| skiff_core::protobuf::decode(body, "v1", "DeleteOptions"))
                .map_err(|e| status::Error::bad_request(format!("invalid DeleteOptions: {e}")))?
        } else {
            serde_json::from_slice(body)
                .map_err(|e| status::Error::bad_request(format!("invalid DeleteOptions: {e}")))?
        };
    }
    let mut opts = Options {
        grace_period_seconds: value.get("gracePeriodSeconds").and_then(Value::as_i64),
        propagation_policy: value
            .get("propagationPolicy")
            .and_then(Value::as_str)
            .map(str::to_string),
        precondition_uid: value
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string),
        precondition_rv: value
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string),
    };
    if value.get("orphanDependents").and_then(Value::as_bool) == Some(true)
        && opts.propagation_policy.is_none()
    {
        opts.propagation_policy = Some("Orphan".into());
    }
    if let Some(g) = ctx.query.get("gracePeriodSeconds") {
        opts.grace_period_seconds = Some(
            g.parse()
                .map_err(|_| status::Error::bad_request("gracePeriodSeconds must be a number"))?,
        );
    }
    if let Some(p) = ctx.query.get("propagationPolicy") {
        opts.propagation_policy = Some(p.to_string());
    }
    if let Some(p) = &opts.propagation_policy
        && !matches!(p.as_str(), "Orphan" | "Background" | "Foreground")
    {
        return Err(status::Error::bad_request(format!(
            "propagationPolicy {p:?} is not one of Orphan, Background, Foreground"
        )));
    }
    if opts.grace_period_seconds.is_some_and(|g| g < 0) {
        return Err(status::Error::bad_request(
            "gracePeriodSeconds must not be negative",
        ));
    }
    Ok(opts)
}

pub async fn delete(
    api: &Api,
    ctx: &Ctx,
    resource: &Resource,
    body: &Bytes,
) -> Result<Response, status::Error> {
    let opts = parse_options(ctx, body)?;
    delete_named(
        api,
        ctx,
        resource,
        &ctx.info.namespace,
        &ctx.info.name,
        &opts,
    )
    .await
}

enum Plan {
    Now,
    /// Write this object (deletion pending).
    Pending(Value),
    /// Already pending; nothing to change.
    Unchanged,
}

fn plan(resource: &Resource, object: &Value, opts: &Options) -> Plan {
    let mut new = object.clone();
    let already = object.pointer("/metadata/deletionTimestamp").is_some();
    let mut finalizers: Vec<Value> = object
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let add = match opts.propagation_policy.as_deref() {
        Some("Foreground") => Some("foregroundDeletion"),
        Some("Orphan") => Some("orphan"),
        _ => None,
    };
    if let Some(f) = add
        && !already
        && !finalizers.iter().any(|x| x == f)
    {
        finalizers.push(json!(f));
    }
    let is_pod = resource.group.is_empty() && resource.kind == "Pod";
    let is_namespace = resource.group.is_empty() && resource.kind == "Namespace";
    let phase = object
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("");
    let on_node = object
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    let grace = if is_pod {
        let default = object
            .pointer("/spec/terminationGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(30);
        let g = opts.grace_period_seconds.unwrap_or(default);
        if !on_node || matches!(phase, "Succeeded" | "Failed") {
            0
        } else {
            g
        }
    } else {
        0
    };
    let ns_finalizers = is_namespace
        && object
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
    if finalizers.is_empty() && grace == 0 && !ns_finalizers {
        return Plan::Now;
    }
    if already {
        // A pod's grace period may only be shortened.
        let current = object
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if is_pod && grace < current {
            if grace == 0 && finalizers.is_empty() {
                return Plan::Now;
            }
            let when = k8s_openapi::jiff::Timestamp::now()
                + k8s_openapi::jiff::SignedDuration::from_secs(grace);
            meta_mut(&mut new).insert(
                "deletionTimestamp".into(),
                json!(crate::api::timestamp(when)),
            );
            meta_mut(&mut new).insert("deletionGracePeriodSeconds".into(), json!(grace));
            return Plan::Pending(new);
        }
        return Plan::Unchanged;
    }
    let when =
        k8s_openapi::jiff::Timestamp::now() + k8s_openapi::jiff::SignedDuration::from_secs(grace);
    let meta = meta_mut(&mut new);
    meta.insert(
        "deletionTimestamp".into(),
        json!(crate::api::timestamp(when)),
    );
    meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
    if !finalizers.is_empty() {
        meta.insert("finalizers".into(), Value::Array(finalizers));
    }
    if is_namespace {
        new["status"] = json!({"phase": "Terminating"});
    }
    Plan::Pending(new)
}

/// Deletes one object; the response is the object while deletion is pending, else a Success Status.
pub async fn delete_named(
    api: &Api,
    ctx: &Ctx,
    resource: &Resource,
    namespace: &str,
    name: &str,
    opts: &Options,
) -> Result<Response, status::Error> {
    for _ in 0..5 {
        let object = api
            .objects
            .get(resource, namespace, name, Freshness::Latest)
            .await?
            .ok_or_else(|| status::Error::not_found(&resource.group, &resource.plural, name))?;
        let uid = object
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let rv_text = object
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or("0")
            .to_string();
        if let Some(want) = &opts.precondition_uid
            && *want != uid
        {
            return Err(status::Error::conflict(
                &resource.group,
                &resource.plural,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {want}, UID in object meta: {uid}"
                ),
            ));
        }
        if let Some(want) = &opts.precondition_rv
            && *want != rv_text
        {
            return Err(status::Error::conflict(
                &resource.group,
                &resource.plural,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {rv_text}"
                ),
            ));
        }
        let expected: u64 = rv_text.parse().unwrap_or(0);
        let key = Objects::key(resource, namespace, name);
        match plan(resource, &object, opts) {
            Plan::Unchanged => {
                return Ok(object_response(api, ctx, resource, StatusCode::OK, &object));
            }
            Plan::Pending(new) => {
                if ctx.dry_run {
                    return Ok(object_response(api, ctx, resource, StatusCode::OK, &new));
                }
                let bytes = api.objects.encode(resource, &new);
                if let Some(revision) = api
                    .objects
                    .update(&key, bytes, expected, vec![], vec![], ctx.fence)
                    .await?
                {
                    let mut new = new;
                    meta_mut(&mut new)
                        .insert("resourceVersion".into(), json!(revision.to_string()));
                    return Ok(object_response(api, ctx, resource, StatusCode::OK, &new));
                }
            }
            Plan::Now => {
                if ctx.dry_run {
                    return Ok(success(resource, name, &uid));
                }
                let holds = if resource.group.is_empty() && resource.kind == "Service" {
                    crate::allocator::held_keys(&object)
                } else {
                    vec![]
                };
                if api
                    .objects
                    .delete(&key, expected, holds, ctx.fence)
                    .await?
                    .is_some()
                {
                    return Ok(success(resource, name, &uid));
                }
            }
        }
        // Lost a race with another writer: look again.
    }
    Err(status::Error::conflict_modified(
        &resource.group,
        &resource.plural,
        name,
    ))
}

fn success(resource: &Resource, name: &str, uid: &str) -> Response {
    let mut s = status::success(None);
    s["details"] =
        json!({"name": name, "group": resource.group, "kind": resource.plural, "uid": uid});
    h::json(StatusCode::OK, &s)
}

pub async fn collection(
    api: &Api,
    ctx: &Ctx,
    resource: &Resource,
    body: &Bytes,
) -> Result<Response, status::Error> {
    let opts = parse_options(ctx, body)?;
    let labels = match ctx.query.get("labelSelector").filter(|s| !s.is_empty()) {
        Some(s) => selector::LabelSelector::parse(s)
            .map_err(|e| status::Error::bad_request(e.to_string()))?,
        None => selector::LabelSelector::everything(),
    };
    let fields = match ctx.query.get("fieldSelector").filter(|s| !s.is_empty()) {
        Some(s) => selector::FieldSelector::parse(s)
            .map_err(|e| status::Error::bad_request(e.to_string()))?,
        None => selector::FieldSelector::parse("")
            .map_err(|e| status::Error::bad_request(e.to_string()))?,
    };
    fields
        .check_supported(&resource.group, &resource.plural)
        .map_err(|e| status::Error::bad_request(e.to_string()))?;
    let (group, plural) = (resource.group.clone(), resource.plural.clone());
    let filter = move |o: &Value| labels.matches_object(o) && fields.matches(&group, &plural, o);
    let prefix = Objects::prefix(resource, &ctx.info.namespace);
    let listed = api
        .objects
        .list(
            resource,
            &prefix,
            &ListOptions {
                freshness: Freshness::Latest,
                limit: 0,
                continue_token: None,
                filter: &filter,
            },
        )
        .await?;
    let mut deleted = Vec::new();
    for item in listed.items {
        let ns = item
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        match delete_named(api, ctx, resource, &ns, name_of(&item), &opts).await {
            Ok(_) => deleted.push(item),
            Err(e) if e.code() == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let list = json!({
        "kind": resource.list_kind,
        "apiVersion": resource.api_version(),
        "metadata": {"resourceVersion": listed.revision.to_string()},
        "items": deleted,
    });
    let _ = now_string;
    Ok(h::json(StatusCode::OK, &list))
}
