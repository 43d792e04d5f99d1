//! The CronJob controller's shell.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use serde_json::json;
use tokio::sync::Notify;

use super::{Change, plan};
use crate::events::reference;
use crate::informers::Informers;
use crate::shell::{Context, Result, run_loop, sooner, write};

/// Run until stopped or fenced out.
pub async fn run(ctx: Arc<Context>, informers: Informers) -> Result<()> {
    let wake = Arc::new(Notify::new());
    informers.cron_jobs.subscribe(&wake);
    informers.jobs.subscribe(&wake);
    let pass_ctx = ctx.clone();
    run_loop(ctx, "cronjob", wake, move || {
        let ctx = pass_ctx.clone();
        let informers = informers.clone();
        async move { pass(&ctx, &informers).await }
    })
    .await
}

async fn pass(ctx: &Context, informers: &Informers) -> Result<Option<Duration>> {
    let jobs = informers.jobs.list();
    let mut requeue = None;
    for cron_job in informers.cron_jobs.list() {
        let outcome = plan(&cron_job, &jobs, Timestamp::now());
        requeue = sooner(requeue, outcome.requeue_after_seconds);
        apply(ctx, &cron_job, outcome.changes).await?;
    }
    Ok(requeue)
}

async fn apply(ctx: &Context, cron_job: &CronJob, changes: Vec<Change>) -> Result<()> {
    let namespace = cron_job.metadata.namespace.clone().unwrap_or_default();
    let name = cron_job.metadata.name.clone().unwrap_or_default();
    let object = reference("batch/v1", "CronJob", &cron_job.metadata);
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &namespace);
    let api: Api<CronJob> = Api::namespaced(ctx.client.clone(), &namespace);
    for change in changes {
        match change {
            Change::CreateJob(job) => {
                write("create job", jobs.create(&PostParams::default(), &job)).await?;
            }
            Change::DeleteJob {
                name: job_name,
                uid,
            } => {
                let params = DeleteParams {
                    preconditions: Some(Preconditions {
                        uid: Some(uid),
                        resource_version: None,
                    }),
                    ..DeleteParams::background()
                };
                write("delete job", jobs.delete(&job_name, &params)).await?;
            }
            Change::UpdateStatus(status) => {
                let patch = json!({"status": status});
                write(
                    "cronjob status",
                    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)),
                )
                .await?;
            }
            Change::Event(record) => ctx.record(&object, &record).await,
        }
    }
    Ok(())
}
