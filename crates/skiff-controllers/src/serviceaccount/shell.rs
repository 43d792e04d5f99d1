//! The ServiceAccount controller's shell.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;
use kube::api::PostParams;
use tokio::sync::Notify;

use super::plan;
use crate::informers::Informers;
use crate::shell::{Context, Result, run_loop, write};

/// Run until stopped or fenced out.
pub async fn run(ctx: Arc<Context>, informers: Informers) -> Result<()> {
    let wake = Arc::new(Notify::new());
    informers.namespaces.subscribe(&wake);
    informers.service_accounts.subscribe(&wake);
    let pass_ctx = ctx.clone();
    run_loop(ctx, "serviceaccount", wake, move || {
        let ctx = pass_ctx.clone();
        let informers = informers.clone();
        async move {
            for account in plan(
                &informers.namespaces.list(),
                &informers.service_accounts.list(),
            ) {
                let namespace = account.metadata.namespace.clone().unwrap_or_default();
                let api: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), &namespace);
                write(
                    "create service account",
                    api.create(&PostParams::default(), &account),
                )
                .await?;
            }
            Ok::<_, crate::shell::Error>(Some(Duration::from_secs(300)))
        }
    })
    .await
}
