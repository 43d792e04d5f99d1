//! Strategic merge patch (`application/strategic-merge-patch+json`), the patch kubectl sends
//! for client-side `apply`, `edit`, `set image`, `rollout restart` and `cordon`, and the Python
//! client's default for `patch_*` with a dict body.
//!
//! It is a JSON merge patch in which some lists merge instead of being replaced, as
//! [`schema`](super::schema) says per field: lists of objects merge element by element on their
//! merge key (containers by `name`, Service ports by `port`), lists of scalars with strategy
//! `merge` become a union (finalizers). Directives in the patch refine this, as kube-apiserver
//! implements them:
//! - `null` deletes a field;
//! - `$patch: replace` in an object replaces it whole, `$patch: delete` empties it; in a list
//!   element, `$patch: delete` (with the merge key) removes the matching elements and
//!   `$patch: replace` makes the other patch elements the whole list; `$patch: merge` is the
//!   default and accepted everywhere (kube-apiserver rejects it);
//! - `$retainKeys: [..]` keeps only the listed fields of the target object;
//! - `$setElementOrder/<list>: [..]` orders a merged list (for lists of objects the entries hold
//!   only the merge key);
//! - `$deleteFromPrimitiveList/<list>: [..]` removes scalars from a merged list of scalars.
//!
//! The merged list keeps the patch's order for patch elements and the live order for the
//! others, interleaved as kube-apiserver does. Invariants: the original is never modified; no
//! directive (any member named `$...`) survives into the result; input never panics; nesting
//! deeper than [`MAX_DEPTH`](super::MAX_DEPTH) is refused.

use serde_json::{Map, Value};

use super::MAX_DEPTH;
use super::schema::{Strategy, Type};

mod list;
#[cfg(test)]
mod tests;

pub type Result<T, E = Error> = std::result::Result<T, E>;

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

/// Why a strategic merge patch was refused; kube-apiserver answers each with 400 Bad Request
/// (see [`Error::code`]). `path` is where in the document the problem is, like `.spec.ports`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    #[error("a strategic merge patch must be a JSON object")]
    NotAnObject,
    #[error("unknown $patch directive {directive} at {path}")]
    UnknownPatchDirective { directive: String, path: String },
    #[error("unknown directive {name:?} at {path}")]
    UnknownDirective { name: String, path: String },
    #[error("the list item {item} at {path} has no merge key {key:?}")]
    NoMergeKey {
        item: String,
        key: String,
        path: String,
    },
    #[error("items of the list at {path} must all be objects or all be scalars, and not lists")]
    MixedList { path: String },
    #[error("$retainKeys at {path} must be a list naming every field the patch sets there")]
    RetainKeys { path: String },
    #[error("$setElementOrder/{list} at {path}: {reason}")]
    SetElementOrder {
        list: String,
        path: String,
        reason: String,
    },
    #[error("$deleteFromPrimitiveList/{list} at {path} must be a list")]
    DeleteFromPrimitiveList { list: String, path: String },
    #[error("the strategic merge patch nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

impl Error {
    /// The HTTP status code kube-apiserver uses for this failure.
    pub fn code(&self) -> u16 {
        400
    }
}

/// Applies the strategic merge patch `patch` to `original`, a stored object whose list
/// semantics `schema` describes (from [`schema::for_kind`](super::schema::for_kind); `None`
/// for kinds without metadata, which makes this a JSON merge patch with directives).
pub fn apply(original: &Value, patch: &Value, schema: Option<&'static Type>) -> Result<Value> {
    if super::nests_deeper_than(patch, MAX_DEPTH) {
        return Err(Error::TooDeep);
    }
    let Value::Object(patch) = patch else {
        return Err(Error::NotAnObject);
    };
    let original = match original {
        Value::Object(members) => members.clone(),
        _ => Map::new(),
    };
    let merged = merge_map(original, patch.clone(), schema, "", 0)?;
    Ok(Value::Object(merged))
}

/// Merges `patch` into `original` (both owned: the caller has copied them).
fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    schema: Option<&'static Type>,
    path: &str,
    depth: usize,
) -> Result<Map<String, Value>> {
    if depth > MAX_DEPTH {
        return Err(Error::TooDeep);
    }
    if let Some(directive) = patch.remove(PATCH) {
        match directive.as_str() {
            Some("replace") => return Ok(strip_map(patch)),
            Some("delete") => return Ok(Map::new()),
            Some("merge") => {}
            _ => {
                return Err(Error::UnknownPatchDirective {
                    directive: directive.to_string(),
                    path: display(path),
                });
            }
        }
    }
    retain_keys(&mut original, &mut patch, path)?;
    set_element_order(&mut original, &mut patch, schema, path, depth)?;

    for (name, patch_value) in patch {
        let (name, is_delete_list) = match name.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            Some(list) => (list.to_owned(), true),
            None if name.starts_with('$') => {
                return Err(Error::UnknownDirective {
                    name,
                    path: display(path),
                });
            }
            None => (name, false),
        };
        let field_path = format!("{path}.{name}");
        if is_delete_list && !patch_value.is_array() {
            return Err(Error::DeleteFromPrimitiveList {
                list: name,
                path: display(path),
            });
        }
        if patch_value.is_null() {
            original.remove(&name);
            continue;
        }
        let field = schema.and_then(|schema| schema.field(&name));
        let strategy = field.map_or(Strategy::Default, |field| field.strategy);
        let field_schema = field.and_then(|field| field.schema);
        let merged = match (original.remove(&name), patch_value) {
            (Some(Value::Object(original_value)), Value::Object(patch_value)) => {
                if strategy == Strategy::Replace {
                    Some(Value::Object(strip_map(patch_value)))
                } else {
                    Some(Value::Object(merge_map(
                        original_value,
                        patch_value,
                        field_schema,
                        &field_path,
                        depth + 1,
                    )?))
                }
            }
            (Some(Value::Array(original_value)), Value::Array(patch_value)) => {
                let merge = is_delete_list || matches!(strategy, Strategy::Merge(_));
                Some(Value::Array(if merge {
                    let merge_key = match strategy {
                        Strategy::Merge(merge_key) => merge_key,
                        _ => None,
                    };
                    let list = list::List {
                        merge_key,
                        schema: field_schema,
                        path: &field_path,
                        depth,
                    };
                    list.merge(original_value, patch_value, is_delete_list)?
                } else {
                    strip_list(patch_value)
                }))
            }
            // A delete list only ever changes a list that exists.
            (original_value, _) if is_delete_list => original_value,
            (_, patch_value) => strip(patch_value),
        };
        if let Some(merged) = merged {
            original.insert(name, merged);
        }
    }
    Ok(original)
}

/// `$retainKeys`: drops the original's fields that the list does not name, after checking
/// that the list names every field the patch sets.
fn retain_keys(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    path: &str,
) -> Result<()> {
    let Some(retained) = patch.remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let error = || Error::RetainKeys {
        path: display(path),
    };
    let Value::Array(retained) = retained else {
        return Err(error());
    };
    let is_retained = |name: &str| retained.iter().any(|kept| kept.as_str() == Some(name));
    for (name, value) in patch.iter() {
        let is_directive =
            name.starts_with(SET_ELEMENT_ORDER) || name.starts_with(DELETE_FROM_PRIMITIVE_LIST);
        if !value.is_null() && !is_directive && !is_retained(name) {
            return Err(error());
        }
    }
    original.retain(|name, _| is_retained(name));
    Ok(())
}

/// `$setElementOrder/<list>`: merges each list named by such a directive and puts it in the
/// order the directive gives.
fn set_element_order(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    schema: Option<&'static Type>,
    path: &str,
    depth: usize,
) -> Result<()> {
    let directives: Vec<String> = patch
        .keys()
        .filter(|name| name.starts_with(SET_ELEMENT_ORDER))
        .cloned()
        .collect();
    for directive in directives {
        let Some(order) = patch.remove(&directive) else {
            continue;
        };
        let name = directive.trim_start_matches(SET_ELEMENT_ORDER).to_owned();
        let error = |reason: &str| Error::SetElementOrder {
            list: name.clone(),
            path: display(path),
            reason: reason.into(),
        };
        let Value::Array(order) = order else {
            return Err(error("the directive must be a list"));
        };
        let field = schema.and_then(|schema| schema.field(&name));
        let merge_key = match field.map(|field| field.strategy) {
            Some(Strategy::Merge(merge_key)) => merge_key,
            _ => None,
        };
        let field_path = format!("{path}.{name}");
        let list = list::List {
            merge_key,
            schema: field.and_then(|field| field.schema),
            path: &field_path,
            depth,
        };
        let original_list = match original.get(&name) {
            None => None,
            Some(Value::Array(items)) => Some(items.clone()),
            Some(_) => return Err(error("the field it orders is not a list")),
        };
        let patch_list = match patch.remove(&name) {
            None => None,
            Some(Value::Array(items)) => Some(items),
            Some(_) => return Err(error("the field it orders is not a list in the patch")),
        };
        if let Some(patch_list) = &patch_list {
            list.check_order(patch_list, &order)
                .map_err(|reason| error(&reason))?;
        }
        let merged = match (original_list.clone(), patch_list) {
            (None, None) => continue,
            (Some(original_list), None) => original_list,
            (None, Some(patch_list)) => strip_list(patch_list),
            (Some(original_list), Some(patch_list)) => {
                if field.is_some_and(|field| matches!(field.strategy, Strategy::Merge(_))) {
                    list.merge(original_list, patch_list, false)?
                } else {
                    strip_list(patch_list)
                }
            }
        };
        let ordered = list.order_by(merged, &order, &original_list.unwrap_or_default())?;
        original.insert(name, Value::Array(ordered));
    }
    Ok(())
}

/// A patch value as it enters the result: directives and `null` members removed, objects
/// that carry a `$patch` directive dropped (`None`).
fn strip(value: Value) -> Option<Value> {
    match value {
        Value::Object(members) if members.contains_key(PATCH) => None,
        Value::Object(members) => Some(Value::Object(strip_map(members))),
        Value::Array(items) => Some(Value::Array(strip_list(items))),
        scalar => Some(scalar),
    }
}

fn strip_map(members: Map<String, Value>) -> Map<String, Value> {
    members
        .into_iter()
        .filter(|(name, value)| !name.starts_with('$') && !value.is_null())
        .filter_map(|(name, value)| strip(value).map(|value| (name, value)))
        .collect()
}

fn strip_list(items: Vec<Value>) -> Vec<Value> {
    items.into_iter().filter_map(strip).collect()
}

fn display(path: &str) -> String {
    if path.is_empty() {
        ".".into()
    } else {
        path.into()
    }
}
