//! The DaemonSet controller's shell.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use tokio::sync::Notify;

use super::{Change, plan};
use crate::events::reference;
use crate::informers::Informers;
use crate::replicaset::shell::{create_pod, delete_pod, pod_index};
use crate::shell::{Context, Result, namespaces_of, run_loop, sooner, write};
use crate::statefulset::shell::apply_revision;

/// Run until stopped or fenced out.
pub async fn run(ctx: Arc<Context>, informers: Informers) -> Result<()> {
    let wake = Arc::new(Notify::new());
    informers.daemon_sets.subscribe(&wake);
    informers.pods.subscribe(&wake);
    informers.nodes.subscribe(&wake);
    let pass_ctx = ctx.clone();
    run_loop(ctx, "daemonset", wake, move || {
        let ctx = pass_ctx.clone();
        let informers = informers.clone();
        async move { pass(&ctx, &informers).await }
    })
    .await
}

async fn pass(ctx: &Context, informers: &Informers) -> Result<Option<Duration>> {
    let daemon_sets = informers.daemon_sets.list();
    if daemon_sets.is_empty() {
        // Woken by every pod change: with no DaemonSet, copy no nodes, pods or revisions.
        return Ok(None);
    }
    let pods = informers.pods.list_in(&namespaces_of(&daemon_sets));
    let nodes = informers.nodes.list();
    let revisions = informers.revisions.list();
    let (names, live) = pod_index(&pods);
    let mut requeue = None;
    for ds in daemon_sets {
        let uid = ds.metadata.uid.clone().unwrap_or_default();
        if !ctx.expectations.satisfied(&uid, &names, &live) {
            requeue = sooner(requeue, Some(1));
            continue;
        }
        let outcome = plan(&ds, &nodes, &pods, &revisions, Timestamp::now());
        requeue = sooner(requeue, outcome.requeue_after_seconds);
        apply(ctx, &ds, outcome.changes).await?;
    }
    Ok(requeue)
}

async fn apply(ctx: &Context, ds: &DaemonSet, changes: Vec<Change>) -> Result<()> {
    let namespace = ds.metadata.namespace.clone().unwrap_or_default();
    let name = ds.metadata.name.clone().unwrap_or_default();
    let object = reference("apps/v1", "DaemonSet", &ds.metadata);
    let api: Api<DaemonSet> = Api::namespaced(ctx.client.clone(), &namespace);
    let (mut created, mut deleted) = (Vec::new(), Vec::new());
    for change in changes {
        match change {
            Change::Revision(change) => apply_revision(ctx, &namespace, change).await?,
            Change::CreatePod { pod, .. } => created.extend(create_pod(ctx, &object, &pod).await?),
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
                    "daemonset status",
                    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)),
                )
                .await?;
            }
            Change::Event(record) => ctx.record(&object, &record).await,
        }
    }
    ctx.expectations.expect(
        ds.metadata.uid.as_deref().unwrap_or_default(),
        created,
        deleted,
    );
    Ok(())
}
