//! The node IPAM controller's shell.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, ObjectReference};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use tokio::sync::Notify;

use super::{Change, Cidr, plan};
use crate::informers::Informers;
use crate::shell::{Context, Result, run_loop, write};

/// Run until stopped or fenced out.
pub async fn run(ctx: Arc<Context>, informers: Informers, cluster: Cidr) -> Result<()> {
    let wake = Arc::new(Notify::new());
    informers.nodes.subscribe(&wake);
    let pass_ctx = ctx.clone();
    run_loop(ctx, "nodeipam", wake, move || {
        let ctx = pass_ctx.clone();
        let informers = informers.clone();
        async move {
            let nodes: Api<Node> = Api::all(ctx.client.clone());
            for change in plan(cluster, &informers.nodes.list()) {
                match change {
                    Change::Assign { node, cidr } => {
                        // `test` guards against assigning twice if the cache lagged.
                        let patch = json!({"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}});
                        write(
                            "assign pod CIDR",
                            nodes.patch(&node, &PatchParams::default(), &Patch::Merge(&patch)),
                        )
                        .await?;
                    }
                    Change::Event { node, record } => {
                        let object = ObjectReference {
                            api_version: Some("v1".into()),
                            kind: Some("Node".into()),
                            name: Some(node),
                            namespace: Some("default".into()),
                            ..Default::default()
                        };
                        ctx.record(&object, &record).await;
                    }
                }
            }
            Ok(Some(Duration::from_secs(60)))
        }
    })
    .await
}
