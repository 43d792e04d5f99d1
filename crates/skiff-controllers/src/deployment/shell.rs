//! The Deployment controller's shell: adopt orphaned ReplicaSets, plan each Deployment from the
//! caches, apply the writes (fenced), record events.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use serde_json::json;
use tokio::sync::Notify;

use super::{Change, adoptable, plan};
use crate::events::reference;
use crate::informers::Informers;
use crate::shell::{Context, Result, namespaces_of, run_loop, sooner, write};

/// Run until stopped or fenced out.
pub async fn run(ctx: Arc<Context>, informers: Informers) -> Result<()> {
    let wake = Arc::new(Notify::new());
    informers.deployments.subscribe(&wake);
    informers.replica_sets.subscribe(&wake);
    informers.pods.subscribe(&wake);
    let pass_ctx = ctx.clone();
    run_loop(ctx, "deployment", wake, move || {
        let ctx = pass_ctx.clone();
        let informers = informers.clone();
        async move { pass(&ctx, &informers).await }
    })
    .await
}

async fn pass(ctx: &Context, informers: &Informers) -> Result<Option<Duration>> {
    let replica_sets = informers.replica_sets.list();
    let deployments = informers.deployments.list();
    let pods = informers.pods.list_in(&namespaces_of(&deployments));
    let mut requeue = None;
    for d in deployments {
        let namespace = d.metadata.namespace.clone().unwrap_or_default();
        let rs_api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &namespace);
        for orphan in adoptable(&d, &replica_sets) {
            let owner = crate::workload::owner_reference("apps/v1", "Deployment", &d.metadata);
            let patch = json!({"metadata": {"ownerReferences": [owner], "resourceVersion": orphan.metadata.resource_version}});
            let name = orphan.metadata.name.clone().unwrap_or_default();
            write(
                "adopt ReplicaSet",
                rs_api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)),
            )
            .await?;
        }
        let in_namespace: Vec<&k8s_openapi::api::core::v1::Pod> = pods
            .iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some(namespace.as_str()))
            .collect();
        let pods: Vec<k8s_openapi::api::core::v1::Pod> =
            in_namespace.into_iter().cloned().collect();
        let outcome = plan(&d, &replica_sets, &pods, Timestamp::now());
        requeue = sooner(requeue, outcome.requeue_after_seconds);
        apply(ctx, &d, outcome.changes).await?;
    }
    Ok(requeue)
}

async fn apply(ctx: &Context, d: &Deployment, changes: Vec<Change>) -> Result<()> {
    let namespace = d.metadata.namespace.clone().unwrap_or_default();
    let name = d.metadata.name.clone().unwrap_or_default();
    let rs_api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &namespace);
    let d_api: Api<Deployment> = Api::namespaced(ctx.client.clone(), &namespace);
    let object = reference("apps/v1", "Deployment", &d.metadata);
    for change in changes {
        match change {
            Change::CreateReplicaSet(rs) => {
                write(
                    "create ReplicaSet",
                    rs_api.create(&PostParams::default(), &rs),
                )
                .await?;
            }
            Change::UpdateReplicaSet(rs) => {
                let rs_name = rs.metadata.name.clone().unwrap_or_default();
                write(
                    "update ReplicaSet",
                    rs_api.replace(&rs_name, &PostParams::default(), &rs),
                )
                .await?;
            }
            Change::DeleteReplicaSet { name: rs_name, uid } => {
                let params = DeleteParams {
                    preconditions: Some(Preconditions {
                        uid: Some(uid),
                        resource_version: None,
                    }),
                    ..DeleteParams::background()
                };
                write("delete ReplicaSet", rs_api.delete(&rs_name, &params)).await?;
            }
            Change::SetRevision(revision) => {
                let patch = json!({"metadata": {"annotations": {super::REVISION: revision}}});
                write(
                    "set revision",
                    d_api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)),
                )
                .await?;
            }
            Change::UpdateStatus(status) => {
                let patch = json!({"status": status});
                write(
                    "deployment status",
                    d_api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)),
                )
                .await?;
            }
            Change::Event(record) => ctx.record(&object, &record).await,
        }
    }
    Ok(())
}
