//! The Job controller's shell.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;
use tokio::sync::Notify;

use super::{Change, plan};
use crate::events::reference;
use crate::informers::Informers;
use crate::replicaset::shell::{create_pod, delete_pod, pod_index};
use crate::shell::{Context, Result, namespaces_of, run_loop, sooner, write};

/// Run until stopped or fenced out.
pub async fn run(ctx: Arc<Context>, informers: Informers) -> Result<()> {
    let wake = Arc::new(Notify::new());
    informers.jobs.subscribe(&wake);
    informers.pods.subscribe(&wake);
    let pass_ctx = ctx.clone();
    run_loop(ctx, "job", wake, move || {
        let ctx = pass_ctx.clone();
        let informers = informers.clone();
        async move { pass(&ctx, &informers).await }
    })
    .await
}

async fn pass(ctx: &Context, informers: &Informers) -> Result<Option<Duration>> {
    let jobs = informers.jobs.list();
    let pods = informers.pods.list_in(&namespaces_of(&jobs));
    let (names, live) = pod_index(&pods);
    let mut requeue = None;
    for job in jobs {
        let uid = job.metadata.uid.clone().unwrap_or_default();
        if !ctx.expectations.satisfied(&uid, &names, &live) {
            requeue = sooner(requeue, Some(1));
            continue;
        }
        let outcome = plan(&job, &pods, Timestamp::now());
        requeue = sooner(requeue, outcome.requeue_after_seconds);
        apply(ctx, &job, outcome.changes).await?;
    }
    Ok(requeue)
}

async fn apply(ctx: &Context, job: &Job, changes: Vec<Change>) -> Result<()> {
    let namespace = job.metadata.namespace.clone().unwrap_or_default();
    let name = job.metadata.name.clone().unwrap_or_default();
    let object = reference("batch/v1", "Job", &job.metadata);
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), &namespace);
    let (mut created, mut deleted) = (Vec::new(), Vec::new());
    for change in changes {
        match change {
            Change::CreatePod(pod) => created.extend(create_pod(ctx, &object, &pod).await?),
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
                    "job status",
                    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)),
                )
                .await?;
            }
            Change::DeleteJob => {
                write(
                    "delete finished job",
                    api.delete(&name, &DeleteParams::foreground()),
                )
                .await?;
            }
            Change::Event(record) => ctx.record(&object, &record).await,
        }
    }
    ctx.expectations.expect(
        job.metadata.uid.as_deref().unwrap_or_default(),
        created,
        deleted,
    );
    Ok(())
}
