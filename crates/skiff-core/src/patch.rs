//! The four ways a client may change a stored object with PATCH, as pure functions over
//! `serde_json::Value` documents.
//!
//! - [`json`]: JSON Patch (RFC 6902), `application/json-patch+json`.
//! - [`merge`]: JSON Merge Patch (RFC 7386), `application/merge-patch+json`.
//! - [`strategic`]: Strategic Merge Patch, `application/strategic-merge-patch+json`, driven by
//!   the per-field list semantics in [`schema`].
//! - Server-side apply lives in `crate::apply`; it shares [`schema`].
//!
//! Invariants kept by every module here: a patch is applied to a copy, so a failing patch
//! leaves the caller's document untouched (all or nothing); no input can make these functions
//! panic; nesting deeper than [`MAX_DEPTH`] is refused instead of recursing without bound.

pub mod json;
pub mod merge;
pub mod schema;
pub mod strategic;

/// How deep a patch document may nest before it is refused. serde_json's parser already stops
/// at 128 levels; this bound also protects documents built in memory.
pub const MAX_DEPTH: usize = 256;

/// Whether `value` nests deeper than `limit` levels of objects and arrays. Iterative, so it is
/// safe on any input; the patch functions call it before they recurse.
pub(crate) fn nests_deeper_than(value: &serde_json::Value, limit: usize) -> bool {
    let mut pending = vec![(value, 0usize)];
    while let Some((value, depth)) = pending.pop() {
        let children: Box<dyn Iterator<Item = &serde_json::Value>> = match value {
            serde_json::Value::Object(members) => Box::new(members.values()),
            serde_json::Value::Array(items) => Box::new(items.iter()),
            _ => continue,
        };
        if depth >= limit {
            return true;
        }
        pending.extend(children.map(|child| (child, depth + 1)));
    }
    false
}
