//! Conversion of encoded protobuf messages to the JSON of the Kubernetes API, field by field
//! from the generated schema, with the types whose JSON form differs from their protobuf form
//! (`Time`, `IntOrString`, `Quantity`, raw JSON, ...) converted by hand.
//!
//! Invariants: see the parent module: zero scalars follow Go's `omitempty`; errors carry the
//! JSON path of the offending field; recursion is bounded by `MAX_DEPTH`.

use base64::Engine as _;
use serde_json::{Map, Number, Value};

use super::schema::{self, Field, Kind, Message};
use super::wire::{self, Reader};
use super::{Error, KEEP_ZERO, MAX_DEPTH, Result, format};

/// The `runtime.Unknown` envelope of a request body.
pub(super) struct Unknown<'a> {
    pub api_version: String,
    pub kind: String,
    pub raw: &'a [u8],
    pub content_encoding: String,
    pub content_type: String,
}

/// Reads the `runtime.Unknown` envelope: typeMeta (1), raw (2), contentEncoding (3),
/// contentType (4).
pub(super) fn unknown(bytes: &[u8]) -> Result<Unknown<'_>> {
    let mut unknown = Unknown {
        api_version: String::new(),
        kind: String::new(),
        raw: &[],
        content_encoding: String::new(),
        content_type: String::new(),
    };
    for field in Reader::new(bytes) {
        let (tag, value) = field.map_err(|reason| malformed("the envelope", reason))?;
        match (tag, value) {
            (1, wire::Value::Bytes(type_meta)) => {
                for field in Reader::new(type_meta) {
                    let (tag, value) =
                        field.map_err(|reason| malformed("the envelope's typeMeta", reason))?;
                    match (tag, value) {
                        (1, wire::Value::Bytes(text)) => {
                            unknown.api_version = utf8(text, "typeMeta.apiVersion")?
                        }
                        (2, wire::Value::Bytes(text)) => {
                            unknown.kind = utf8(text, "typeMeta.kind")?
                        }
                        _ => {}
                    }
                }
            }
            (2, wire::Value::Bytes(raw)) => unknown.raw = raw,
            (3, wire::Value::Bytes(text)) => {
                unknown.content_encoding = utf8(text, "contentEncoding")?
            }
            (4, wire::Value::Bytes(text)) => unknown.content_type = utf8(text, "contentType")?,
            (1..=4, other) => {
                return Err(malformed(
                    "the envelope",
                    format!("field {tag} has wire type {}", other.wire_type()),
                ));
            }
            _ => {}
        }
    }
    Ok(unknown)
}

/// Converts one encoded `message` at JSON path `path`; `None` means "leave the field out"
/// (a zero time, an empty raw extension).
pub(super) fn message(
    bytes: &[u8],
    message: &'static Message,
    path: &str,
    depth: usize,
) -> Result<Option<Value>> {
    if depth > MAX_DEPTH {
        return Err(Error::TooDeep);
    }
    if let Some(special) = special(bytes, message, path, depth)? {
        return Ok(special);
    }
    let mut object = Map::new();
    for entry in Reader::new(bytes) {
        let (tag, value) = entry.map_err(|reason| malformed(path, reason))?;
        let Some(field) = message.field(tag) else {
            continue;
        };
        let field_path = || format!("{path}.{}", field.name);
        match field.kind {
            Kind::MapOfStrings | Kind::MapOfBytes | Kind::MapOfMessages(_) => {
                let wire::Value::Bytes(entry) = value else {
                    return Err(wrong_wire_type(&field_path(), value));
                };
                let (key, value) = map_entry(entry, field, &field_path(), depth)?;
                let slot = object
                    .entry(field.name)
                    .or_insert_with(|| Value::Object(Map::new()));
                if let (Value::Object(map), Some(value)) = (slot, value) {
                    map.insert(key, value);
                }
            }
            _ if field.repeated => {
                let values = repeated(value, field, &field_path(), depth)?;
                let slot = object
                    .entry(field.name)
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(items) = slot {
                    items.extend(values);
                }
            }
            _ if field.inline => {
                if let Some(Value::Object(members)) = single(value, field.kind, path, depth)? {
                    object.extend(members);
                }
            }
            _ => match single(value, field.kind, &field_path(), depth)? {
                Some(value) if keep(field, &value) => {
                    object.insert(field.name.into(), value);
                }
                _ => {
                    object.remove(field.name);
                }
            },
        }
    }
    Ok(Some(Value::Object(object)))
}

/// Go's `omitempty` for a scalar: zero values are left out unless required or in [`KEEP_ZERO`].
/// Values of messages (an `IntOrString` of 0, an empty object) are always kept.
fn keep(field: &Field, value: &Value) -> bool {
    if matches!(field.kind, Kind::Message(_)) {
        return true;
    }
    let is_zero = match value {
        Value::String(text) => text.is_empty(),
        Value::Bool(flag) => !flag,
        Value::Number(number) => number.as_f64() == Some(0.0),
        _ => false,
    };
    !is_zero || field.required || KEEP_ZERO.contains(&field.name)
}

fn single(value: wire::Value<'_>, kind: Kind, path: &str, depth: usize) -> Result<Option<Value>> {
    let converted = match (kind, value) {
        (Kind::String, wire::Value::Bytes(text)) => Value::String(utf8(text, path)?),
        (Kind::Bytes, wire::Value::Bytes(bytes)) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
        (Kind::Int32, wire::Value::Varint(number)) => Value::from(number as i64 as i32),
        (Kind::Int64, wire::Value::Varint(number)) => Value::from(number as i64),
        (Kind::Bool, wire::Value::Varint(number)) => Value::Bool(number != 0),
        (Kind::Double, wire::Value::Fixed64(bits)) => Number::from_f64(f64::from_bits(bits))
            .map(Value::Number)
            .ok_or_else(|| invalid(path, "not a finite number"))?,
        (Kind::Message(index), wire::Value::Bytes(bytes)) => {
            let message_type =
                schema::by_index(index).ok_or_else(|| invalid(path, "unknown message type"))?;
            return message(bytes, message_type, path, depth + 1);
        }
        (_, value) => return Err(wrong_wire_type(path, value)),
    };
    Ok(Some(converted))
}

/// The values of one occurrence of a repeated field: one value, or several when packed.
fn repeated(value: wire::Value<'_>, field: &Field, path: &str, depth: usize) -> Result<Vec<Value>> {
    let packable = matches!(
        field.kind,
        Kind::Int32 | Kind::Int64 | Kind::Bool | Kind::Double
    );
    let wire::Value::Bytes(packed) = value else {
        return Ok(single(value, field.kind, path, depth)?
            .into_iter()
            .collect());
    };
    if !packable {
        return Ok(single(value, field.kind, path, depth)?
            .into_iter()
            .collect());
    }
    let mut values = Vec::new();
    let mut reader = Reader::new(packed);
    while !reader.is_empty() {
        let element = if field.kind == Kind::Double {
            let bits = packed_fixed64(&mut reader).map_err(|reason| malformed(path, reason))?;
            wire::Value::Fixed64(bits)
        } else {
            wire::Value::Varint(reader.varint().map_err(|reason| malformed(path, reason))?)
        };
        values.extend(single(element, field.kind, path, depth)?);
    }
    Ok(values)
}

fn packed_fixed64(reader: &mut Reader<'_>) -> Result<u64, String> {
    let mut bits = 0u64;
    for index in 0..8 {
        let byte = reader
            .next_byte()
            .ok_or_else(|| "truncated packed double".to_owned())?;
        bits |= u64::from(byte) << (8 * index);
    }
    Ok(bits)
}

/// One map entry: key (1, a string) and value (2).
fn map_entry(
    entry: &[u8],
    field: &Field,
    path: &str,
    depth: usize,
) -> Result<(String, Option<Value>)> {
    let mut key = String::new();
    let mut entry_value = None;
    for item in Reader::new(entry) {
        let (tag, value) = item.map_err(|reason| malformed(path, reason))?;
        match (tag, value) {
            (1, wire::Value::Bytes(text)) => key = utf8(text, path)?,
            (2, value) => entry_value = Some(value),
            (1, value) => return Err(wrong_wire_type(path, value)),
            _ => {}
        }
    }
    let value_kind = match field.kind {
        Kind::MapOfStrings => Kind::String,
        Kind::MapOfBytes => Kind::Bytes,
        Kind::MapOfMessages(index) => Kind::Message(index),
        other => other,
    };
    let entry_path = format!("{path}[{key:?}]");
    let value = match entry_value {
        Some(value) => single(value, value_kind, &entry_path, depth)?,
        None => single(wire::Value::Bytes(&[]), value_kind, &entry_path, depth)?,
    };
    Ok((key, value))
}

/// The messages whose JSON form is not an object of their fields.
fn special(
    bytes: &[u8],
    message: &'static Message,
    path: &str,
    depth: usize,
) -> Result<Option<Option<Value>>> {
    let type_name = message.name.rsplit('.').next().unwrap_or_default();
    let package = message.name.strip_suffix(type_name).unwrap_or_default();
    let converted = match (package, type_name) {
        ("apimachinery.pkg.apis.meta.v1.", "time") => {
            let fields = scalars(bytes, path)?;
            (!bytes.is_empty())
                .then(|| {
                    format::time(fields.int(1), 0, false)
                        .map(Value::String)
                        .ok_or_else(|| invalid(path, "time out of range"))
                })
                .transpose()?
        }
        ("apimachinery.pkg.apis.meta.v1.", "microtime") => {
            let fields = scalars(bytes, path)?;
            (!bytes.is_empty())
                .then(|| {
                    format::time(fields.int(1), fields.int(2), true)
                        .map(Value::String)
                        .ok_or_else(|| invalid(path, "time out of range"))
                })
                .transpose()?
        }
        ("apimachinery.pkg.apis.meta.v1.", "duration") => Some(Value::String(format::go_duration(
            scalars(bytes, path)?.int(1),
        ))),
        ("apimachinery.pkg.util.intstr.", "intorstring") => {
            let fields = scalars(bytes, path)?;
            Some(if fields.int(1) == 1 {
                Value::String(fields.text(3, path)?)
            } else {
                Value::from(fields.int(2) as i32)
            })
        }
        ("apimachinery.pkg.api.resource.", "quantity") => {
            let text = scalars(bytes, path)?.text(1, path)?;
            Some(Value::String(if text.is_empty() {
                "0".into()
            } else {
                text
            }))
        }
        ("apimachinery.pkg.runtime.", "rawextension")
        | ("apimachinery.pkg.apis.meta.v1.", "fieldsv1")
        | ("apiextensions_apiserver.pkg.apis.apiextensions.v1.", "json") => {
            let raw = scalars(bytes, path)?.bytes(1);
            if raw.is_empty() {
                None
            } else {
                Some(serde_json::from_slice(raw).map_err(|error| {
                    invalid(path, &format!("the embedded JSON is invalid: {error}"))
                })?)
            }
        }
        ("apimachinery.pkg.apis.meta.v1.", "verbs") | (_, "extravalue") => {
            let fields = scalars(bytes, path)?;
            let items: Result<Vec<Value>> = fields
                .all(1)
                .iter()
                .map(|item| utf8(item, path).map(Value::String))
                .collect();
            Some(Value::Array(items?))
        }
        ("apiextensions_apiserver.pkg.apis.apiextensions.v1.", "jsonschemapropsorbool") => {
            let fields = scalars(bytes, path)?;
            match fields.all(2).first() {
                Some(schema) => props(schema, package, path, depth)?,
                None => Some(Value::Bool(fields.int(1) != 0)),
            }
        }
        ("apiextensions_apiserver.pkg.apis.apiextensions.v1.", "jsonschemapropsorarray") => {
            let fields = scalars(bytes, path)?;
            if fields.all(2).is_empty() {
                fields
                    .all(1)
                    .first()
                    .map(|schema| props(schema, package, path, depth))
                    .transpose()?
                    .flatten()
            } else {
                let items: Result<Vec<Value>> = fields
                    .all(2)
                    .iter()
                    .map(|schema| Ok(props(schema, package, path, depth)?.unwrap_or(Value::Null)))
                    .collect();
                Some(Value::Array(items?))
            }
        }
        ("apiextensions_apiserver.pkg.apis.apiextensions.v1.", "jsonschemapropsorstringarray") => {
            let fields = scalars(bytes, path)?;
            if fields.all(2).is_empty() {
                fields
                    .all(1)
                    .first()
                    .map(|schema| props(schema, package, path, depth))
                    .transpose()?
                    .flatten()
            } else {
                let items: Result<Vec<Value>> = fields
                    .all(2)
                    .iter()
                    .map(|item| utf8(item, path).map(Value::String))
                    .collect();
                Some(Value::Array(items?))
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(converted))
}

/// A `JSONSchemaProps` nested in one of the custom resource schema unions.
fn props(bytes: &[u8], package: &str, path: &str, depth: usize) -> Result<Option<Value>> {
    let props = schema::message(&format!("{package}jsonschemaprops"))
        .ok_or_else(|| invalid(path, "no JSONSchemaProps"))?;
    message(bytes, props, path, depth + 1)
}

/// The fields of a small special message, by tag.
struct Scalars<'a>(Vec<(u32, wire::Value<'a>)>);

fn scalars<'a>(bytes: &'a [u8], path: &str) -> Result<Scalars<'a>> {
    let fields: Result<Vec<_>, String> = Reader::new(bytes).collect();
    fields
        .map(Scalars)
        .map_err(|reason| malformed(path, reason))
}

impl<'a> Scalars<'a> {
    fn int(&self, tag: u32) -> i64 {
        self.0
            .iter()
            .rev()
            .find_map(|(t, value)| match value {
                wire::Value::Varint(number) if *t == tag => Some(*number as i64),
                _ => None,
            })
            .unwrap_or(0)
    }

    fn bytes(&self, tag: u32) -> &'a [u8] {
        self.all(tag).last().copied().unwrap_or_default()
    }

    fn all(&self, tag: u32) -> Vec<&'a [u8]> {
        self.0
            .iter()
            .filter_map(|(t, value)| match value {
                wire::Value::Bytes(bytes) if *t == tag => Some(*bytes),
                _ => None,
            })
            .collect()
    }

    fn text(&self, tag: u32, path: &str) -> Result<String> {
        utf8(self.bytes(tag), path)
    }
}

fn utf8(bytes: &[u8], path: &str) -> Result<String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| invalid(path, "a string is not valid UTF-8"))
}

fn malformed(path: &str, reason: impl Into<String>) -> Error {
    Error::Malformed {
        path: display(path),
        reason: reason.into(),
    }
}

fn invalid(path: &str, reason: &str) -> Error {
    Error::InvalidValue {
        path: display(path),
        reason: reason.into(),
    }
}

fn wrong_wire_type(path: &str, value: wire::Value<'_>) -> Error {
    malformed(path, format!("unexpected {} value", value.wire_type()))
}

fn display(path: &str) -> String {
    if path.is_empty() {
        ".".into()
    } else {
        path.into()
    }
}
