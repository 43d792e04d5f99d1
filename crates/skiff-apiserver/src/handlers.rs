//! Resource handlers, one module per verb family, and the dispatch between them.

pub mod create;
pub mod delete;
pub mod discovery;
pub mod health;
pub mod node_proxy;
pub mod patch;
pub mod read;
pub mod subresources;
pub mod update;
pub mod watch;

use hyper::body::Incoming;
use skiff_core::registry::Resource;
use skiff_core::status;

use crate::api::{Api, Ctx, read_body};
use crate::http::Response;

pub async fn dispatch(
    api: &Api,
    ctx: &Ctx,
    resource: &Resource,
    req: http::Request<Incoming>,
) -> Result<Response, status::Error> {
    let info = &ctx.info;
    if matches!(
        info.subresource.as_str(),
        "log" | "exec" | "attach" | "portforward" | "proxy"
    ) {
        return node_proxy::handle(api, ctx, resource, req).await;
    }
    let body = match info.verb.as_str() {
        "create" | "update" | "patch" | "delete" | "deletecollection" => {
            read_body(req.into_body(), api.config.max_body_bytes).await?
        }
        _ => bytes::Bytes::new(),
    };
    match (info.verb.as_str(), info.subresource.as_str()) {
        ("get", "") | ("get", "status") => read::get(api, ctx, resource).await,
        ("list", "") => read::list(api, ctx, resource).await,
        ("watch", "") => watch::watch(api, ctx, resource).await,
        ("create", "") => create::create(api, ctx, resource, &body).await,
        ("update", "") | ("update", "status") => update::put(api, ctx, resource, &body).await,
        ("patch", "") | ("patch", "status") => patch::patch(api, ctx, resource, &body).await,
        ("delete", "") => delete::delete(api, ctx, resource, &body).await,
        ("deletecollection", "") => delete::collection(api, ctx, resource, &body).await,
        ("get" | "update" | "patch", "scale") => {
            subresources::scale(api, ctx, resource, &body).await
        }
        ("create", "binding") => subresources::bind(api, ctx, resource, &body).await,
        ("create", "eviction") => subresources::evict(api, ctx, resource, &body).await,
        ("update", "finalize") => subresources::finalize(api, ctx, resource, &body).await,
        ("create", "token") => subresources::token(api, ctx, resource, &body).await,
        (verb, sub) => Err(status::Error::method_not_allowed().with_message(format!(
            "{verb} is not supported on {}/{sub}",
            resource.plural
        ))),
    }
}
