//! The structural operations of server-side apply over JSON objects and their list semantics
//! (from `patch::schema`): the set of fields a value sets, merging an applied configuration
//! into a live object, comparing two objects field by field, and removing fields.
//!
//! Invariants: list maps are matched by their key fields (with the key's default when an
//! element omits it), sets by value, everything else is atomic; merged list maps keep the
//! order structured-merge-diff gives (the applied order for applied elements, live-only
//! elements where they were); recursion is bounded by the caller's depth limit.

use serde_json::{Map, Value};

use super::{Error, MAX_DEPTH, Result};
use crate::managed_fields::{FieldSet, Path, display, field};
use crate::patch::schema::{Key, ListType, Type};

/// What is known about the value at one path.
#[derive(Debug, Clone, Copy)]
pub(super) struct Shape {
    pub schema: Option<&'static Type>,
    pub list: ListType,
    pub atomic: bool,
}

impl Shape {
    pub fn root(schema: &'static Type) -> Shape {
        Shape {
            schema: Some(schema),
            list: ListType::Atomic,
            atomic: false,
        }
    }

    fn child(self, name: &str) -> Shape {
        let field = self.schema.and_then(|schema| schema.field(name));
        let schema = field.and_then(|field| field.schema);
        Shape {
            schema,
            list: field.map_or(ListType::Atomic, |field| field.list_type),
            atomic: schema.is_some_and(|schema| schema.atomic),
        }
    }

    fn item(self) -> Shape {
        Shape {
            schema: self.schema,
            list: ListType::Atomic,
            atomic: self.schema.is_some_and(|schema| schema.atomic),
        }
    }
}

/// The path element of a list element: `k:{...}` for list maps, `v:...` for sets.
fn element(item: &Value, list: ListType, path: &Path) -> Result<String> {
    match list {
        ListType::Set => Ok(format!("v:{item}")),
        ListType::Map(keys) => {
            let Value::Object(members) = item else {
                return Err(invalid(path, "elements of this list must be objects"));
            };
            let mut key_values = Map::new();
            for Key { name, default } in keys {
                let value = match (members.get(*name), default) {
                    (Some(value), _) if !value.is_null() => value.clone(),
                    (_, Some(default)) => Value::String((*default).into()),
                    _ => {
                        return Err(invalid(
                            path,
                            &format!(
                                "associative list with keys has an element that omits key field {name:?}"
                            ),
                        ));
                    }
                };
                key_values.insert((*name).into(), value);
            }
            Ok(format!("k:{}", Value::Object(key_values)))
        }
        ListType::Atomic => Err(invalid(path, "an atomic list has no element keys")),
    }
}

fn invalid(path: &Path, reason: &str) -> Error {
    let at = if path.is_empty() {
        ".".to_owned()
    } else {
        display(path)
    };
    Error::Invalid {
        path: at,
        reason: reason.into(),
    }
}

/// The elements of a granular list, keyed; `Err` if an element has no key. With
/// `allow_duplicates` (live objects) the first of equal elements wins; otherwise a duplicate
/// is an error.
fn index<'a>(
    items: &'a [Value],
    shape: Shape,
    path: &Path,
    allow_duplicates: bool,
) -> Result<Vec<(String, &'a Value)>> {
    let mut indexed: Vec<(String, &Value)> = Vec::with_capacity(items.len());
    for item in items {
        let key = element(item, shape.list, path)?;
        if indexed.iter().any(|(seen, _)| *seen == key) {
            if allow_duplicates {
                continue;
            }
            return Err(invalid(
                path,
                &format!("duplicate entries for key {}", display(&vec![key])),
            ));
        }
        indexed.push((key, item));
    }
    Ok(indexed)
}

fn granular(shape: Shape) -> bool {
    matches!(shape.list, ListType::Set | ListType::Map(_))
}

/// Adds to `set` every field `value` sets (structured-merge-diff's `ToFieldSet`): leaves,
/// atomic values, empty objects, and the elements of list maps and sets.
pub(super) fn to_set(
    value: &Value,
    shape: Shape,
    path: &mut Path,
    set: &mut FieldSet,
) -> Result<()> {
    if path.len() > MAX_DEPTH {
        return Err(Error::TooDeep);
    }
    match value {
        Value::Object(members) if !shape.atomic => {
            for (name, child) in members {
                path.push(field(name));
                let is_leaf_object = child.as_object().is_some_and(Map::is_empty);
                if child.is_null() || is_leaf_object {
                    set.insert(path.clone());
                } else {
                    to_set(child, shape.child(name), path, set)?;
                }
                path.pop();
            }
        }
        Value::Array(items) if granular(shape) => {
            for (key, item) in index(items, shape, path, false)? {
                path.push(key);
                set.insert(path.clone());
                if matches!(shape.list, ListType::Map(_)) {
                    to_set(item, shape.item(), path, set)?;
                }
                path.pop();
            }
        }
        _ => set.insert(path.clone()),
    }
    Ok(())
}

/// Merges the applied `config` into `live` (structured-merge-diff's `Merge`): objects field by
/// field, list maps and sets element by element, everything else replaced. `None` means the
/// field is absent (an applied `null` removes it).
pub(super) fn merge(
    live: Option<&Value>,
    config: &Value,
    shape: Shape,
    path: &mut Path,
) -> Result<Option<Value>> {
    if path.len() > MAX_DEPTH {
        return Err(Error::TooDeep);
    }
    match (live, config) {
        (_, Value::Null) => Ok(None),
        (live, Value::Object(config)) if !shape.atomic => {
            let mut merged = match live {
                Some(Value::Object(live)) => live.clone(),
                _ => Map::new(),
            };
            for (name, child) in config {
                path.push(field(name));
                match merge(merged.get(name), child, shape.child(name), path)? {
                    Some(value) => merged.insert(name.clone(), value),
                    None => merged.remove(name),
                };
                path.pop();
            }
            Ok(Some(Value::Object(merged)))
        }
        (Some(Value::Array(live)), Value::Array(config)) if granular(shape) => {
            let config = index(config, shape, path, false)?;
            let Ok(live) = index(live, shape, path, true) else {
                // A live list that is not a valid list map is replaced whole.
                return Ok(Some(Value::Array(
                    config.into_iter().map(|(_, item)| item.clone()).collect(),
                )));
            };
            merge_list(&live, &config, shape, path).map(|items| Some(Value::Array(items)))
        }
        (_, Value::Array(config)) if granular(shape) => {
            index(config, shape, path, false)?;
            Ok(Some(Value::Array(config.clone())))
        }
        _ => Ok(Some(config.clone())),
    }
}

/// The list order structured-merge-diff produces: applied elements in applied order, live-only
/// elements kept where they were relative to the shared ones.
fn merge_list(
    live: &[(String, &Value)],
    config: &[(String, &Value)],
    shape: Shape,
    path: &mut Path,
) -> Result<Vec<Value>> {
    let in_config = |key: &str| config.iter().find(|(k, _)| k == key).map(|(_, item)| *item);
    let in_live = |key: &str| live.iter().find(|(k, _)| k == key).map(|(_, item)| *item);
    let mut shared = config
        .iter()
        .filter(|(key, _)| in_live(key).is_some())
        .map(|(key, _)| key.as_str());
    let mut next_shared = shared.next();
    let mut merged_keys: Vec<&str> = Vec::new();
    let mut out = Vec::with_capacity(live.len().max(config.len()));
    let (mut l, mut r) = (0, 0);
    let merge_item = |key: &str, path: &mut Path| -> Result<Option<Value>> {
        let item = in_config(key).unwrap_or(&Value::Null);
        path.push(key.to_owned());
        let merged = if matches!(shape.list, ListType::Map(_)) {
            merge(in_live(key), item, shape.item(), path)?
        } else {
            Some(item.clone())
        };
        path.pop();
        Ok(merged)
    };
    while l < live.len() || r < config.len() {
        if let (Some((live_key, _)), Some((config_key, _))) = (live.get(l), config.get(r)) {
            if live_key == config_key {
                merged_keys.push(config_key);
                out.extend(merge_item(config_key, path)?);
                l += 1;
                r += 1;
                next_shared = shared.next();
                continue;
            }
            if in_config(live_key).is_some() && next_shared.is_some_and(|next| next != live_key) {
                l += 1;
                continue;
            }
        }
        if let Some((live_key, live_item)) = live.get(l) {
            if in_config(live_key).is_none() {
                out.push((*live_item).clone());
                l += 1;
                continue;
            } else if merged_keys.contains(&live_key.as_str()) {
                l += 1;
            }
        }
        if let Some((config_key, _)) = config.get(r) {
            merged_keys.push(config_key);
            out.extend(merge_item(config_key, path)?);
            r += 1;
            if next_shared == Some(config_key.as_str()) {
                next_shared = shared.next();
            }
        }
    }
    Ok(out)
}

/// Field-level differences between two versions of an object.
#[derive(Debug, Default)]
pub(super) struct Comparison {
    pub added: FieldSet,
    pub modified: FieldSet,
    pub removed: FieldSet,
}

/// Compares `old` with `new` (structured-merge-diff's `Compare`): leaves and atomic values
/// that appeared, changed or disappeared, plus the objects and list elements that appeared or
/// disappeared whole.
pub(super) fn compare(
    old: Option<&Value>,
    new: Option<&Value>,
    shape: Shape,
    path: &mut Path,
    out: &mut Comparison,
) {
    if path.len() > MAX_DEPTH {
        return;
    }
    let empty = |value: Option<&Value>| match value {
        None => true,
        Some(Value::Object(members)) => members.is_empty(),
        Some(Value::Array(items)) => items.is_empty(),
        Some(_) => false,
    };
    let is_object = |value: Option<&Value>| value.is_none_or(Value::is_object);
    let is_array = |value: Option<&Value>| value.is_none_or(Value::is_array);
    let structured = !(shape.atomic || empty(old) && empty(new));
    if structured && is_object(old) && is_object(new) {
        let no_members = Map::new();
        let old_members = old.and_then(Value::as_object).unwrap_or(&no_members);
        let new_members = new.and_then(Value::as_object).unwrap_or(&no_members);
        for name in old_members.keys().chain(
            new_members
                .keys()
                .filter(|name| !old_members.contains_key(*name)),
        ) {
            path.push(field(name));
            compare(
                old_members.get(name),
                new_members.get(name),
                shape.child(name),
                path,
                out,
            );
            path.pop();
        }
    } else if structured && granular(shape) && is_array(old) && is_array(new) {
        let no_items = Vec::new();
        let old_items = old.and_then(Value::as_array).unwrap_or(&no_items);
        let new_items = new.and_then(Value::as_array).unwrap_or(&no_items);
        match (
            index(old_items, shape, path, true),
            index(new_items, shape, path, true),
        ) {
            (Ok(old_items), Ok(new_items)) => {
                let keys = old_items.iter().map(|(key, _)| key).chain(
                    new_items
                        .iter()
                        .map(|(key, _)| key)
                        .filter(|key| find(&old_items, key).is_none()),
                );
                for key in keys {
                    path.push(key.clone());
                    let (old_item, new_item) = (find(&old_items, key), find(&new_items, key));
                    if matches!(shape.list, ListType::Map(_)) {
                        compare(old_item, new_item, shape.item(), path, out);
                    } else {
                        leaf(old_item, new_item, path, out);
                    }
                    path.pop();
                }
            }
            _ => leaf(old, new, path, out),
        }
        return;
    } else {
        leaf(old, new, path, out);
        return;
    }
    if !path.is_empty() {
        match (old, new) {
            (None, Some(_)) => out.added.insert(path.clone()),
            (Some(_), None) => out.removed.insert(path.clone()),
            _ => {}
        }
    }
}

fn find<'a>(items: &[(String, &'a Value)], key: &str) -> Option<&'a Value> {
    items.iter().find(|(k, _)| k == key).map(|(_, item)| *item)
}

fn leaf(old: Option<&Value>, new: Option<&Value>, path: &Path, out: &mut Comparison) {
    match (old, new) {
        (None, Some(_)) => out.added.insert(path.clone()),
        (Some(_), None) => out.removed.insert(path.clone()),
        (Some(old), Some(new)) if old != new => out.modified.insert(path.clone()),
        _ => {}
    }
}

/// Removes the field or list element at `path` from `value`, and any object or list that
/// becomes empty because of it. Paths that do not resolve are ignored.
pub(super) fn remove(value: &mut Value, path: &[String], shape: Shape) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    match value {
        Value::Object(members) => {
            let Some(name) = first.strip_prefix("f:") else {
                return;
            };
            if rest.is_empty() {
                members.remove(name);
                return;
            }
            let child_shape = shape.child(name);
            if let Some(child) = members.get_mut(name) {
                remove(child, rest, child_shape);
                if is_empty_container(child) {
                    members.remove(name);
                }
            }
        }
        Value::Array(items) if granular(shape) => {
            let Some(position) = items.iter().position(|item| {
                element(item, shape.list, &Vec::new()).is_ok_and(|key| key == *first)
            }) else {
                return;
            };
            if rest.is_empty() {
                items.remove(position);
            } else if let Some(item) = items.get_mut(position) {
                remove(item, rest, shape.item());
            }
        }
        _ => {}
    }
}

fn is_empty_container(value: &Value) -> bool {
    match value {
        Value::Object(members) => members.is_empty(),
        Value::Array(items) => items.is_empty(),
        _ => false,
    }
}
