//! The node IPAM controller's shell.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
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
    // Nodes told "CIDRNotAvailable" in this term (told once, not on every pass).
    let reported: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    run_loop(ctx, "nodeipam", wake, move || {
        let ctx = pass_ctx.clone();
        let informers = informers.clone();
        let reported = reported.clone();
        async move {
            let nodes: Api<Node> = Api::all(ctx.client.clone());
            let all = informers.nodes.list();
            let changes = {
                let mut told = reported.lock().unwrap_or_else(|e| e.into_inner());
                let present: BTreeSet<&str> = all
                    .iter()
                    .filter_map(|n| n.metadata.name.as_deref())
                    .collect();
                told.retain(|n| present.contains(n.as_str()));
                plan(cluster, &all, &told)
            };
            for change in changes {
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
                        reported
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(node.clone());
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
