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

#[cfg(test)]
mod tests;

fn list_metadata(revision: u64, continue_token: Option<String>) -> Value {
    let mut metadata = json!({"resourceVersion": revision.to_string()});
    if let Some(c) = continue_token {
        metadata["continue"] = Value::String(c);
    }
    metadata
}

fn json_list(resource: &Resource, items: Vec<Value>, metadata: Value) -> Value {
    // The items move in: `json!` would copy every object.
    let mut list = json!({
        "kind": resource.list_kind,
        "apiVersion": resource.api_version(),
        "metadata": metadata,
    });
    list["items"] = Value::Array(items);
    list
}

/// A JSON list body written one item at a time: the same bytes as encoding the JSON value of
/// [`list`] (a `serde_json` map sorts its keys: `apiVersion`, `items`, `kind`, `metadata`),
/// without holding every decoded item.
pub struct JsonListWriter {
    buf: Vec<u8>,
    n_items: usize,
}

impl JsonListWriter {
    pub fn new(resource: &Resource) -> JsonListWriter {
        let mut buf = b"{\"apiVersion\":".to_vec();
        let _ = serde_json::to_writer(&mut buf, &resource.api_version());
        buf.extend_from_slice(b",\"items\":[");
        JsonListWriter { buf, n_items: 0 }
    }

    pub fn push(&mut self, object: &Value) {
        if self.n_items > 0 {
            self.buf.push(b',');
        }
        let _ = serde_json::to_writer(&mut self.buf, object);
        self.n_items += 1;
    }

    pub fn finish(
        mut self,
        resource: &Resource,
        revision: u64,
        continue_token: Option<String>,
    ) -> Vec<u8> {
        self.buf.extend_from_slice(b"],\"kind\":");
        let _ = serde_json::to_writer(&mut self.buf, &resource.list_kind);
        self.buf.extend_from_slice(b",\"metadata\":");
        let _ = serde_json::to_writer(&mut self.buf, &list_metadata(revision, continue_token));
        self.buf.push(b'}');
        self.buf
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
    let metadata = list_metadata(revision, continue_token);
    match ctx.output {
        Output::Json => json_list(resource, items, metadata),
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
