//! The shell of `skiff ingress`: kube-rs reflectors on Ingresses, IngressClasses, Services,
//! EndpointSlices and Secrets; on any change (coalesced over 20 ms) the [`Controller`] rebuilds
//! and swaps its configuration, and the status of served Ingresses gets the node's address.
//! Nothing is served from a cache that has not synced yet.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client, Resource};

use crate::routing::ClassSelector;
use crate::status::status_patch;
use crate::{Config, Controller, Objects};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] crate::config::Error),
    #[error("the watch streams ended")]
    WatchEnded,
}

fn reflect<K>(api: Api<K>) -> (Store<K>, futures::stream::BoxStream<'static, ()>)
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    let (store, writer) = reflector::store::<K>();
    let stream = reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        .map(|_| ())
        .boxed();
    (store, stream)
}

fn ready<K: Resource + Clone + 'static>(store: &Store<K>) -> bool
where
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    store
        .wait_until_ready()
        .now_or_never()
        .is_some_and(|r| r.is_ok())
}

/// Watches the cluster and keeps `controller` up to date until `shutdown` resolves.
pub async fn run(
    config: Config,
    client: Client,
    controller: Arc<Controller>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), Error> {
    config.validate()?;
    let (ingresses, s1) = reflect(Api::<Ingress>::all(client.clone()));
    let (classes, s2) = reflect(Api::<IngressClass>::all(client.clone()));
    let (services, s3) = reflect(Api::<Service>::all(client.clone()));
    let (slices, s4) = reflect(Api::<EndpointSlice>::all(client.clone()));
    let (secrets, s5) = reflect(Api::<Secret>::all(client.clone()));
    let mut events = futures::stream::select_all([s1, s2, s3, s4, s5]);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut dirty = false;
    let mut reported: BTreeSet<String> = BTreeSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            event = events.next() => match event {
                Some(()) => dirty = true,
                None => return Err(Error::WatchEnded),
            },
            _ = tick.tick() => {
                let synced = ready(&ingresses) && ready(&classes) && ready(&services) && ready(&slices) && ready(&secrets);
                if !dirty || !synced {
                    continue;
                }
                dirty = false;
                let objects = Objects {
                    ingresses: ingresses.state(),
                    classes: classes.state(),
                    services: services.state(),
                    slices: slices.state(),
                    secrets: secrets.state(),
                };
                let problems = controller.update(&objects);
                let now: BTreeSet<String> = problems.iter().map(|p| format!("{}: {}", p.ingress, p.message)).collect();
                for problem in now.difference(&reported) {
                    tracing::warn!(problem = %problem, "ingress not fully served");
                }
                reported = now;
                if let Some(address) = config.node_address {
                    let selector = ClassSelector::from_classes(&config.class_name, &objects.classes);
                    for ingress in objects.ingresses.iter().filter(|i| selector.selects(i)) {
                        let (Some(ns), Some(name)) = (ingress.metadata.namespace.as_deref(), ingress.metadata.name.as_deref()) else {
                            continue;
                        };
                        let Some(patch) = status_patch(ingress, address) else {
                            continue;
                        };
                        let api = Api::<Ingress>::namespaced(client.clone(), ns);
                        if let Err(e) = api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                            tracing::warn!(error = %e, ingress = %format!("{ns}/{name}"), "cannot update the ingress status");
                        }
                    }
                }
            }
        }
    }
}
