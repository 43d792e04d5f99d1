//! The node lifecycle controller's shell.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use serde_json::json;
use tokio::sync::Notify;

use super::{Change, Config, plan};
use crate::informers::Informers;
use crate::shell::{Context, Result, run_loop, sooner, write};

/// Run until stopped or fenced out.
pub async fn run(ctx: Arc<Context>, informers: Informers, config: Config) -> Result<()> {
    let wake = Arc::new(Notify::new());
    informers.nodes.subscribe(&wake);
    informers.leases.subscribe(&wake);
    let pass_ctx = ctx.clone();
    run_loop(ctx, "nodelifecycle", wake, move || {
        let ctx = pass_ctx.clone();
        let informers = informers.clone();
        let config = config.clone();
        async move { pass(&ctx, &informers, &config).await }
    })
    .await
}

async fn pass(ctx: &Context, informers: &Informers, config: &Config) -> Result<Option<Duration>> {
    let all_nodes = informers.nodes.list();
    ctx.metrics.set_nodes(&all_nodes);
    let outcome = plan(
        config,
        &all_nodes,
        &informers.leases.list(),
        &informers.pods.shared(),
        Timestamp::now(),
    );
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    for change in outcome.changes {
        match change {
            Change::SetTaints { node, taints } => {
                let patch = json!({"spec": {"taints": taints}});
                write(
                    "node taints",
                    nodes.patch(&node, &PatchParams::default(), &Patch::Merge(&patch)),
                )
                .await?;
            }
            Change::SetConditions { node, conditions } => {
                let patch = json!({"status": {"conditions": conditions}});
                write(
                    "node conditions",
                    nodes.patch_status(&node, &PatchParams::default(), &Patch::Strategic(&patch)),
                )
                .await?;
            }
            Change::MarkPodNotReady { namespace, name } => {
                let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
                let patch = json!({"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "NodeNotReady",
                    "lastTransitionTime": Timestamp::now().to_string()}]}});
                write(
                    "pod not ready",
                    pods.patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch)),
                )
                .await?;
            }
            Change::EvictPod {
                namespace,
                name,
                uid,
            } => {
                let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
                let params = DeleteParams {
                    preconditions: Some(Preconditions {
                        uid: Some(uid),
                        resource_version: None,
                    }),
                    ..DeleteParams::default()
                };
                write("evict pod", pods.delete(&name, &params)).await?;
            }
            Change::Event {
                namespace,
                kind,
                name,
                record,
            } => {
                let object = ObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some(kind),
                    name: Some(name),
                    namespace: Some(namespace),
                    ..Default::default()
                };
                ctx.record(&object, &record).await;
            }
        }
    }
    Ok(sooner(
        Some(Duration::from_secs(10)),
        outcome.requeue_after_seconds,
    ))
}
