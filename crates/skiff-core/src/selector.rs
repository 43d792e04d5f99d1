//! Label and field selectors: parsing the `labelSelector`/`fieldSelector` query strings and
//! `metav1.LabelSelector` objects, matching them against objects, and printing them back.
//!
//! Invariants: parsing is strict (anything that is not a well-formed requirement is an error
//! naming what was found and what was expected), matching never fails, and a selector prints in
//! Kubernetes' canonical form (requirements sorted by key, set values sorted), which is what
//! `Scale.status.selector` and `kubectl describe` show. Field selectors only accept the fields a
//! resource supports (`field label not supported: x` otherwise).

mod fields;
mod label;
mod label_lexer;

pub use fields::{FieldOperator, FieldRequirement, FieldSelector, field_value, supported_fields};
pub use label::{LabelSelector, Operator, Requirement};

/// Why a selector could not be parsed or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The label selector string has a token where another was expected.
    #[error("unable to parse requirement: found '{found}', expected: {expected}")]
    UnexpectedToken { found: String, expected: String },
    /// A label key is not a qualified name.
    #[error("unable to parse requirement: key: Invalid value: \"{key}\": {reason}")]
    InvalidKey { key: String, reason: String },
    /// A label value is not a valid label value.
    #[error(
        "unable to parse requirement: values[{index}][{key}]: Invalid value: \"{value}\": {reason}"
    )]
    InvalidValue {
        key: String,
        index: usize,
        value: String,
        reason: String,
    },
    /// `in`/`notin` with no values, or `=`/`!=` with more than one.
    #[error("unable to parse requirement: values: Invalid value: {values:?}: {reason}")]
    InvalidValueCount { values: Vec<String>, reason: String },
    /// `>`/`<` with a value that is not an integer.
    #[error(
        "unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer, not \"{value}\""
    )]
    NotAnInteger { value: String },
    /// A `matchExpressions` operator that does not exist.
    #[error("\"{operator}\" is not a valid label selector operator")]
    UnknownOperator { operator: String },
    /// A `metav1.LabelSelector` that is not shaped like one.
    #[error("invalid label selector: {0}")]
    Malformed(String),
    /// A field selector term without an operator.
    #[error("invalid selector: '{selector}'; can't understand '{term}'")]
    FieldSyntax { selector: String, term: String },
    /// A field selector value with a bad backslash escape.
    #[error("invalid field selector: invalid escape sequence in '{term}'")]
    InvalidEscape { term: String },
    /// A field selector on a field the resource cannot be filtered by.
    #[error("field label not supported: {field}")]
    FieldLabelNotSupported { field: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests;
