//! JSON Patch (RFC 6902, `application/json-patch+json`): a list of `add`, `remove`, `replace`,
//! `move`, `copy` and `test` operations addressed by JSON Pointers (RFC 6901).
//!
//! `kubectl rollout undo` sends one; so does the Python client when `patch_*` gets a list.
//!
//! Invariants:
//! - All or nothing: the operations run on a copy; the first failing one aborts the patch and
//!   the caller's document is never touched.
//! - The whole patch is parsed before anything is applied, so a malformed patch (not a list,
//!   unknown `op`, missing `path`/`value`/`from`, bad pointer syntax) is always
//!   [`Error::Malformed`] (400) and never a half-applied 422.
//! - Errors name the operation (its index, `op` and path) and say why it failed.

use serde_json::Value;

use super::MAX_DEPTH;

#[cfg(test)]
mod tests;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The most operations one patch may hold; kube-apiserver has the same limit.
pub const MAX_OPERATIONS: usize = 10_000;

/// Why a JSON patch was refused. [`Error::code`] gives the HTTP status kube-apiserver answers.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// The body is not a JSON Patch document (400 Bad Request).
    #[error("invalid JSON patch: {0}")]
    Malformed(String),
    /// More than [`MAX_OPERATIONS`] operations (413 Request Entity Too Large).
    #[error("the allowed maximum operations in a JSON patch is {MAX_OPERATIONS}, but found {0}")]
    TooManyOperations(usize),
    /// A well-formed operation could not be applied to this document (422 Unprocessable Entity).
    #[error("JSON patch operation {index} ({op} {path}) failed: {reason}")]
    Failed {
        /// Zero-based position of the operation in the patch.
        index: usize,
        op: &'static str,
        path: String,
        reason: String,
    },
    /// A `test` operation found a different value (422 Unprocessable Entity).
    #[error(
        "JSON patch operation {index} (test {path}) failed: the value at {path} is not {expected}"
    )]
    TestFailed {
        index: usize,
        path: String,
        expected: String,
    },
}

impl Error {
    /// The HTTP status code kube-apiserver uses for this failure.
    pub fn code(&self) -> u16 {
        match self {
            Error::Malformed(_) => 400,
            Error::TooManyOperations(_) => 413,
            Error::Failed { .. } | Error::TestFailed { .. } => 422,
        }
    }
}

/// Applies the JSON patch `patch` (the parsed request body) to `document` and returns the
/// patched copy.
pub fn apply(document: &Value, patch: &Value) -> Result<Value> {
    let operations = parse(patch)?;
    let mut patched = document.clone();
    for (index, operation) in operations.iter().enumerate() {
        operation
            .apply(&mut patched)
            .map_err(|failure| match failure {
                Failure::Test => Error::TestFailed {
                    index,
                    path: operation.path.raw.clone(),
                    expected: abbreviate(operation.value.as_ref()),
                },
                Failure::Other(reason) => Error::Failed {
                    index,
                    op: operation.op.name(),
                    path: operation.path.raw.clone(),
                    reason,
                },
            })?;
    }
    Ok(patched)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Remove,
    Replace,
    Move,
    Copy,
    Test,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Add => "add",
            Op::Remove => "remove",
            Op::Replace => "replace",
            Op::Move => "move",
            Op::Copy => "copy",
            Op::Test => "test",
        }
    }
}

/// A parsed JSON Pointer: the text the client sent and its unescaped reference tokens.
#[derive(Debug, Clone)]
struct Pointer {
    raw: String,
    tokens: Vec<String>,
}

#[derive(Debug)]
struct Operation {
    op: Op,
    path: Pointer,
    from: Option<Pointer>,
    value: Option<Value>,
}

enum Failure {
    Test,
    Other(String),
}

fn parse(patch: &Value) -> Result<Vec<Operation>> {
    let Value::Array(items) = patch else {
        return Err(Error::Malformed(
            "a JSON patch must be a JSON array of operations".into(),
        ));
    };
    if items.len() > MAX_OPERATIONS {
        return Err(Error::TooManyOperations(items.len()));
    }
    items
        .iter()
        .enumerate()
        .map(|(index, item)| parse_operation(index, item))
        .collect()
}

fn parse_operation(index: usize, item: &Value) -> Result<Operation> {
    let malformed = |what: String| Error::Malformed(format!("operation {index}: {what}"));
    let Value::Object(fields) = item else {
        return Err(malformed("must be a JSON object".into()));
    };
    let op = match fields.get("op") {
        Some(Value::String(name)) => match name.as_str() {
            "add" => Op::Add,
            "remove" => Op::Remove,
            "replace" => Op::Replace,
            "move" => Op::Move,
            "copy" => Op::Copy,
            "test" => Op::Test,
            other => return Err(malformed(format!("unknown op {other:?}"))),
        },
        Some(_) => return Err(malformed("\"op\" must be a string".into())),
        None => return Err(malformed("missing \"op\"".into())),
    };
    let pointer = |key: &str| -> Result<Option<Pointer>> {
        match fields.get(key) {
            None => Ok(None),
            Some(Value::String(raw)) => parse_pointer(raw)
                .map(|tokens| {
                    Some(Pointer {
                        raw: raw.clone(),
                        tokens,
                    })
                })
                .map_err(|reason| malformed(format!("{key} {raw:?}: {reason}"))),
            Some(_) => Err(malformed(format!("{:?} must be a string", key))),
        }
    };
    let path =
        pointer("path")?.ok_or_else(|| malformed(format!("{} without \"path\"", op.name())))?;
    let from = pointer("from")?;
    let value = fields.get("value").cloned();
    match op {
        Op::Add | Op::Replace | Op::Test if value.is_none() => {
            return Err(malformed(format!("{} without \"value\"", op.name())));
        }
        Op::Move | Op::Copy if from.is_none() => {
            return Err(malformed(format!("{} without \"from\"", op.name())));
        }
        _ => {}
    }
    Ok(Operation {
        op,
        path,
        from,
        value,
    })
}

/// Splits a JSON Pointer into its reference tokens, undoing the `~1` (`/`) and `~0` (`~`)
/// escapes.
fn parse_pointer(raw: &str) -> Result<Vec<String>, String> {
    if raw.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = raw.strip_prefix('/') else {
        return Err("a JSON pointer must be empty or start with \"/\"".into());
    };
    rest.split('/').map(unescape_token).collect()
}

fn unescape_token(token: &str) -> Result<String, String> {
    let mut unescaped = String::with_capacity(token.len());
    let mut chars = token.chars();
    while let Some(c) = chars.next() {
        if c != '~' {
            unescaped.push(c);
            continue;
        }
        match chars.next() {
            Some('0') => unescaped.push('~'),
            Some('1') => unescaped.push('/'),
            _ => return Err("\"~\" must be followed by \"0\" or \"1\"".into()),
        }
    }
    Ok(unescaped)
}

impl Operation {
    fn apply(&self, document: &mut Value) -> Result<(), Failure> {
        let tokens = &self.path.tokens;
        match self.op {
            Op::Add => add(document, tokens, self.value.clone().unwrap_or(Value::Null)),
            Op::Remove => remove(document, tokens).map(drop),
            Op::Replace => {
                let target = get_mut(document, tokens)?;
                *target = self.value.clone().unwrap_or(Value::Null);
                Ok(())
            }
            Op::Move => {
                let from = self
                    .from
                    .as_ref()
                    .map(|from| &from.tokens[..])
                    .unwrap_or_default();
                if from == &tokens[..] {
                    return Ok(());
                }
                if tokens.starts_with(from) {
                    return Err(Failure::Other(
                        "a value cannot be moved into one of its own children".into(),
                    ));
                }
                let value = remove(document, from)?;
                add(document, tokens, value)
            }
            Op::Copy => {
                let from = self
                    .from
                    .as_ref()
                    .map(|from| &from.tokens[..])
                    .unwrap_or_default();
                let value = get_mut(document, from)?.clone();
                add(document, tokens, value)
            }
            Op::Test => {
                let expected = self.value.as_ref().unwrap_or(&Value::Null);
                let actual = get_mut(document, tokens).map_err(|_| Failure::Test)?;
                if equal(actual, expected, 0) {
                    Ok(())
                } else {
                    Err(Failure::Test)
                }
            }
        }
    }
}

fn missing(tokens: &[String]) -> Failure {
    Failure::Other(format!("no value at {}", display(tokens)))
}

fn display(tokens: &[String]) -> String {
    let escaped: Vec<String> = tokens
        .iter()
        .map(|token| token.replace('~', "~0").replace('/', "~1"))
        .collect();
    format!("/{}", escaped.join("/"))
}

/// Reads an array index: digits only, no leading zeros, below `limit`.
fn array_index(token: &str, limit: usize, tokens: &[String]) -> Result<usize, Failure> {
    let well_formed = !token.is_empty()
        && token.bytes().all(|byte| byte.is_ascii_digit())
        && (token == "0" || !token.starts_with('0'));
    let index = if well_formed {
        token.parse::<usize>().ok()
    } else {
        None
    };
    match index {
        Some(index) if index < limit => Ok(index),
        Some(index) => Err(Failure::Other(format!(
            "index {index} is out of range at {} (the array has {limit} items)",
            display(tokens)
        ))),
        None => Err(Failure::Other(format!(
            "{token:?} is not an array index at {}",
            display(tokens)
        ))),
    }
}

fn get_mut<'a>(document: &'a mut Value, tokens: &[String]) -> Result<&'a mut Value, Failure> {
    let mut current = document;
    for (depth, token) in tokens.iter().enumerate() {
        current = match current {
            Value::Object(map) => map
                .get_mut(token)
                .ok_or_else(|| missing(&tokens[..=depth]))?,
            Value::Array(items) => {
                let index = array_index(token, items.len(), &tokens[..=depth])?;
                items
                    .get_mut(index)
                    .ok_or_else(|| missing(&tokens[..=depth]))?
            }
            _ => return Err(missing(&tokens[..=depth])),
        };
    }
    Ok(current)
}

fn add(document: &mut Value, tokens: &[String], value: Value) -> Result<(), Failure> {
    let Some((last, parent_tokens)) = tokens.split_last() else {
        *document = value;
        return Ok(());
    };
    match get_mut(document, parent_tokens)? {
        Value::Object(map) => {
            map.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(items) => {
            if last == "-" {
                items.push(value);
            } else {
                let index = array_index(last, items.len() + 1, tokens)?;
                items.insert(index, value);
            }
            Ok(())
        }
        _ => Err(Failure::Other(format!(
            "{} is not an object or an array",
            display(parent_tokens)
        ))),
    }
}

fn remove(document: &mut Value, tokens: &[String]) -> Result<Value, Failure> {
    let Some((last, parent_tokens)) = tokens.split_last() else {
        return Err(Failure::Other(
            "the whole document cannot be removed".into(),
        ));
    };
    match get_mut(document, parent_tokens)? {
        Value::Object(map) => map.remove(last).ok_or_else(|| missing(tokens)),
        Value::Array(items) => {
            let index = array_index(last, items.len(), tokens)?;
            Ok(items.remove(index))
        }
        _ => Err(missing(tokens)),
    }
}

/// JSON equality where `1` and `1.0` are the same number.
fn equal(left: &Value, right: &Value, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    match (left, right) {
        (Value::Number(l), Value::Number(r)) => match (l.as_i64(), r.as_i64()) {
            (Some(l), Some(r)) => l == r,
            _ => match (l.as_u64(), r.as_u64()) {
                (Some(l), Some(r)) => l == r,
                _ => l.as_f64() == r.as_f64(),
            },
        },
        (Value::Array(l), Value::Array(r)) => {
            l.len() == r.len() && l.iter().zip(r).all(|(l, r)| equal(l, r, depth + 1))
        }
        (Value::Object(l), Value::Object(r)) => {
            l.len() == r.len()
                && l.iter()
                    .all(|(key, l)| r.get(key).is_some_and(|r| equal(l, r, depth + 1)))
        }
        _ => left == right,
    }
}

/// The expected value of a failed `test`, short enough for an error message.
fn abbreviate(value: Option<&Value>) -> String {
    const LIMIT: usize = 200;
    let text = value.map(Value::to_string).unwrap_or_else(|| "null".into());
    if text.len() <= LIMIT {
        return text;
    }
    let mut end = LIMIT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}
