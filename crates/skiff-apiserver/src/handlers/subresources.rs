//! Subresources with their own semantics: `scale` (autoscaling/v1 Scale), `pods/binding`,
//! `pods/eviction` (refused with 429 while a PodDisruptionBudget forbids it),
//! `namespaces/finalize` and `serviceaccounts/token`.

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Value, json};
use skiff_core::registry::Resource;
use skiff_core::{selector, status};

use crate::admission::{meta_mut, name_of};
use crate::api::{Api, Ctx, now_string};
use crate::body;
use crate::http::{self as h, BodyType, Response};
use crate::objects::{Freshness, ListOptions, Objects};

use super::update::{commit_update, get_existing, resource_version};

fn scale_of(parent: &Value) -> Value {
    let meta = parent.get("metadata").cloned().unwrap_or(json!({}));
    let selector = parent
        .pointer("/spec/selector")
        .and_then(|s| selector::LabelSelector::from_json(s).ok())
        .map(|s| s.to_string())
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
            "creationTimestamp": meta.get("creationTimestamp"),
        },
        "spec": {"replicas": parent.pointer("/spec/replicas").cloned().unwrap_or(json!(1))},
        "status": {
            "replicas": parent.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": selector,
        },
    })
}

pub async fn scale(
    api: &Api,
    ctx: &Ctx,
    resource: &Resource,
    body: &Bytes,
) -> Result<Response, status::Error> {
    for _ in 0..5 {
        let parent = get_existing(api, ctx, resource).await?;
        let current = scale_of(&parent);
        let desired = match ctx.info.verb.as_str() {
            "get" => return Ok(h::json(StatusCode::OK, &current)),
            "update" => body::decode(ctx, resource, "Scale", "autoscaling/v1", body)?.object,
            _ => {
                let patch: Value = serde_json::from_slice(body).map_err(|e| {
                    status::Error::bad_request(format!("the patch is not valid JSON: {e}"))
                })?;
                match h::body_type(&ctx.headers)? {
                    BodyType::MergePatch | BodyType::StrategicMergePatch => {
                        skiff_core::patch::merge::apply(&current, &patch)
                            .map_err(|e| status::Error::bad_request(e.to_string()))?
                    }
                    BodyType::JsonPatch => skiff_core::patch::json::apply(&current, &patch)
                        .map_err(|e| status::Error::bad_request(e.to_string()))?,
                    _ => {
                        return Err(status::Error::unsupported_media_type(
                            "",
                            &[
                                "application/merge-patch+json",
                                "application/json-patch+json",
                            ],
                        ));
                    }
                }
            }
        };
        let replicas = desired
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .ok_or_else(|| status::Error::bad_request("the Scale has no spec.replicas"))?;
        let current_rv = resource_version(&parent)?.unwrap_or(0);
        let expected = resource_version(&desired)?.unwrap_or(current_rv);
        if expected != current_rv {
            return Err(status::Error::conflict_modified(
                &resource.group,
                &resource.plural,
                &ctx.info.name,
            ));
        }
        let mut new = parent.clone();
        new["spec"]["replicas"] = json!(replicas);
        match commit_update(api, ctx, resource, &parent, new, expected, true).await {
            Ok(written) => return Ok(h::json(StatusCode::OK, &scale_of(&written))),
            Err(e) if e.code() == 409 && desired.pointer("/metadata/resourceVersion").is_none() => {
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

/// POST pods/{name}/binding: assign the pod to a node (once).
pub async fn bind(
    api: &Api,
    ctx: &Ctx,
    resource: &Resource,
    body: &Bytes,
) -> Result<Response, status::Error> {
    let binding = body::decode(ctx, resource, "Binding", "v1", body)?.object;
    let node = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| status::Error::bad_request("the Binding has no target.name"))?
        .to_string();
    for attempt in 0..5 {
        // The first try reads this member's replica: the write below is conditional on the
        // revision read, so a stale read costs a retry, never a wrong binding (a nodeName or
        // a deletionTimestamp once set stays set). Later tries, and a pod not found locally,
        // read linearizably. The scheduler binds at a high rate; a read-index round and the
        // wait for the apply to catch up, per binding, halved its throughput.
        let pod = if attempt == 0 {
            match api
                .objects
                .get(
                    resource,
                    &ctx.info.namespace,
                    &ctx.info.name,
                    Freshness::Any,
                )
                .await?
            {
                Some(pod) => pod,
                None => continue,
            }
        } else {
            get_existing(api, ctx, resource).await?
        };
        if let Some(existing) = pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            return Err(status::Error::conflict(
                "",
                "pods/binding",
                &ctx.info.name,
                &format!(
                    "pod {} is already assigned to node {existing:?}",
                    ctx.info.name
                ),
            ));
        }
        if pod.pointer("/metadata/deletionTimestamp").is_some() {
            return Err(status::Error::conflict(
                "",
                "pods/binding",
                &ctx.info.name,
                "pod is being deleted",
            ));
        }
        let mut new = pod.clone();
        new["spec"]["nodeName"] = json!(node);
        let mut conditions: Vec<Value> = pod
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        conditions.retain(|c| c.get("type").and_then(Value::as_str) != Some("PodScheduled"));
        conditions.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now_string()}));
        new["status"]["conditions"] = Value::Array(conditions);
        if ctx.dry_run {
            return Ok(created_success());
        }
        let expected = resource_version(&pod)?.unwrap_or(0);
        let key = Objects::key(resource, &ctx.info.namespace, &ctx.info.name);
        if api
            .objects
            .update(
                &key,
                api.objects.encode(resource, &new),
                expected,
                vec![],
                vec![],
                ctx.fence,
            )
            .await?
            .is_some()
        {
            return Ok(created_success());
        }
    }
    Err(status::Error::conflict_modified("", "pods", &ctx.info.name))
}

fn created_success() -> Response {
    h::json(StatusCode::CREATED, &status::success(None))
}

/// POST pods/{name}/eviction: delete the pod unless a PodDisruptionBudget forbids it.
pub async fn evict(
    api: &Api,
    ctx: &Ctx,
    resource: &Resource,
    body: &Bytes,
) -> Result<Response, status::Error> {
    let eviction = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        body::decode(ctx, resource, "Eviction", "policy/v1", body)
            .or_else(|_| body::decode(ctx, resource, "Eviction", "policy/v1beta1", body))?
            .object
    };
    let pod = get_existing(api, ctx, resource).await?;
    let phase = pod
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("");
    let guarded = !matches!(phase, "Succeeded" | "Failed" | "Pending");
    if guarded && !ctx.dry_run {
        // Concurrent evictions race on the budget's status: like Kubernetes, retry the charge
        // a few times on a conflict before telling the client (kubectl drain gives up on 409).
        let mut attempts = 0;
        loop {
            match charge_budgets(api, ctx, &pod).await {
                Err(e) if e.code() == 409 && attempts < 5 => attempts += 1,
                other => break other?,
            }
        }
    }
    let opts_body =
        serde_json::to_vec(eviction.get("deleteOptions").unwrap_or(&json!({}))).unwrap_or_default();
    let opts = super::delete::parse_options(ctx, &opts_body)?;
    super::delete::delete_named(
        api,
        ctx,
        resource,
        &ctx.info.namespace,
        &ctx.info.name,
        &opts,
    )
    .await?;
    Ok(created_success())
}

/// Takes one allowed disruption from every PodDisruptionBudget selecting the pod, or refuses.
async fn charge_budgets(api: &Api, ctx: &Ctx, pod: &Value) -> Result<(), status::Error> {
    let Some(pdb_res) = api.registry.get("policy", "v1", "poddisruptionbudgets") else {
        return Ok(());
    };
    let prefix = Objects::prefix(pdb_res, &ctx.info.namespace);
    let all = |_: &Value| true;
    let pdbs = api
        .objects
        .list(
            pdb_res,
            &prefix,
            &ListOptions {
                freshness: Freshness::Latest,
                limit: 0,
                continue_token: None,
                filter: &all,
            },
        )
        .await?;
    for pdb in pdbs.items {
        let Some(sel) = pdb
            .pointer("/spec/selector")
            .and_then(|s| selector::LabelSelector::from_json(s).ok())
        else {
            continue;
        };
        if !sel.matches_object(pod) {
            continue;
        }
        let allowed = pdb
            .pointer("/status/disruptionsAllowed")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if allowed <= 0 {
            return Err(status::Error::too_many_requests(
                format!("Cannot evict pod as it would violate the pod's disruption budget. The disruption budget {} needs more healthy pods.", name_of(&pdb)),
                10,
            )
            .with_causes(vec![status::Cause {
                reason: "DisruptionBudget".into(),
                message: format!("The disruption budget {} does not allow more disruptions", name_of(&pdb)),
                field: String::new(),
            }]));
        }
        let mut new = pdb.clone();
        new["status"]["disruptionsAllowed"] = json!(allowed - 1);
        let pod_name = name_of(pod).to_string();
        new["status"]["disruptedPods"][pod_name] = json!(now_string());
        let expected = resource_version(&pdb)?.unwrap_or(0);
        let key = Objects::key(pdb_res, &ctx.info.namespace, name_of(&pdb));
        if api
            .objects
            .update(
                &key,
                api.objects.encode(pdb_res, &new),
                expected,
                vec![],
                vec![],
                ctx.fence,
            )
            .await?
            .is_none()
        {
            return Err(status::Error::conflict(
                "policy",
                "poddisruptionbudgets",
                name_of(&pdb),
                "the disruption budget changed; retry the eviction",
            ));
        }
    }
    Ok(())
}

/// PUT namespaces/{name}/finalize: replace `spec.finalizers`; the namespace goes when none remain.
pub async fn finalize(
    api: &Api,
    ctx: &Ctx,
    resource: &Resource,
    body: &Bytes,
) -> Result<Response, status::Error> {
    let new_ns = body::decode(ctx, resource, "Namespace", "v1", body)?.object;
    let old = get_existing(api, ctx, resource).await?;
    let mut new = old.clone();
    new["spec"]["finalizers"] = new_ns
        .pointer("/spec/finalizers")
        .cloned()
        .unwrap_or(json!([]));
    let expected = resource_version(&new_ns)?
        .or(resource_version(&old)?)
        .unwrap_or(0);
    // Finalize touches only spec.finalizers: no validation of the rest, like kube-apiserver.
    let done = new.pointer("/metadata/deletionTimestamp").is_some()
        && new
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_none_or(|f| f.is_empty())
        && new
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_none_or(|f| f.is_empty());
    let key = Objects::key(resource, "", &ctx.info.name);
    let written = if done {
        api.objects
            .delete(&key, expected, vec![], ctx.fence)
            .await?
    } else {
        api.objects
            .update(
                &key,
                api.objects.encode(resource, &new),
                expected,
                vec![],
                vec![],
                ctx.fence,
            )
            .await?
    };
    match written {
        Some(rev) => {
            meta_mut(&mut new).insert("resourceVersion".into(), json!(rev.to_string()));
            Ok(h::json(StatusCode::OK, &new))
        }
        None => Err(status::Error::conflict_modified(
            "",
            "namespaces",
            &ctx.info.name,
        )),
    }
}

/// POST serviceaccounts/{name}/token: a signed, expiring token for the ServiceAccount.
pub async fn token(
    api: &Api,
    ctx: &Ctx,
    resource: &Resource,
    body: &Bytes,
) -> Result<Response, status::Error> {
    let request = body::decode(
        ctx,
        resource,
        "TokenRequest",
        "authentication.k8s.io/v1",
        body,
    )?
    .object;
    let sa = get_existing(api, ctx, resource).await?;
    let expiration = request
        .pointer("/spec/expirationSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(3600)
        .clamp(600, 86400 * 365);
    let audiences: Vec<String> = request
        .pointer("/spec/audiences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .filter(|a: &Vec<String>| !a.is_empty())
        .unwrap_or_else(|| vec!["https://kubernetes.default.svc.cluster.local".into()]);
    let bound = request.pointer("/spec/boundObjectRef").cloned();
    let (token, expires) = crate::sa_token::issue(
        api,
        &ctx.info.namespace,
        name_of(&sa),
        sa.pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or(""),
        &audiences,
        expiration,
        bound.as_ref(),
    )?;
    let mut out = request.clone();
    out["kind"] = json!("TokenRequest");
    out["apiVersion"] = json!("authentication.k8s.io/v1");
    out["spec"]["audiences"] = json!(audiences);
    out["spec"]["expirationSeconds"] = json!(expiration);
    out["status"] = json!({"token": token, "expirationTimestamp": expires});
    Ok(h::json(StatusCode::CREATED, &out))
}
