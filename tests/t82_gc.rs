//! The garbage collector, on a one-member cluster without nodes: dependents of a deleted owner
//! are collected however many there are (the collector lists each kind in pages).

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};

use skiff_tests::cluster::Cluster;
use skiff_tests::wait;

/// More than one page of the collector's listing (500).
const DEPENDENTS: usize = 640;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependents_beyond_one_page_are_collected_with_their_owner() -> anyhow::Result<()> {
    let c = Cluster::start(1, &[]).await?;
    let client = c.kube_client(0).await?;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let owner = api
        .create(
            &PostParams::default(),
            &ConfigMap {
                metadata: ObjectMeta {
                    name: Some("owner".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await?;
    let reference = OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: "owner".into(),
        uid: owner.metadata.uid.clone().unwrap_or_default(),
        ..Default::default()
    };
    futures::stream::iter(0..DEPENDENTS)
        .map(|i| {
            let api = api.clone();
            let reference = reference.clone();
            async move {
                let cm = ConfigMap {
                    metadata: ObjectMeta {
                        name: Some(format!("dependent-{i}")),
                        labels: Some(BTreeMap::from([("gc-test".into(), "yes".into())])),
                        owner_references: Some(vec![reference]),
                        ..Default::default()
                    },
                    ..Default::default()
                };
                api.create(&PostParams::default(), &cm).await
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await?;
    api.delete("owner", &DeleteParams::background()).await?;
    let labelled = ListParams::default().labels("gc-test=yes");
    let left = || async { anyhow::Ok(api.list(&labelled).await?.items.len()) };
    wait::until_every(
        "the collector to start on the dependents",
        Duration::from_secs(90),
        Duration::from_millis(500),
        || async { Ok((left().await? < DEPENDENTS).then_some(())) },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", c.log_tails()))?;
    // All in the same pass: a collector that read only the first page of the listing would
    // leave the rest for its next pass, 30 s later.
    wait::until_every(
        "every dependent to be collected in one pass",
        Duration::from_secs(20),
        Duration::from_millis(500),
        || async { Ok((left().await? == 0).then_some(())) },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", c.log_tails()))?;
    Ok(())
}
