//! WATCH: newline-delimited JSON events from this member's replica.
//!
//! `resourceVersion` unset or `0`: synthetic ADDED events for the current objects (from a list
//! at revision R), then every change after R; `N`: every change after N; a compacted `N` ends
//! with an ERROR event carrying 410 Expired. Selectors are applied to both the old and the new
//! object, so an object that stops matching is DELETED and one that starts matching is ADDED.
//! Bookmarks come from the store's progress notifications; `timeoutSeconds` ends the watch.
//!
//! Fan-out: each HTTP watch has its own store watch and task, but the objects of an event are
//! decoded once per member and shared (`decoded::Cache`): a watch only runs its selectors over
//! them, picks the event type ([`classify`], pure) and, for JSON output, frames bytes encoded
//! once. Table and metadata output are rendered per watch (a Table row carries the time).

use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Value, json};
use skiff_core::registry::Resource;
use skiff_core::{selector, status};
use skiff_store::types::{EventKind, key_range, prefix_end};
use tokio::sync::mpsc;

use self::decoded::{Decoded, Side};

use crate::api::{Api, Ctx};
use crate::http::{self as h, Output, Response};
use crate::objects::{Freshness, ListOptions, Objects};

use super::read::selectors;

pub mod decoded;

#[cfg(test)]
mod tests;

fn line(kind: &str, object: &Value) -> Bytes {
    let mut v = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

/// The line of `line(kind, object)` from the object's JSON encoding (the same bytes: the keys
/// of a `serde_json` map are sorted, so `object` comes before `type`).
fn json_line(kind: &str, object_json: &[u8]) -> Bytes {
    let mut v = Vec::with_capacity(object_json.len() + kind.len() + 24);
    v.extend_from_slice(b"{\"object\":");
    v.extend_from_slice(object_json);
    v.extend_from_slice(b",\"type\":\"");
    v.extend_from_slice(kind.as_bytes());
    v.extend_from_slice(b"\"}\n");
    Bytes::from(v)
}

/// What a watch sends for one store event, from the event's kind, whether its new and old
/// objects exist (decoded) and whether they match the watch's selectors: an object that starts
/// matching is ADDED, one that stops matching is DELETED (with its old state).
pub fn classify(
    kind: EventKind,
    new: Option<bool>,
    old: Option<bool>,
) -> Option<(&'static str, Side)> {
    match (kind, new, old) {
        (EventKind::Put, Some(true), None) => Some(("ADDED", Side::New)),
        (EventKind::Put, Some(true), Some(true)) => Some(("MODIFIED", Side::New)),
        (EventKind::Put, Some(true), Some(false)) => Some(("ADDED", Side::New)),
        (EventKind::Put, Some(false), Some(true)) => Some(("DELETED", Side::Old)),
        (EventKind::Delete, _, Some(true)) => Some(("DELETED", Side::Old)),
        _ => None,
    }
}

/// Decodes an event's objects: the new one for a put, the previous one with the event's
/// revision as its resourceVersion. A value that does not decode is treated as absent.
fn decode_event(
    objects: &Objects,
    resource: &Resource,
    event: &skiff_store::types::Event,
) -> Decoded {
    let new = match event.kind {
        EventKind::Put => objects.decode(resource, &event.kv).ok(),
        EventKind::Delete => None,
    };
    let old = event
        .prev_kv
        .as_ref()
        .and_then(|kv| objects.decode(resource, kv).ok())
        .map(|mut o| {
            if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
                m.insert(
                    "resourceVersion".into(),
                    json!(event.kv.mod_revision.to_string()),
                );
            }
            o
        });
    Decoded::new(new, old)
}

fn bookmark(resource: &Resource, revision: u64, initial_end: bool) -> Value {
    let mut meta = json!({"resourceVersion": revision.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    json!({"kind": resource.kind, "apiVersion": resource.api_version(), "metadata": meta})
}

fn expired(requested: u64, compact: u64) -> Value {
    status::Error::expired(format!("too old resource version: {requested} ({compact})")).to_json()
}

pub async fn watch(api: &Api, ctx: &Ctx, resource: &Resource) -> Result<Response, status::Error> {
    let filter = selectors(ctx, resource)?;
    let rv = ctx.query.get("resourceVersion").filter(|s| !s.is_empty());
    let send_initial = ctx.query.get("sendInitialEvents") == Some("true");
    let bookmarks = ctx.query.flag("allowWatchBookmarks");
    let timeout = match ctx.query.get("timeoutSeconds").filter(|s| !s.is_empty()) {
        Some(t) => Duration::from_secs(
            t.parse::<u64>()
                .map_err(|_| status::Error::bad_request("timeoutSeconds must be a number"))?
                .min(3600),
        ),
        None => Duration::from_secs(1800 + u64::from(rand::random::<u16>() % 1800)),
    };
    // A watch on one named object watches one key.
    let fields = selector::FieldSelector::parse(ctx.query.get("fieldSelector").unwrap_or(""))
        .map_err(|e| status::Error::bad_request(e.to_string()))?;
    let single = fields
        .exact_value("metadata.name")
        .map(str::to_string)
        .filter(|_| !resource.is_namespaced() || !ctx.info.namespace.is_empty());
    let (start, range_end) = match &single {
        Some(name) => (
            Objects::key(resource, &ctx.info.namespace, name).into_bytes(),
            Vec::new(),
        ),
        None => {
            let prefix = Objects::prefix(resource, &ctx.info.namespace);
            let end = prefix_end(prefix.as_bytes());
            (prefix.into_bytes(), end)
        }
    };
    // The initial state, when asked for (rv unset/0, or sendInitialEvents).
    let (initial, from) = match rv {
        None | Some("0") => {
            let freshness = if rv.is_none() {
                Freshness::Latest
            } else {
                Freshness::Any
            };
            let prefix = String::from_utf8_lossy(&start).into_owned();
            let listed = api
                .objects
                .list(
                    resource,
                    &prefix,
                    &ListOptions {
                        freshness,
                        limit: 0,
                        continue_token: None,
                        filter: &filter,
                    },
                )
                .await?;
            let items = if single.is_some() {
                listed
                    .items
                    .into_iter()
                    .filter(|o| {
                        o.pointer("/metadata/name").and_then(Value::as_str) == single.as_deref()
                    })
                    .collect()
            } else {
                listed.items
            };
            (Some(items), listed.revision + 1)
        }
        Some(n) => {
            let n: u64 = n.parse().map_err(|_| {
                status::Error::bad_request(format!("invalid resource version {n:?}"))
            })?;
            if send_initial {
                let prefix = String::from_utf8_lossy(&start).into_owned();
                let listed = api
                    .objects
                    .list(
                        resource,
                        &prefix,
                        &ListOptions {
                            freshness: Freshness::NotOlderThan(n),
                            limit: 0,
                            continue_token: None,
                            filter: &filter,
                        },
                    )
                    .await?;
                (Some(listed.items), listed.revision + 1)
            } else {
                (None, n + 1)
            }
        }
    };
    let (start, end) = key_range(&start, &range_end);
    let mut watcher = api.store().watch(skiff_store::watch::Request {
        start,
        end,
        start_revision: from,
        prev_kv: true,
        progress_interval: bookmarks.then_some(Duration::from_secs(30)),
    });
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let objects = api.objects.clone();
    let shared = api.watch_events.clone();
    let resource = resource.clone();
    let table = ctx.output == Output::Table;
    let render_ctx = RenderCtx {
        output: ctx.output.clone(),
        include: crate::output::include(ctx),
    };
    let watches = api.metrics.watches.clone();
    let requested_rv = from.saturating_sub(1);
    tokio::spawn(async move {
        watches.inc();
        let mut first = true;
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let send = |kind: &str, object: &Value, first: &mut bool| {
            if render_ctx.output == Output::Json {
                // Encoded from the object as it is: no copy of it.
                *first = false;
                return json_line(kind, &serde_json::to_vec(object).unwrap_or_default());
            }
            let rendered = render_ctx.render(&resource, object, *first);
            *first = false;
            line(kind, &rendered)
        };
        if let Some(items) = initial {
            for item in &items {
                if tx.send(send("ADDED", item, &mut first)).await.is_err() {
                    watches.dec();
                    return;
                }
            }
            if send_initial {
                let _ = tx
                    .send(line("BOOKMARK", &bookmark(&resource, from - 1, true)))
                    .await;
            }
        }
        loop {
            let next = tokio::select! {
                n = watcher.next() => n,
                _ = &mut deadline => break,
                _ = tx.closed() => break,
            };
            let batch = match next {
                None => break,
                Some(Err(skiff_store::watch::Error::Compacted { compact_revision })) => {
                    let _ = tx
                        .send(line("ERROR", &expired(requested_rv, compact_revision)))
                        .await;
                    break;
                }
                Some(Err(e)) => {
                    let s = status::Error::internal(&format!("watch ended: {e}")).to_json();
                    let _ = tx.send(line("ERROR", &s)).await;
                    break;
                }
                Some(Ok(b)) => b,
            };
            if batch.progress {
                if bookmarks {
                    let _ = tx
                        .send(line(
                            "BOOKMARK",
                            &bookmark(&resource, batch.revision, false),
                        ))
                        .await;
                }
                continue;
            }
            let mut out = Vec::new();
            for event in &batch.events {
                let decoded = shared.get_or_decode(
                    batch.revision,
                    &event.kv.key,
                    decoded::weight(event),
                    || decode_event(&objects, &resource, event),
                );
                let new_match = decoded.new.as_ref().map(&filter);
                let old_match = decoded.old.as_ref().map(&filter);
                let Some((kind, side)) = classify(event.kind, new_match, old_match) else {
                    continue;
                };
                let line = if render_ctx.output == Output::Json {
                    decoded.json(side).map(|object| json_line(kind, &object))
                } else {
                    decoded
                        .object(side)
                        .map(|object| send(kind, object, &mut first))
                };
                out.extend(line);
            }
            for l in out {
                if tx.send(l).await.is_err() {
                    watches.dec();
                    return;
                }
            }
        }
        watches.dec();
    });
    let mut resp = http::Response::new(h::stream(rx));
    *resp.status_mut() = StatusCode::OK;
    let ct = if table { h::TABLE_CT } else { h::JSON };
    if let Ok(v) = http::HeaderValue::from_str(ct) {
        resp.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    Ok(resp)
}

/// What a watch task needs to render objects (the request context does not outlive the handler).
struct RenderCtx {
    output: Output,
    include: skiff_core::table::IncludeObject,
}

impl RenderCtx {
    fn render(&self, resource: &Resource, object: &Value, first: bool) -> Value {
        match self.output {
            Output::Json => object.clone(),
            Output::Table => skiff_core::table::object_table(
                &resource.group,
                &resource.plural,
                object,
                k8s_openapi::jiff::Timestamp::now(),
                self.include,
                first,
            ),
            Output::Metadata => {
                json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": object.get("metadata").cloned().unwrap_or(json!({}))})
            }
        }
    }
}
