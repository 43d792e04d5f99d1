//! The garbage collector's shell: discovers every resource the API serves that can be listed and
//! deleted, builds the owner graph from them, plans, confirms an owner's absence with a live read
//! before deleting a dependent, and applies the changes. Lists are metadata-only. Runs at most
//! every 2 s, woken by changes to the common kinds and at least every 30 s.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams, Preconditions};
use kube::discovery::{ApiCapabilities, ApiResource, Discovery, Scope, verbs};
use kube::{Api, Client};
use serde_json::json;
use tokio::sync::Notify;

use super::{Change, Node, Owner, plan};
use crate::informers::Informers;
use crate::shell::{Context, Error, Result, classify, is_not_found, run_loop, write};

/// Every listable, deletable resource: (resource, capabilities).
pub async fn resources(client: &Client) -> Result<Vec<(ApiResource, ApiCapabilities)>> {
    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .map_err(classify)?;
    let mut out = Vec::new();
    for group in discovery.groups() {
        for (resource, caps) in group.recommended_resources() {
            if caps.supports_operation(verbs::LIST)
                && caps.supports_operation(verbs::DELETE)
                && !resource.plural.contains('/')
            {
                out.push((resource, caps));
            }
        }
    }
    Ok(out)
}

/// Run until stopped or fenced out.
pub async fn run(ctx: Arc<Context>, informers: Informers) -> Result<()> {
    let wake = Arc::new(Notify::new());
    informers.deployments.subscribe(&wake);
    informers.replica_sets.subscribe(&wake);
    informers.jobs.subscribe(&wake);
    informers.stateful_sets.subscribe(&wake);
    informers.daemon_sets.subscribe(&wake);
    informers.services.subscribe(&wake);
    let pass_ctx = ctx.clone();
    run_loop(ctx, "garbagecollector", wake, move || {
        let ctx = pass_ctx.clone();
        async move {
            pass(&ctx).await?;
            tokio::time::sleep(Duration::from_secs(2)).await;
            Ok(Some(Duration::from_secs(30)))
        }
    })
    .await
}

fn graph_node(meta: &ObjectMeta, resource: &ApiResource) -> Node {
    Node {
        uid: meta.uid.clone().unwrap_or_default(),
        api_version: resource.api_version.clone(),
        kind: resource.kind.clone(),
        plural: resource.plural.clone(),
        namespace: meta.namespace.clone(),
        name: meta.name.clone().unwrap_or_default(),
        owners: meta
            .owner_references
            .iter()
            .flatten()
            .map(|o| Owner {
                uid: o.uid.clone(),
                api_version: o.api_version.clone(),
                kind: o.kind.clone(),
                name: o.name.clone(),
                block_owner_deletion: o.block_owner_deletion.unwrap_or(false),
            })
            .collect(),
        deleting: meta.deletion_timestamp.is_some(),
        finalizers: meta.finalizers.clone().unwrap_or_default(),
    }
}

/// Objects per page when the collector lists a kind.
const GC_PAGE: u32 = 500;

async fn pass(ctx: &Context) -> Result<()> {
    let all = resources(&ctx.client).await?;
    let mut nodes = Vec::new();
    let mut where_is: HashMap<String, (ApiResource, Scope)> = HashMap::new();
    for (resource, caps) in &all {
        let api: Api<DynamicObject> = Api::all_with(ctx.client.clone(), resource);
        // Metadata only (PartialObjectMetadataList): the graph needs nothing else, and whole
        // objects of every kind (thousands of pods and events) are costly to serve and decode.
        // In pages: one response for a hundred thousand objects of a kind would cost the member
        // serving it gigabytes, every pass.
        let mut params = ListParams::default().limit(GC_PAGE);
        loop {
            let page = match api.list_metadata(&params).await {
                Ok(page) => page,
                Err(error) => {
                    tracing::debug!(%error, plural = %resource.plural, "gc: cannot list");
                    break;
                }
            };
            for object in &page.items {
                let node = graph_node(&object.metadata, resource);
                where_is.insert(node.uid.clone(), (resource.clone(), caps.scope.clone()));
                nodes.push(node);
            }
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => break,
            }
        }
    }
    let by_uid: HashMap<String, Node> = nodes.iter().map(|n| (n.uid.clone(), n.clone())).collect();
    for change in plan(&nodes) {
        match change {
            Change::Delete {
                uid,
                foreground,
                absent_owners,
            } => {
                let Some(node) = by_uid.get(&uid) else {
                    continue;
                };
                if !owners_really_absent(ctx, node, &absent_owners, &all).await? {
                    continue;
                }
                let api = api_for(ctx, node, &where_is);
                let mut params = if foreground {
                    DeleteParams::foreground()
                } else {
                    DeleteParams::background()
                };
                params.preconditions = Some(Preconditions {
                    uid: Some(uid.clone()),
                    resource_version: None,
                });
                write("gc delete", api.delete(&node.name, &params)).await?;
            }
            Change::RemoveOwners { uid, owners } => {
                let Some(node) = by_uid.get(&uid) else {
                    continue;
                };
                let api = api_for(ctx, node, &where_is);
                let Some(current) = write("gc get", api.get(&node.name)).await? else {
                    continue;
                };
                let kept: Vec<_> = current
                    .metadata
                    .owner_references
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|o| !owners.contains(&o.uid))
                    .collect();
                let patch = json!({"metadata": {"ownerReferences": kept, "resourceVersion": current.metadata.resource_version}});
                write(
                    "gc remove owners",
                    api.patch(&node.name, &PatchParams::default(), &Patch::Merge(&patch)),
                )
                .await?;
            }
            Change::RemoveFinalizer { uid, finalizer } => {
                let Some(node) = by_uid.get(&uid) else {
                    continue;
                };
                let api = api_for(ctx, node, &where_is);
                let Some(current) = write("gc get", api.get(&node.name)).await? else {
                    continue;
                };
                let kept: Vec<String> = current
                    .metadata
                    .finalizers
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|f| *f != finalizer)
                    .collect();
                let patch = json!({"metadata": {"finalizers": kept, "resourceVersion": current.metadata.resource_version}});
                write(
                    "gc remove finalizer",
                    api.patch(&node.name, &PatchParams::default(), &Patch::Merge(&patch)),
                )
                .await?;
            }
        }
    }
    Ok(())
}

fn api_for(
    ctx: &Context,
    node: &Node,
    where_is: &HashMap<String, (ApiResource, Scope)>,
) -> Api<DynamicObject> {
    match (where_is.get(&node.uid), node.namespace.as_deref()) {
        (Some((resource, Scope::Namespaced)), Some(ns)) => {
            Api::namespaced_with(ctx.client.clone(), ns, resource)
        }
        (Some((resource, _)), _) => Api::all_with(ctx.client.clone(), resource),
        (None, _) => Api::all_with(
            ctx.client.clone(),
            &ApiResource::erase::<k8s_openapi::api::core::v1::Pod>(&()),
        ),
    }
}

/// Confirm with live reads that none of the owners exists (by name and uid).
async fn owners_really_absent(
    ctx: &Context,
    node: &Node,
    owners: &[Owner],
    all: &[(ApiResource, ApiCapabilities)],
) -> Result<bool> {
    for owner in owners {
        let Some((resource, caps)) = all
            .iter()
            .find(|(r, _)| r.api_version == owner.api_version && r.kind == owner.kind)
        else {
            // An owner kind the API does not serve cannot exist.
            continue;
        };
        let api: Api<DynamicObject> = match (&caps.scope, node.namespace.as_deref()) {
            (Scope::Namespaced, Some(ns)) => Api::namespaced_with(ctx.client.clone(), ns, resource),
            _ => Api::all_with(ctx.client.clone(), resource),
        };
        match api.get(&owner.name).await {
            Ok(found) if found.metadata.uid.as_deref() == Some(owner.uid.as_str()) => {
                return Ok(false);
            }
            Ok(_) => {}
            Err(error) if is_not_found(&error) => {}
            Err(error) => return Err(Error::Kube(error)),
        }
    }
    Ok(true)
}
