//! Field paths and field errors: the vocabulary validation uses to say *where* an object is wrong.
//!
//! A [`Path`] renders like Kubernetes' `field.Path` (`spec.template.spec.containers[0].image`,
//! `metadata.labels[app]`). An [`Error`] is one problem at one path; its [`Error::body`] is the
//! text Kubernetes puts in `Status.details.causes[].message`, and its `Display` is the
//! `path: body` line used in the 422 message. Invariant: rendering never fails and never panics,
//! whatever bytes the bad value holds.

use std::fmt;

use serde_json::Value;

/// A path to a field inside an object, built from the root down.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Path {
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Field(String),
    Index(usize),
    Key(String),
}

impl Path {
    /// A path starting at the top-level field `name` (`Path::new("spec")`).
    pub fn new(name: &str) -> Self {
        Self::root().child(name)
    }

    /// The empty path (the object itself).
    pub fn root() -> Self {
        Self::default()
    }

    /// The field `name` below this path; `name` may hold dots (`child("spec.replicas")`).
    pub fn child(&self, name: &str) -> Self {
        let mut path = self.clone();
        for part in name.split('.').filter(|part| !part.is_empty()) {
            path.segments.push(Segment::Field(part.to_string()));
        }
        path
    }

    /// The list element `index` below this path (`containers[0]`).
    pub fn index(&self, index: usize) -> Self {
        let mut path = self.clone();
        path.segments.push(Segment::Index(index));
        path
    }

    /// The map entry `key` below this path (`labels[app]`).
    pub fn key(&self, key: &str) -> Self {
        let mut path = self.clone();
        path.segments.push(Segment::Key(key.to_string()));
        path
    }

    /// Whether this is the empty path.
    pub fn is_root(&self) -> bool {
        self.segments.is_empty()
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (position, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Field(name) if position == 0 => f.write_str(name)?,
                Segment::Field(name) => write!(f, ".{name}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
                Segment::Key(key) => write!(f, "[{key}]")?,
            }
        }
        Ok(())
    }
}

/// The kind of a field problem; each maps to a Kubernetes `CauseType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    NotFound,
    Required,
    Duplicate,
    Invalid,
    NotSupported,
    Forbidden,
    TooLong,
    TooMany,
    Internal,
}

impl ErrorType {
    /// The `reason` of a `StatusCause` (`FieldValueInvalid`, ...).
    pub fn cause_reason(self) -> &'static str {
        match self {
            Self::NotFound => "FieldValueNotFound",
            Self::Required => "FieldValueRequired",
            Self::Duplicate => "FieldValueDuplicate",
            Self::Invalid => "FieldValueInvalid",
            Self::NotSupported => "FieldValueNotSupported",
            Self::Forbidden => "FieldValueForbidden",
            Self::TooLong => "FieldValueTooLong",
            Self::TooMany => "FieldValueTooMany",
            Self::Internal => "InternalError",
        }
    }

    /// The human words for the type, as Kubernetes prints them (`Invalid value`).
    pub fn words(self) -> &'static str {
        match self {
            Self::NotFound => "Not found",
            Self::Required => "Required value",
            Self::Duplicate => "Duplicate value",
            Self::Invalid => "Invalid value",
            Self::NotSupported => "Unsupported value",
            Self::Forbidden => "Forbidden",
            Self::TooLong => "Too long",
            Self::TooMany => "Too many",
            Self::Internal => "Internal error",
        }
    }

    /// Whether the bad value is printed after the type words.
    fn shows_value(self) -> bool {
        !matches!(
            self,
            Self::Required | Self::Forbidden | Self::TooLong | Self::Internal
        )
    }
}

/// One problem at one field.
#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    pub error_type: ErrorType,
    pub path: Path,
    /// The offending value; `None` prints no value.
    pub value: Option<Value>,
    pub detail: String,
}

impl Error {
    fn new(error_type: ErrorType, path: &Path, value: Option<Value>, detail: &str) -> Self {
        Self {
            error_type,
            path: path.clone(),
            value,
            detail: detail.to_string(),
        }
    }

    /// `Required value` (with an optional explanation).
    pub fn required(path: &Path, detail: &str) -> Self {
        Self::new(ErrorType::Required, path, None, detail)
    }

    /// `Invalid value: <value>: <detail>`.
    pub fn invalid(path: &Path, value: impl Into<Value>, detail: &str) -> Self {
        Self::new(ErrorType::Invalid, path, Some(value.into()), detail)
    }

    /// `Unsupported value: <value>: supported values: "a", "b"`.
    pub fn not_supported(path: &Path, value: impl Into<Value>, supported: &[&str]) -> Self {
        let quoted: Vec<String> = supported.iter().map(|value| quote(value)).collect();
        let detail = if quoted.is_empty() {
            String::new()
        } else {
            format!("supported values: {}", quoted.join(", "))
        };
        Self::new(ErrorType::NotSupported, path, Some(value.into()), &detail)
    }

    /// `Duplicate value: <value>`.
    pub fn duplicate(path: &Path, value: impl Into<Value>) -> Self {
        Self::new(ErrorType::Duplicate, path, Some(value.into()), "")
    }

    /// `Forbidden: <detail>`.
    pub fn forbidden(path: &Path, detail: &str) -> Self {
        Self::new(ErrorType::Forbidden, path, None, detail)
    }

    /// `Too long: may not be more than <max> bytes`.
    pub fn too_long(path: &Path, max: usize) -> Self {
        let detail = format!("may not be more than {max} bytes");
        Self::new(ErrorType::TooLong, path, None, &detail)
    }

    /// `Not found: <value>`.
    pub fn not_found(path: &Path, value: impl Into<Value>) -> Self {
        Self::new(ErrorType::NotFound, path, Some(value.into()), "")
    }

    /// The text after `path: ` (`Invalid value: -1: must be greater than or equal to 0`).
    pub fn body(&self) -> String {
        let mut text = self.error_type.words().to_string();
        if self.error_type.shows_value()
            && let Some(value) = &self.value
        {
            text.push_str(": ");
            text.push_str(&render_value(value));
        }
        if !self.detail.is_empty() {
            text.push_str(": ");
            text.push_str(&self.detail);
        }
        text
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_root() {
            f.write_str(&self.body())
        } else {
            write!(f, "{}: {}", self.path, self.body())
        }
    }
}

/// Render a bad value the way Go's `%q`/`%v` would for the common JSON shapes.
fn render_value(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::String(text) => quote(text),
        Value::Bool(_) | Value::Number(_) => value.to_string(),
        Value::Array(_) | Value::Object(_) => value.to_string(),
    }
}

/// Double-quote a string with JSON escaping (close to Go's `%q` for printable text).
pub fn quote(text: &str) -> String {
    Value::String(text.to_string()).to_string()
}

#[cfg(test)]
mod tests;
