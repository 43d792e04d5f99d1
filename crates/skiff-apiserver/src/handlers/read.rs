//! GET of one object and LIST of a collection (paged, at one revision, with selectors).

use http::StatusCode;
use serde_json::Value;
use skiff_core::registry::Resource;
use skiff_core::{selector, status};

use crate::api::{Api, Ctx, object_response};
use crate::http::{self as h, Output, Response};
use crate::objects::{Freshness, ListOptions, Objects};

pub fn freshness(ctx: &Ctx) -> Result<Freshness, status::Error> {
    Freshness::parse(
        ctx.query.get("resourceVersion"),
        ctx.query.get("resourceVersionMatch"),
    )
}

/// The label and field selectors of a request, as one filter.
pub fn selectors(
    ctx: &Ctx,
    resource: &Resource,
) -> Result<impl Fn(&Value) -> bool + Send + Sync + 'static, status::Error> {
    let labels = match ctx.query.get("labelSelector").filter(|s| !s.is_empty()) {
        Some(s) => selector::LabelSelector::parse(s)
            .map_err(|e| status::Error::bad_request(format!("unable to parse requirement: {e}")))?,
        None => selector::LabelSelector::everything(),
    };
    let fields = selector::FieldSelector::parse(ctx.query.get("fieldSelector").unwrap_or(""))
        .map_err(|e| status::Error::bad_request(e.to_string()))?;
    fields
        .check_supported(&resource.group, &resource.plural)
        .map_err(|e| status::Error::bad_request(e.to_string()))?;
    let (group, plural) = (resource.group.clone(), resource.plural.clone());
    Ok(move |o: &Value| labels.matches_object(o) && fields.matches(&group, &plural, o))
}

pub async fn get(api: &Api, ctx: &Ctx, resource: &Resource) -> Result<Response, status::Error> {
    let object = api
        .objects
        .get(
            resource,
            &ctx.info.namespace,
            &ctx.info.name,
            freshness(ctx)?,
        )
        .await?
        .ok_or_else(|| {
            status::Error::not_found(&resource.group, &resource.plural, &ctx.info.name)
        })?;
    Ok(object_response(api, ctx, resource, StatusCode::OK, &object))
}

pub async fn list(api: &Api, ctx: &Ctx, resource: &Resource) -> Result<Response, status::Error> {
    let filter = selectors(ctx, resource)?;
    let limit = match ctx.query.get("limit").filter(|s| !s.is_empty()) {
        Some(l) => l
            .parse::<i64>()
            .map_err(|_| status::Error::bad_request(format!("limit {l:?} is not a number")))?
            .max(0) as u64,
        None => 0,
    };
    let prefix = Objects::prefix(resource, &ctx.info.namespace);
    let opts = ListOptions {
        freshness: freshness(ctx)?,
        limit,
        continue_token: ctx.query.get("continue"),
        filter: &filter,
    };
    if ctx.output == Output::Json {
        // Encoded as decoded: a big list never holds all its objects as JSON values.
        let mut writer = crate::output::JsonListWriter::new(resource);
        let listed = api
            .objects
            .list_each(resource, &prefix, &opts, |object| writer.push(&object))
            .await?;
        let body = writer.finish(resource, listed.revision, listed.continue_token);
        return Ok(h::respond(StatusCode::OK, h::JSON, body));
    }
    let listed = api.objects.list(resource, &prefix, &opts).await?;
    let body = crate::output::list(
        ctx,
        resource,
        listed.items,
        listed.revision,
        listed.continue_token,
    );
    let ct = if ctx.output == Output::Table {
        h::TABLE_CT
    } else {
        h::JSON
    };
    Ok(h::respond(
        StatusCode::OK,
        ct,
        serde_json::to_vec(&body).unwrap_or_default(),
    ))
}
