//! Merging of lists with strategy `merge` for the strategic merge patch, and the ordering
//! rules kube-apiserver applies to the merged list.
//!
//! Invariants: elements that came from the patch keep the patch's (or `$setElementOrder`'s)
//! relative order, elements only in the live object keep the live order, and the two are
//! interleaved by their live positions; a list of scalars never holds a value twice after a
//! merge.

use serde_json::{Map, Value};

use super::{Error, PATCH, Result, merge_map, strip, strip_list};
use crate::patch::schema::Type;

/// A list field being merged: its merge key (none for scalars), the schema of its elements
/// and where it is, for error messages.
pub(super) struct List<'a> {
    pub merge_key: Option<&'static str>,
    pub schema: Option<&'static Type>,
    pub path: &'a str,
    pub depth: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Objects,
    Scalars,
}

impl List<'_> {
    /// Merges `patch` into `original`. With `is_delete_list` the patch is a
    /// `$deleteFromPrimitiveList` whose values are removed instead.
    pub fn merge(
        &self,
        original: Vec<Value>,
        patch: Vec<Value>,
        is_delete_list: bool,
    ) -> Result<Vec<Value>> {
        match self.kind(&[&original, &patch])? {
            None => Ok(original),
            Some(Kind::Scalars) if is_delete_list => Ok(original
                .into_iter()
                .filter(|item| !patch.iter().any(|deleted| same(item, deleted)))
                .collect()),
            Some(Kind::Scalars) => {
                let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
                for item in original.iter().chain(&patch) {
                    if !merged.iter().any(|kept| same(kept, item)) {
                        merged.push(item.clone());
                    }
                }
                self.normalize(merged, &patch, &original)
            }
            Some(Kind::Objects) if is_delete_list => Err(Error::DeleteFromPrimitiveList {
                list: self.name(),
                path: self.parent(),
            }),
            Some(Kind::Objects) => self.merge_objects(original, patch),
        }
    }

    fn merge_objects(&self, mut original: Vec<Value>, patch: Vec<Value>) -> Result<Vec<Value>> {
        let Some(key) = self.merge_key else {
            return Err(Error::MixedList {
                path: self.path.into(),
            });
        };
        let mut rest = Vec::with_capacity(patch.len());
        let mut replace = false;
        for item in patch {
            let Value::Object(mut members) = item else {
                continue;
            };
            match members.remove(PATCH) {
                None => rest.push(members),
                Some(directive) => match directive.as_str() {
                    Some("delete") => {
                        let value = self.key_value(&members, key)?;
                        original
                            .retain(|kept| !kept.get(key).is_some_and(|kept| same(kept, &value)));
                    }
                    Some("replace") => replace = true,
                    Some("merge") => {}
                    _ => {
                        return Err(Error::UnknownPatchDirective {
                            directive: directive.to_string(),
                            path: self.path.into(),
                        });
                    }
                },
            }
        }
        if replace {
            return Ok(strip_list(rest.into_iter().map(Value::Object).collect()));
        }
        let server_order = original.clone();
        let patch_order: Vec<Value> = rest
            .iter()
            .map(|members| Value::Object(members.clone()))
            .collect();
        for members in rest {
            let value = self.key_value(&members, key)?;
            let position = original
                .iter()
                .position(|kept| kept.get(key).is_some_and(|kept| same(kept, &value)));
            match position
                .and_then(|position| original.get_mut(position).map(|kept| (position, kept)))
            {
                Some((_, Value::Object(kept))) => {
                    let item_path = format!("{}[{key}={value}]", self.path);
                    let merged = merge_map(
                        std::mem::take(kept),
                        members,
                        self.schema,
                        &item_path,
                        self.depth + 1,
                    )?;
                    *kept = merged;
                }
                Some((position, _)) => {
                    if let (Some(slot), Some(value)) =
                        (original.get_mut(position), strip(Value::Object(members)))
                    {
                        *slot = value;
                    }
                }
                None => original.extend(strip(Value::Object(members))),
            }
        }
        self.normalize(original, &patch_order, &server_order)
    }

    /// Checks that the patch list's elements appear in the same relative order as in the
    /// `$setElementOrder` list `order`, and only elements it names.
    pub fn check_order(&self, patch: &[Value], order: &[Value]) -> Result<(), String> {
        let mismatch = || "the order of the patch list does not match the directive".to_owned();
        let mut order_index = 0;
        for item in patch {
            if item.get(PATCH).is_some() {
                continue;
            }
            loop {
                let Some(ordered) = order.get(order_index) else {
                    return Err(mismatch());
                };
                order_index += 1;
                if self.same_element(item, ordered) {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Orders the merged list by a `$setElementOrder` list: elements it names in its order,
    /// the others where the live list (`server_order`) had them.
    pub fn order_by(
        &self,
        merged: Vec<Value>,
        order: &[Value],
        server_order: &[Value],
    ) -> Result<Vec<Value>> {
        if self.merge_key.is_none() && self.kind(&[&merged])? == Some(Kind::Objects) {
            return Ok(merged);
        }
        self.normalize(merged, order, server_order)
    }

    /// Splits `merged` into the elements named by `patch_order` and the rest, sorts each by
    /// its order list and interleaves them.
    fn normalize(
        &self,
        merged: Vec<Value>,
        patch_order: &[Value],
        server_order: &[Value],
    ) -> Result<Vec<Value>> {
        let (mut from_patch, mut server_only): (Vec<Value>, Vec<Value>) = merged
            .into_iter()
            .partition(|item| self.index(patch_order, item).is_some());
        from_patch.sort_by_key(|item| self.index(patch_order, item).unwrap_or(usize::MAX));
        server_only.sort_by_key(|item| self.index(server_order, item).unwrap_or(usize::MAX));

        let mut result = Vec::with_capacity(from_patch.len() + server_only.len());
        let mut left = server_only.into_iter().peekable();
        let mut right = from_patch.into_iter().peekable();
        loop {
            let take_left = match (left.peek(), right.peek()) {
                (None, None) => break,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some(l), Some(r)) => {
                    match (self.index(server_order, l), self.index(server_order, r)) {
                        (Some(li), Some(ri)) => li < ri,
                        _ => false,
                    }
                }
            };
            let next = if take_left { left.next() } else { right.next() };
            result.extend(next);
        }
        Ok(result)
    }

    /// Position of the first element of `list` that is the same element as `item`.
    fn index(&self, list: &[Value], item: &Value) -> Option<usize> {
        list.iter()
            .position(|candidate| self.same_element(candidate, item))
    }

    fn same_element(&self, left: &Value, right: &Value) -> bool {
        match self.merge_key {
            Some(key) => match (left.get(key), right.get(key)) {
                (Some(left), Some(right)) => same(left, right),
                _ => false,
            },
            None => same(left, right),
        }
    }

    fn key_value(&self, members: &Map<String, Value>, key: &str) -> Result<Value> {
        members.get(key).cloned().ok_or_else(|| Error::NoMergeKey {
            item: abbreviate(&Value::Object(members.clone())),
            key: key.into(),
            path: self.path.into(),
        })
    }

    fn kind(&self, lists: &[&[Value]]) -> Result<Option<Kind>> {
        let mut kind = None;
        for item in lists.iter().flat_map(|list| list.iter()) {
            let item_kind = match item {
                Value::Object(_) => Kind::Objects,
                Value::Array(_) => {
                    return Err(Error::MixedList {
                        path: self.path.into(),
                    });
                }
                _ => Kind::Scalars,
            };
            if kind.is_some_and(|kind| kind != item_kind) {
                return Err(Error::MixedList {
                    path: self.path.into(),
                });
            }
            kind = Some(item_kind);
        }
        Ok(kind)
    }

    fn name(&self) -> String {
        self.path.rsplit('.').next().unwrap_or_default().to_owned()
    }

    fn parent(&self) -> String {
        match self.path.rsplit_once('.') {
            Some((parent, _)) if !parent.is_empty() => parent.to_owned(),
            _ => ".".into(),
        }
    }
}

/// JSON equality where `80` and `80.0` are the same number.
fn same(left: &Value, right: &Value) -> bool {
    match (left, right) {
        (Value::Number(l), Value::Number(r)) => match (l.as_i64(), r.as_i64()) {
            (Some(l), Some(r)) => l == r,
            _ => l.as_f64() == r.as_f64(),
        },
        _ => left == right,
    }
}

fn abbreviate(value: &Value) -> String {
    const LIMIT: usize = 120;
    let text = value.to_string();
    if text.len() <= LIMIT {
        return text;
    }
    let mut end = LIMIT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}
