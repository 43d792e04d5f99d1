//! JSON Merge Patch (RFC 7386, `application/merge-patch+json`): objects merge recursively,
//! `null` deletes a member, anything else (arrays included) replaces the target value.
//!
//! `kubectl label`, `annotate` and `scale` send these; so does kube-rs' `Patch::Merge`. The
//! strategic merge patch falls back to the same rules wherever it knows no list semantics.
//!
//! Invariants: the target is never modified (a new value is returned); `null` members of a
//! patch never reach the result, even inside newly added objects; nesting deeper than
//! [`MAX_DEPTH`](super::MAX_DEPTH) is refused.

use serde_json::{Map, Value};

use super::MAX_DEPTH;

#[cfg(test)]
mod tests;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a merge patch was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// The patch nests deeper than [`MAX_DEPTH`](super::MAX_DEPTH) (400 Bad Request).
    #[error("the merge patch nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

/// Applies the merge patch `patch` to `target` and returns the result.
pub fn apply(target: &Value, patch: &Value) -> Result<Value> {
    merge(Some(target), patch, 0)
}

fn merge(target: Option<&Value>, patch: &Value, depth: usize) -> Result<Value> {
    if depth > MAX_DEPTH {
        return Err(Error::TooDeep);
    }
    let Value::Object(patch_members) = patch else {
        return Ok(patch.clone());
    };
    let mut merged = match target {
        Some(Value::Object(members)) => members.clone(),
        _ => Map::new(),
    };
    for (name, value) in patch_members {
        if value.is_null() {
            merged.remove(name);
            continue;
        }
        let result = merge(merged.get(name), value, depth + 1)?;
        merged.insert(name.clone(), result);
    }
    Ok(Value::Object(merged))
}
