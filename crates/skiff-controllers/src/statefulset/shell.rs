//! The StatefulSet controller's shell.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::sync::Notify;

use super::{Change, plan};
use crate::events::reference;
use crate::informers::Informers;
use crate::replicaset::shell::{delete_pod, pod_index};
use crate::shell::{Context, Result, namespaces_of, run_loop, sooner, write};

/// Run until stopped or fenced out.
pub async fn run(ctx: Arc<Context>, informers: Informers) -> Result<()> {
    let wake = Arc::new(Notify::new());
    informers.stateful_sets.subscribe(&wake);
    informers.pods.subscribe(&wake);
    informers.claims.subscribe(&wake);
    let pass_ctx = ctx.clone();
    run_loop(ctx, "statefulset", wake, move || {
        let ctx = pass_ctx.clone();
        let informers = informers.clone();
        async move { pass(&ctx, &informers).await }
    })
    .await
}

async fn pass(ctx: &Context, informers: &Informers) -> Result<Option<Duration>> {
    let stateful_sets = informers.stateful_sets.list();
    let pods = informers.pods.list_in(&namespaces_of(&stateful_sets));
    let claims = informers.claims.list();
    let revisions = informers.revisions.list();
    let (names, live) = pod_index(&pods);
    let mut requeue = None;
    for set in stateful_sets {
        let uid = set.metadata.uid.clone().unwrap_or_default();
        if !ctx.expectations.satisfied(&uid, &names, &live) {
            requeue = sooner(requeue, Some(1));
            continue;
        }
        let outcome = plan(&set, &pods, &claims, &revisions, Timestamp::now());
        requeue = sooner(requeue, outcome.requeue_after_seconds);
        apply_changes(ctx, &set, outcome.changes).await?;
    }
    Ok(requeue)
}

/// Apply revision changes (shared with the DaemonSet shell).
pub async fn apply_revision(ctx: &Context, namespace: &str, change: Change) -> Result<()> {
    let api: Api<ControllerRevision> = Api::namespaced(ctx.client.clone(), namespace);
    match change {
        Change::CreateRevision(revision) => {
            write(
                "create revision",
                api.create(&PostParams::default(), &revision),
            )
            .await?;
        }
        Change::UpdateRevision { name, revision } => {
            let patch = json!({"revision": revision});
            write(
                "update revision",
                api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)),
            )
            .await?;
        }
        Change::DeleteRevision { name } => {
            write(
                "delete revision",
                api.delete(&name, &DeleteParams::default()),
            )
            .await?;
        }
        _ => {}
    }
    Ok(())
}

async fn apply_changes(ctx: &Context, set: &StatefulSet, changes: Vec<Change>) -> Result<()> {
    let namespace = set.metadata.namespace.clone().unwrap_or_default();
    let name = set.metadata.name.clone().unwrap_or_default();
    let object = reference("apps/v1", "StatefulSet", &set.metadata);
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &namespace);
    let pods: Api<k8s_openapi::api::core::v1::Pod> =
        Api::namespaced(ctx.client.clone(), &namespace);
    let api: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &namespace);
    let (mut created, mut deleted) = (Vec::new(), Vec::new());
    for change in changes {
        match change {
            Change::CreateClaim(claim) => {
                write(
                    "create claim",
                    claims.create(&PostParams::default(), &claim),
                )
                .await?;
            }
            Change::CreatePod(pod) => {
                if let Some(pod) =
                    write("create pod", pods.create(&PostParams::default(), &pod)).await?
                {
                    created.extend(pod.metadata.name);
                }
            }
            Change::DeletePod {
                name: pod_name,
                uid,
            } => {
                delete_pod(ctx, &namespace, &pod_name, &uid).await?;
                deleted.push(uid);
            }
            Change::UpdateStatus(status) => {
                let patch = json!({"status": status});
                write(
                    "statefulset status",
                    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)),
                )
                .await?;
            }
            Change::Event(record) => ctx.record(&object, &record).await,
            other => apply_revision(ctx, &namespace, other).await?,
        }
    }
    ctx.expectations.expect(
        set.metadata.uid.as_deref().unwrap_or_default(),
        created,
        deleted,
    );
    Ok(())
}
