//! Rendering objects and lists in the negotiated representation: JSON, a `meta.k8s.io/v1`
//! Table (kubectl's columns, from skiff-core), or PartialObjectMetadata.

use serde_json::{Value, json};
use skiff_core::registry::Resource;
use skiff_core::table::{self, IncludeObject};

use crate::api::{Api, Ctx};
use crate::http::Output;

pub fn include(ctx: &Ctx) -> IncludeObject {
    ctx.query
        .get("includeObject")
        .and_then(|v| IncludeObject::parse(v).ok())
        .unwrap_or(IncludeObject::Metadata)
}

fn partial(object: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": object.get("metadata").cloned().unwrap_or(json!({}))})
}

/// One object.
pub fn object(_api: &Api, ctx: &Ctx, resource: &Resource, object: &Value) -> Value {
    match ctx.output {
        Output::Json => object.clone(),
        Output::Table => table::object_table(
            &resource.group,
            &resource.plural,
            object,
            ctx.now(),
            include(ctx),
            true,
        ),
        Output::Metadata => partial(object),
    }
}

/// A list page.
pub fn list(
    ctx: &Ctx,
    resource: &Resource,
    items: Vec<Value>,
    revision: u64,
    continue_token: Option<String>,
) -> Value {
    let mut metadata = json!({"resourceVersion": revision.to_string()});
    if let Some(c) = continue_token {
        metadata["continue"] = Value::String(c);
    }
    match ctx.output {
        Output::Json => {
            // The items move in: `json!` would copy every object.
            let mut list = json!({
                "kind": resource.list_kind,
                "apiVersion": resource.api_version(),
                "metadata": metadata,
            });
            list["items"] = Value::Array(items);
            list
        }
        Output::Table => table::list_table(
            &resource.group,
            &resource.plural,
            &items,
            &metadata,
            ctx.now(),
            include(ctx),
        ),
        Output::Metadata => json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": metadata,
            "items": items.iter().map(partial).collect::<Vec<_>>(),
        }),
    }
}
