//! What happens to an object between decoding and storage: system fields, status rules,
//! defaulting, the built-in admission steps, and validation.
//!
//! Create: defaults → system fields (uid, creationTimestamp, generation 1, managedFields) →
//! status reset (for resources with a status subresource) → admission (namespace lifecycle,
//! default tolerations, priority class, default storage class, Service IP allocation) →
//! validation (422 with every field cause).
//! Update: the same for the new object, then what clients may not change is kept from the old
//! one (identity, creation time, status on the main resource and everything but status on
//! `/status`), and `generation` is bumped when anything outside metadata and status changed.

use serde_json::{Map, Value, json};
use skiff_core::registry::Resource;
use skiff_core::{defaults, status, validation};

use crate::api::{Api, Ctx, now_string};
use crate::objects::Freshness;

pub fn meta_mut(object: &mut Value) -> &mut Map<String, Value> {
    if !object.is_object() {
        *object = Value::Object(Map::new());
    }
    let Value::Object(root) = object else {
        unreachable!("made an object above")
    };
    let meta = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    let Value::Object(m) = meta else {
        unreachable!("made an object above")
    };
    m
}

pub fn name_of(object: &Value) -> &str {
    object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn has_status_subresource(resource: &Resource) -> bool {
    resource.subresource("status").is_some()
}

/// Resets what clients may not set on create.
fn reset_status_on_create(resource: &Resource, object: &mut Value) {
    if !has_status_subresource(resource) {
        return;
    }
    match (resource.group.as_str(), resource.plural.as_str()) {
        // Agents register Nodes with their status; namespaces get theirs from defaulting.
        ("", "nodes") | ("", "namespaces") => {}
        ("", "pods") => {
            object["status"] = json!({"phase": "Pending"});
        }
        _ => {
            if let Some(map) = object.as_object_mut() {
                map.remove("status");
            }
        }
    }
}

/// Prepares a new object; returns extra keys (allocations) to create with it.
pub async fn prepare_create(
    api: &Api,
    ctx: &Ctx,
    resource: &Resource,
    namespace: &str,
    object: &mut Value,
    record_fields: bool,
) -> Result<Vec<(String, Vec<u8>)>, status::Error> {
    defaults::apply(&resource.group, &resource.kind, object);
    let uid = uuid::Uuid::new_v4().to_string();
    {
        let meta = meta_mut(object);
        if resource.is_namespaced() {
            meta.insert("namespace".into(), Value::String(namespace.into()));
        } else {
            meta.remove("namespace");
        }
        meta.insert("uid".into(), Value::String(uid.clone()));
        meta.insert("creationTimestamp".into(), Value::String(now_string()));
        for field in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ] {
            meta.remove(field);
        }
    }
    if object.get("spec").is_some() {
        meta_mut(object).insert("generation".into(), json!(1));
    } else {
        meta_mut(object).remove("generation");
    }
    reset_status_on_create(resource, object);
    if resource.group == "batch" && resource.kind == "Job" {
        defaults::job_selector(object, &uid);
    }
    defaults::apply(&resource.group, &resource.kind, object);
    let mut allocations = Vec::new();
    match (resource.group.as_str(), resource.kind.as_str()) {
        ("", "Pod") => admit_pod(api, object).await?,
        ("", "Service") => allocations = crate::allocator::allocate_service(api, object, None)?,
        ("", "PersistentVolumeClaim") => default_storage_class(api, object).await?,
        _ => {}
    }
    if record_fields {
        record_managed_fields(ctx, resource, None, object)?;
    }
    validation::check_create(resource, object)?;
    Ok(allocations)
}

/// Updates managedFields for a non-apply write by `ctx.field_manager`.
pub fn record_managed_fields(
    ctx: &Ctx,
    resource: &Resource,
    old: Option<&Value>,
    object: &mut Value,
) -> Result<(), status::Error> {
    let subresource = (!ctx.info.subresource.is_empty()).then_some(ctx.info.subresource.as_str());
    let api_version = resource.api_version();
    let time = now_string();
    let update = skiff_core::apply::Update {
        manager: &ctx.field_manager,
        api_version: &api_version,
        time: &time,
        subresource,
        schema: skiff_core::patch::schema::for_kind(&resource.group, &resource.kind),
    };
    match skiff_core::apply::update(old, object, &update) {
        Ok(updated) => {
            *object = updated;
            Ok(())
        }
        Err(e) => Err(apply_error(e)),
    }
}

pub fn apply_error(e: skiff_core::apply::Error) -> status::Error {
    let code = e.code();
    let message = e.to_string();
    match code {
        409 => {
            let causes = match &e {
                skiff_core::apply::Error::Conflict(conflicts) => conflicts
                    .iter()
                    .map(|c| status::Cause {
                        reason: "FieldManagerConflict".into(),
                        message: c.message(),
                        field: c.field.clone(),
                    })
                    .collect(),
                _ => Vec::new(),
            };
            status::Error::conflict("", "", "", &message)
                .with_message(message.clone())
                .with_causes(causes)
        }
        422 => status::Error::invalid("", "", "", &[]).with_message(message),
        _ => status::Error::bad_request(message),
    }
}

/// Pod admission: default tolerations for not-ready/unreachable nodes (300 s), the priority of
/// its PriorityClass.
async fn admit_pod(api: &Api, pod: &mut Value) -> Result<(), status::Error> {
    let tolerations = pod
        .pointer("/spec/tolerations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut added = tolerations.clone();
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        let present = tolerations.iter().any(|t| {
            let k = t.get("key").and_then(Value::as_str);
            let effect = t.get("effect").and_then(Value::as_str);
            (k == Some(key)
                || (k.is_none() && t.get("operator").and_then(Value::as_str) == Some("Exists")))
                && (effect.is_none() || effect == Some("NoExecute"))
        });
        if !present {
            added.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
        }
    }
    if let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) {
        spec.insert("tolerations".into(), Value::Array(added));
    }
    if let Some(class) = pod
        .pointer("/spec/priorityClassName")
        .and_then(Value::as_str)
        .map(str::to_string)
    {
        let registry = &api.registry;
        if let Some(pc_res) = registry.get("scheduling.k8s.io", "v1", "priorityclasses") {
            match api.objects.get(pc_res, "", &class, Freshness::Any).await? {
                Some(pc) => {
                    let value = pc.get("value").cloned().unwrap_or(json!(0));
                    pod["spec"]["priority"] = value;
                    if let Some(policy) = pc.get("preemptionPolicy") {
                        pod["spec"]["preemptionPolicy"] = policy.clone();
                    }
                }
                None => {
                    return Err(status::Error::forbidden(
                        "",
                        "pods",
                        name_of(pod),
                        &format!("no PriorityClass with name {class} was found"),
                    ));
                }
            }
        }
    } else if let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) {
        spec.entry("priority").or_insert(json!(0));
    }
    Ok(())
}

/// A PVC without a storage class gets the default StorageClass, if one is marked.
async fn default_storage_class(api: &Api, pvc: &mut Value) -> Result<(), status::Error> {
    if pvc.pointer("/spec/storageClassName").is_some() {
        return Ok(());
    }
    let Some(sc_res) = api.registry.get("storage.k8s.io", "v1", "storageclasses") else {
        return Ok(());
    };
    let prefix = crate::objects::Objects::prefix(sc_res, "");
    let all = |_: &Value| true;
    let listed = api
        .objects
        .list(
            sc_res,
            &prefix,
            &crate::objects::ListOptions {
                freshness: Freshness::Any,
                limit: 0,
                continue_token: None,
                filter: &all,
            },
        )
        .await?;
    let default = listed.items.iter().find(|sc| {
        sc.pointer("/metadata/annotations/storageclass.kubernetes.io~1is-default-class")
            .and_then(Value::as_str)
            == Some("true")
    });
    if let (Some(sc), Some(spec)) = (default, pvc.get_mut("spec").and_then(Value::as_object_mut)) {
        spec.insert(
            "storageClassName".into(),
            Value::String(name_of(sc).to_string()),
        );
    }
    Ok(())
}

/// Whether two objects differ outside metadata and status (what bumps `generation`).
pub fn spec_changed(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            m.remove("metadata");
            m.remove("status");
        }
        v
    };
    strip(old) != strip(new)
}

/// Prepares an update: keeps what clients may not change, applies the status rules, bumps
/// generation, defaults and validates. `subresource` is "" or "status".
pub fn prepare_update(
    ctx: &Ctx,
    resource: &Resource,
    old: &Value,
    new: &mut Value,
    subresource: &str,
) -> Result<(), status::Error> {
    defaults::apply(&resource.group, &resource.kind, new);
    if has_status_subresource(resource) {
        if subresource == "status" {
            // Only status (and, as kube-apiserver allows, labels/annotations? no: nothing else).
            let status_value = new.get("status").cloned();
            let old_meta = old.get("metadata").cloned().unwrap_or(json!({}));
            let new_rv = new.pointer("/metadata/resourceVersion").cloned();
            *new = old.clone();
            new["metadata"] = old_meta;
            if let Some(rv) = new_rv {
                meta_mut(new).insert("resourceVersion".into(), rv);
            }
            match status_value {
                Some(s) => new["status"] = s,
                None => {
                    if let Some(m) = new.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
        } else {
            match old.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    if let Some(m) = new.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
        }
    }
    let old_meta = old.get("metadata").cloned().unwrap_or(json!({}));
    {
        let meta = meta_mut(new);
        for field in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "namespace",
            "generation",
        ] {
            match old_meta.get(field) {
                Some(v) => meta.insert(field.into(), v.clone()),
                None => meta.remove(field),
            };
        }
        meta.remove("selfLink");
    }
    if spec_changed(old, new) {
        let generation = old_meta
            .get("generation")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            + 1;
        meta_mut(new).insert("generation".into(), json!(generation));
    }
    // A finalizer may be removed but none added once deletion started.
    if old_meta.get("deletionTimestamp").is_some() {
        let old_f: Vec<Value> = old_meta
            .get("finalizers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let new_f: Vec<Value> = new
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if new_f.iter().any(|f| !old_f.contains(f)) {
            return Err(status::Error::forbidden(
                &resource.group,
                &resource.plural,
                name_of(old),
                "no new finalizers can be added if the object is being deleted",
            ));
        }
    }
    record_managed_fields(ctx, resource, Some(old), new)?;
    validation::check_update(resource, new, old)?;
    Ok(())
}
