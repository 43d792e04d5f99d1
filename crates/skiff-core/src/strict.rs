//! Request body decoding and server-side field validation (`fieldValidation=Strict|Warn|Ignore`).
//!
//! A body (JSON, or YAML for apply patches) is decoded into a `serde_json::Value` while duplicate
//! keys are recorded; the value is then deserialised into its `k8s-openapi` type and serialised
//! back. k8s-openapi drops unknown fields silently, so any key of the input missing from the
//! round trip is an unknown field; a value of the wrong type fails the typed decode and is
//! reported with its field path (400).
//!
//! Invariants: `null` values are never "unknown" (clients send `creationTimestamp: null`);
//! free-form maps and raw JSON (`labels`, `data`, `fieldsV1`, `RawExtension`) survive the round
//! trip, so their keys are never reported; kinds without a typed model (metrics, Table) are not
//! checked at all. Nothing here panics on any input.

mod decode;
mod typed;

use serde::de::{DeserializeOwned, DeserializeSeed};
use serde_json::Value;

use crate::status;

/// The syntax of a request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    /// YAML (`application/apply-patch+yaml`, `application/yaml`); JSON is valid YAML.
    Yaml,
}

/// The `fieldValidation` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    /// Unknown and duplicate fields fail the request (400).
    #[default]
    Strict,
    /// They become `Warning` headers.
    Warn,
    /// They are dropped silently.
    Ignore,
}

impl FieldValidation {
    /// Parse the query parameter; empty means the server default (`Strict`, as kube-apiserver
    /// chooses for kubectl's requests).
    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "" | "Strict" => Ok(Self::Strict),
            "Warn" => Ok(Self::Warn),
            "Ignore" => Ok(Self::Ignore),
            other => Err(Error::UnknownFieldValidation(other.to_string())),
        }
    }
}

/// Why a body could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The bytes are not JSON (or YAML).
    #[error("the request body could not be decoded: {0}")]
    Syntax(String),
    /// The body is valid JSON but not an object.
    #[error("the request body must be a JSON object, not {0}")]
    NotAnObject(&'static str),
    /// A field has the wrong type (or `kind` names another kind).
    #[error("{kind} in version \"{version}\" cannot be handled as a {kind}: {detail}")]
    Type {
        kind: String,
        version: String,
        detail: String,
    },
    /// Unknown or duplicate fields under `fieldValidation=Strict`.
    #[error("strict decoding error: {}", .0.join(", "))]
    Strict(Vec<String>),
    /// `fieldValidation` has a value other than Strict, Warn or Ignore.
    #[error("fieldValidation must be one of \"Ignore\", \"Warn\" or \"Strict\", not \"{0}\"")]
    UnknownFieldValidation(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The Status the API answers with: every decode error is a 400 BadRequest.
    pub fn to_status(&self) -> status::Error {
        status::Error::bad_request(self.to_string())
    }
}

/// A decoded body and the duplicate keys found in it.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub value: Value,
    /// Paths of keys that appeared more than once (the last occurrence was kept).
    pub duplicates: Vec<String>,
}

/// Decode a body into a JSON value, recording duplicate keys. An empty YAML body is `null`.
pub fn decode(body: &[u8], format: Format) -> Result<Decoded> {
    let mut duplicates = Vec::new();
    let seed = decode::ValueSeed {
        path: String::new(),
        duplicates: &mut duplicates,
    };
    let value = match format {
        Format::Json => {
            let mut deserializer = serde_json::Deserializer::from_slice(body);
            let value = seed
                .deserialize(&mut deserializer)
                .map_err(|error| Error::Syntax(error.to_string()))?;
            deserializer
                .end()
                .map_err(|error| Error::Syntax(error.to_string()))?;
            value
        }
        Format::Yaml => {
            let deserializer = serde_yaml_ng::Deserializer::from_slice(body);
            seed.deserialize(deserializer)
                .map_err(|error| Error::Syntax(error.to_string()))?
        }
    };
    Ok(Decoded { value, duplicates })
}

/// Decode a body that must be one JSON object (every object a client sends).
pub fn decode_object(body: &[u8], format: Format) -> Result<Decoded> {
    let decoded = decode(body, format)?;
    match &decoded.value {
        Value::Object(_) => Ok(decoded),
        Value::Null => Err(Error::NotAnObject("null")),
        Value::Array(_) => Err(Error::NotAnObject("a list")),
        Value::String(_) => Err(Error::NotAnObject("a string")),
        Value::Number(_) => Err(Error::NotAnObject("a number")),
        Value::Bool(_) => Err(Error::NotAnObject("a boolean")),
    }
}

/// Deserialise a value into a typed object, reporting a wrong type with its field path.
pub fn to_typed<T: DeserializeOwned>(value: &Value, version: &str, kind: &str) -> Result<T> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner().to_string();
        let detail = if path.is_empty() || path == "." {
            inner
        } else {
            format!("{path}: {inner}")
        };
        Error::Type {
            kind: kind.to_string(),
            version: version.to_string(),
            detail,
        }
    })
}

/// The unknown fields of an object of (group, version, kind), with their paths, in input order.
/// Kinds without a typed model report none; a wrong type is an [`Error::Type`].
pub fn unknown_fields(
    group: &str,
    version: &str,
    kind: &str,
    value: &Value,
) -> Result<Vec<String>> {
    match typed::round_trip(group, version, kind, value) {
        None => Ok(Vec::new()),
        Some(round_tripped) => {
            let round_tripped = round_tripped?;
            let mut unknown = Vec::new();
            compare(value, &round_tripped, "", &mut unknown);
            Ok(unknown)
        }
    }
}

fn compare(input: &Value, output: &Value, path: &str, unknown: &mut Vec<String>) {
    match (input, output) {
        (Value::Object(input), Value::Object(output)) => {
            for (key, value) in input {
                if value.is_null() {
                    continue;
                }
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match output.get(key) {
                    Some(kept) => compare(value, kept, &child, unknown),
                    None => unknown.push(child),
                }
            }
        }
        (Value::Array(input), Value::Array(output)) if input.len() == output.len() => {
            for (index, (item, kept)) in input.iter().zip(output).enumerate() {
                compare(item, kept, &format!("{path}[{index}]"), unknown);
            }
        }
        _ => {}
    }
}

/// The outcome of checking a body under a `fieldValidation` mode.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    pub value: Value,
    /// `Warning` header texts (only under `Warn`).
    pub warnings: Vec<String>,
}

/// Decode a body for (group, version, kind) and apply `fieldValidation`: Strict fails on unknown
/// or duplicate fields, Warn returns them as warnings, Ignore drops them. Type errors fail in
/// every mode.
pub fn check(
    body: &[u8],
    format: Format,
    group: &str,
    version: &str,
    kind: &str,
    validation: FieldValidation,
) -> Result<Checked> {
    let decoded = decode_object(body, format)?;
    let unknown = unknown_fields(group, version, kind, &decoded.value)?;
    let mut problems: Vec<String> = unknown
        .iter()
        .map(|path| format!("unknown field \"{path}\""))
        .collect();
    problems.extend(
        decoded
            .duplicates
            .iter()
            .map(|path| format!("duplicate field \"{path}\"")),
    );
    match validation {
        FieldValidation::Strict if !problems.is_empty() => Err(Error::Strict(problems)),
        FieldValidation::Warn => Ok(Checked {
            value: decoded.value,
            warnings: problems,
        }),
        _ => Ok(Checked {
            value: decoded.value,
            warnings: Vec::new(),
        }),
    }
}

#[cfg(test)]
mod tests;
