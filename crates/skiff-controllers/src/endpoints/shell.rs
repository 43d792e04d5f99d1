//! The Endpoints and EndpointSlice controllers' shell.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Endpoints;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use tokio::sync::Notify;

use super::{Change, plan};
use crate::informers::Informers;
use crate::shell::{Context, Result, namespaces_of, run_loop, write};

/// Run until stopped or fenced out.
pub async fn run(ctx: Arc<Context>, informers: Informers) -> Result<()> {
    let wake = Arc::new(Notify::new());
    informers.services.subscribe(&wake);
    informers.pods.subscribe(&wake);
    informers.slices.subscribe(&wake);
    informers.endpoints.subscribe(&wake);
    let pass_ctx = ctx.clone();
    run_loop(ctx, "endpoints", wake, move || {
        let ctx = pass_ctx.clone();
        let informers = informers.clone();
        async move {
            let services = informers.services.list();
            let pods = informers.pods.list_in(&namespaces_of(&services));
            let slices = informers.slices.list();
            let endpoints = informers.endpoints.list();
            for service in services {
                let namespace = service.metadata.namespace.clone().unwrap_or_default();
                let current = endpoints.iter().find(|e| {
                    e.metadata.namespace == service.metadata.namespace
                        && e.metadata.name == service.metadata.name
                });
                let endpoints_api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), &namespace);
                let slices_api: Api<EndpointSlice> =
                    Api::namespaced(ctx.client.clone(), &namespace);
                for change in plan(&service, &pods, current, &slices) {
                    match change {
                        Change::ApplyEndpoints(mut desired) => match current {
                            Some(existing) => {
                                desired.metadata.resource_version =
                                    existing.metadata.resource_version.clone();
                                let name = desired.metadata.name.clone().unwrap_or_default();
                                write(
                                    "update endpoints",
                                    endpoints_api.replace(&name, &PostParams::default(), &desired),
                                )
                                .await?;
                            }
                            None => {
                                write(
                                    "create endpoints",
                                    endpoints_api.create(&PostParams::default(), &desired),
                                )
                                .await?;
                            }
                        },
                        Change::CreateSlice(slice) => {
                            write(
                                "create slice",
                                slices_api.create(&PostParams::default(), &slice),
                            )
                            .await?;
                        }
                        Change::UpdateSlice(slice) => {
                            let name = slice.metadata.name.clone().unwrap_or_default();
                            write(
                                "update slice",
                                slices_api.replace(&name, &PostParams::default(), &slice),
                            )
                            .await?;
                        }
                        Change::DeleteSlice { name } => {
                            write(
                                "delete slice",
                                slices_api.delete(&name, &DeleteParams::default()),
                            )
                            .await?;
                        }
                    }
                }
            }
            Ok::<_, crate::shell::Error>(Some(Duration::from_secs(60)))
        }
    })
    .await
}
