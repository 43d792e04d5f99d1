//! The Namespace controller's shell: for a namespace being deleted, delete every namespaced
//! object (collection deletes per resource), then remove the `kubernetes` finalizer through the
//! `finalize` subresource.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{DeleteParams, DynamicObject, ListParams, PostParams};
use kube::discovery::{ApiResource, Scope};
use tokio::sync::Notify;

use super::{Change, FINALIZER, plan};
use crate::gc::shell::resources;
use crate::informers::Informers;
use crate::shell::{Context, Result, run_loop, write};

/// Run until stopped or fenced out.
pub async fn run(ctx: Arc<Context>, informers: Informers) -> Result<()> {
    let wake = Arc::new(Notify::new());
    informers.namespaces.subscribe(&wake);
    let pass_ctx = ctx.clone();
    run_loop(ctx, "namespace", wake, move || {
        let ctx = pass_ctx.clone();
        let informers = informers.clone();
        async move { pass(&ctx, &informers).await }
    })
    .await
}

async fn pass(ctx: &Context, informers: &Informers) -> Result<Option<Duration>> {
    let terminating: Vec<Namespace> = informers
        .namespaces
        .list()
        .into_iter()
        .filter(|n| n.metadata.deletion_timestamp.is_some())
        .collect();
    if terminating.is_empty() {
        return Ok(None);
    }
    let all: Vec<ApiResource> = resources(&ctx.client)
        .await?
        .into_iter()
        .filter(|(_, c)| c.scope == Scope::Namespaced)
        .map(|(r, _)| r)
        .collect();
    for namespace in terminating {
        let name = namespace.metadata.name.clone().unwrap_or_default();
        let mut remaining = Vec::new();
        for resource in &all {
            let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &name, resource);
            let count = match api.list(&ListParams::default().limit(1)).await {
                Ok(list) => list.items.len(),
                Err(_) => 0,
            };
            remaining.push((
                (
                    resource.group.clone(),
                    resource.version.clone(),
                    resource.plural.clone(),
                ),
                count,
            ));
        }
        for change in plan(&namespace, &remaining) {
            match change {
                Change::DeleteAll {
                    group,
                    version,
                    plural,
                } => {
                    let Some(resource) = all
                        .iter()
                        .find(|r| r.group == group && r.version == version && r.plural == plural)
                    else {
                        continue;
                    };
                    let api: Api<DynamicObject> =
                        Api::namespaced_with(ctx.client.clone(), &name, resource);
                    write(
                        "delete collection",
                        api.delete_collection(&DeleteParams::background(), &ListParams::default()),
                    )
                    .await?;
                }
                Change::Finalize => {
                    let mut copy = namespace.clone();
                    if let Some(spec) = copy.spec.as_mut() {
                        spec.finalizers = Some(
                            spec.finalizers
                                .clone()
                                .unwrap_or_default()
                                .into_iter()
                                .filter(|f| f != FINALIZER)
                                .collect(),
                        );
                    }
                    let api: Api<Namespace> = Api::all(ctx.client.clone());
                    write(
                        "finalize namespace",
                        api.replace_subresource::<Namespace>(
                            "finalize",
                            &name,
                            &PostParams::default(),
                            &copy,
                        ),
                    )
                    .await?;
                }
            }
        }
    }
    Ok(Some(Duration::from_secs(2)))
}
