//! The PVC binder and local-path provisioner's shell.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ObjectReference, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::sync::Notify;

use super::{Change, Config, plan};
use crate::informers::Informers;
use crate::shell::{Context, Result, run_loop, write};

/// Run until stopped or fenced out.
pub async fn run(ctx: Arc<Context>, informers: Informers, config: Config) -> Result<()> {
    let wake = Arc::new(Notify::new());
    informers.claims.subscribe(&wake);
    informers.volumes.subscribe(&wake);
    informers.storage_classes.subscribe(&wake);
    let pass_ctx = ctx.clone();
    run_loop(ctx, "persistentvolume-binder", wake, move || {
        let ctx = pass_ctx.clone();
        let informers = informers.clone();
        let config = config.clone();
        async move {
            let changes = plan(&config, &informers.claims.list(), &informers.volumes.list(), &informers.storage_classes.list());
            let volumes: Api<PersistentVolume> = Api::all(ctx.client.clone());
            let classes: Api<StorageClass> = Api::all(ctx.client.clone());
            let bind = |ns: &str| -> Api<PersistentVolumeClaim> { Api::namespaced(ctx.client.clone(), ns) };
            for change in changes {
                match change {
                    Change::CreateStorageClass(class) => {
                        write("create storage class", classes.create(&PostParams::default(), &class)).await?;
                    }
                    Change::CreateVolume(volume) => {
                        write("create volume", volumes.create(&PostParams::default(), &volume)).await?;
                    }
                    Change::BindVolume { volume, claim } => {
                        let patch = json!({"spec": {"claimRef": claim}, "metadata": {"annotations": {"pv.kubernetes.io/bound-by-controller": "yes"}}});
                        write("bind volume", volumes.patch(&volume, &PatchParams::default(), &Patch::Merge(&patch))).await?;
                    }
                    Change::BindClaim { namespace, name, volume } => {
                        let patch = json!({"spec": {"volumeName": volume}, "metadata": {"annotations": {"pv.kubernetes.io/bind-completed": "yes", "pv.kubernetes.io/bound-by-controller": "yes"}}});
                        write("bind claim", bind(&namespace).patch(&name, &PatchParams::default(), &Patch::Merge(&patch))).await?;
                    }
                    Change::VolumeStatus { volume, status } => {
                        let patch = json!({"status": status});
                        write("volume status", volumes.patch_status(&volume, &PatchParams::default(), &Patch::Merge(&patch))).await?;
                    }
                    Change::ClaimStatus { namespace, name, status } => {
                        let patch = json!({"status": status});
                        write("claim status", bind(&namespace).patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))).await?;
                    }
                    Change::DeleteVolume { volume } => {
                        write("delete volume", volumes.delete(&volume, &DeleteParams::default())).await?;
                    }
                    Change::ClaimEvent { namespace, name, record } => {
                        let object = ObjectReference { api_version: Some("v1".into()), kind: Some("PersistentVolumeClaim".into()), name: Some(name), namespace: Some(namespace), ..Default::default() };
                        ctx.record(&object, &record).await;
                    }
                }
            }
            Ok::<_, crate::shell::Error>(Some(Duration::from_secs(60)))
        }
    })
    .await
}
