//! The ReplicaSet controller's shell: plan each ReplicaSet whose expectations are met, create and
//! delete pods, adopt and release them, write status, record events.
//!
//! A plan's pod creations go out concurrently in slow-start batches (each create with its
//! `SuccessfulCreate` event); a failed batch stops the rest, and the pods created so far are
//! still expected before the next plan, so none is created twice.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use serde_json::json;
use tokio::sync::Notify;

use super::{Change, SLOW_START_INITIAL_BATCH, plan, slow_start_batches};
use crate::events::{Record, reference};
use crate::informers::Informers;
use crate::shell::{Context, Result, namespaces_of, run_loop, sooner, write};

/// Run until stopped or fenced out.
pub async fn run(ctx: Arc<Context>, informers: Informers) -> Result<()> {
    let wake = Arc::new(Notify::new());
    informers.replica_sets.subscribe(&wake);
    informers.pods.subscribe(&wake);
    let pass_ctx = ctx.clone();
    run_loop(ctx, "replicaset", wake, move || {
        let ctx = pass_ctx.clone();
        let informers = informers.clone();
        async move { pass(&ctx, &informers).await }
    })
    .await
}

/// Names present and uids live among cached pods (for expectations).
pub fn pod_index(pods: &[Pod]) -> (HashSet<String>, HashSet<String>) {
    let names = pods
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    let live = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| p.metadata.uid.clone())
        .collect();
    (names, live)
}

async fn pass(ctx: &Context, informers: &Informers) -> Result<Option<Duration>> {
    let replica_sets = informers.replica_sets.list();
    let pods = informers.pods.list_in(&namespaces_of(&replica_sets));
    let (names, live) = pod_index(&pods);
    let mut requeue = None;
    for rs in replica_sets {
        let uid = rs.metadata.uid.clone().unwrap_or_default();
        if !ctx.expectations.satisfied(&uid, &names, &live) {
            requeue = sooner(requeue, Some(1));
            continue;
        }
        let outcome = plan(&rs, &pods, Timestamp::now());
        requeue = sooner(requeue, outcome.requeue_after_seconds);
        apply(ctx, &rs, outcome.changes).await?;
    }
    Ok(requeue)
}

/// Apply pod-level changes shared by ReplicaSet-like controllers.
pub async fn create_pod(
    ctx: &Context,
    owner: &k8s_openapi::api::core::v1::ObjectReference,
    pod: &Pod,
) -> Result<Option<String>> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    match write("create pod", api.create(&PostParams::default(), pod)).await? {
        Some(created) => {
            let name = created.metadata.name.clone().unwrap_or_default();
            ctx.record(
                owner,
                &Record::normal("SuccessfulCreate", format!("Created pod: {name}")),
            )
            .await;
            Ok(Some(name))
        }
        None => Ok(None),
    }
}

/// Delete a pod by name with a uid precondition.
pub async fn delete_pod(ctx: &Context, namespace: &str, name: &str, uid: &str) -> Result<()> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some(uid.to_string()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    write("delete pod", api.delete(name, &params)).await?;
    Ok(())
}

/// Creates `pods` in slow-start batches, each batch concurrently; stops after the first batch
/// with a failure. Returns the names created, and that failure.
async fn create_pods(
    ctx: &Context,
    owner: &k8s_openapi::api::core::v1::ObjectReference,
    pods: Vec<Pod>,
) -> (Vec<String>, Option<crate::shell::Error>) {
    let mut created = Vec::new();
    let mut pods = pods.into_iter();
    for size in slow_start_batches(pods.len(), SLOW_START_INITIAL_BATCH) {
        let batch: Vec<Pod> = pods.by_ref().take(size).collect();
        let results =
            futures::future::join_all(batch.iter().map(|pod| create_pod(ctx, owner, pod))).await;
        let mut failure = None;
        for result in results {
            match result {
                Ok(Some(name)) => created.push(name),
                Ok(None) => {}
                Err(e) => {
                    // A fence refusal outranks any other failure: the loop must stop.
                    if failure.is_none() || matches!(e, crate::shell::Error::FencedOut) {
                        failure = Some(e);
                    }
                }
            }
        }
        if failure.is_some() {
            return (created, failure);
        }
    }
    (created, None)
}

async fn apply(ctx: &Context, rs: &ReplicaSet, changes: Vec<Change>) -> Result<()> {
    let namespace = rs.metadata.namespace.clone().unwrap_or_default();
    let name = rs.metadata.name.clone().unwrap_or_default();
    let uid = rs.metadata.uid.clone().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &namespace);
    let object = reference("apps/v1", "ReplicaSet", &rs.metadata);
    let (mut created, mut deleted) = (Vec::new(), Vec::new());
    let mut to_create = Vec::new();
    let mut rest = Vec::new();
    for change in changes {
        match change {
            Change::CreatePod(pod) => to_create.push(*pod),
            other => rest.push(other),
        }
    }
    if !to_create.is_empty() {
        let (names, failure) = create_pods(ctx, &object, to_create).await;
        created = names;
        if let Some(e) = failure {
            // What was created is expected before the next plan, failure or not.
            ctx.expectations.expect(&uid, created, Vec::new());
            return Err(e);
        }
    }
    for change in rest {
        match change {
            Change::CreatePod(_) => {}
            Change::DeletePod {
                name: pod_name,
                uid: pod_uid,
            } => {
                delete_pod(ctx, &namespace, &pod_name, &pod_uid).await?;
                deleted.push(pod_uid);
            }
            Change::AdoptPod {
                name: pod_name,
                uid: pod_uid,
            } => {
                let owner = crate::workload::owner_reference("apps/v1", "ReplicaSet", &rs.metadata);
                let patch = json!({"metadata": {"ownerReferences": [owner], "uid": pod_uid}});
                write(
                    "adopt pod",
                    pods.patch(&pod_name, &PatchParams::default(), &Patch::Merge(&patch)),
                )
                .await?;
            }
            Change::ReleasePod {
                name: pod_name,
                uid: pod_uid,
            } => {
                let patch = json!({"metadata": {"ownerReferences": [{"$patch": "delete", "uid": uid}], "uid": pod_uid}});
                write(
                    "release pod",
                    pods.patch(
                        &pod_name,
                        &PatchParams::default(),
                        &Patch::Strategic(&patch),
                    ),
                )
                .await?;
            }
            Change::UpdateStatus(status) => {
                let patch = json!({"status": status});
                write(
                    "replicaset status",
                    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)),
                )
                .await?;
            }
            Change::Event(record) => ctx.record(&object, &record).await,
        }
    }
    ctx.expectations.expect(&uid, created, deleted);
    Ok(())
}
