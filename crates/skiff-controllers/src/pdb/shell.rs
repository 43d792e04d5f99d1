//! The PodDisruptionBudget status controller's shell.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use tokio::sync::Notify;

use super::plan;
use crate::informers::Informers;
use crate::shell::{Context, Result, namespaces_of, run_loop, write};

/// Run until stopped or fenced out.
pub async fn run(ctx: Arc<Context>, informers: Informers) -> Result<()> {
    let wake = Arc::new(Notify::new());
    informers.budgets.subscribe(&wake);
    informers.pods.subscribe(&wake);
    let pass_ctx = ctx.clone();
    run_loop(ctx, "disruption", wake, move || {
        let ctx = pass_ctx.clone();
        let informers = informers.clone();
        async move {
            let budgets = informers.budgets.list();
            let pods = informers.pods.list_in(&namespaces_of(&budgets));
            for pdb in budgets {
                if let Some(status) = plan(&pdb, &pods, Timestamp::now()) {
                    let api: Api<PodDisruptionBudget> = Api::namespaced(
                        ctx.client.clone(),
                        pdb.metadata.namespace.as_deref().unwrap_or_default(),
                    );
                    let patch = json!({"status": status});
                    let name = pdb.metadata.name.clone().unwrap_or_default();
                    write(
                        "pdb status",
                        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)),
                    )
                    .await?;
                }
            }
            Ok::<_, crate::shell::Error>(Some(Duration::from_secs(60)))
        }
    })
    .await
}
