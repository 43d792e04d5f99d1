//! Name rules: which strings are valid object names (DNS-1123 subdomain, DNS-1123 label,
//! DNS-1035 label, path segment), label keys and values, annotation keys and total size, the
//! name made from `metadata.generateName`, and the namespace a request's object belongs in.
//!
//! Invariants: every check returns *all* the reasons a string is invalid, as messages a user can
//! act on (empty = valid), and never panics on any input (byte-wise ASCII checks; truncation only
//! at char boundaries). Nothing here is random: `generateName` suffixes come from the caller.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::field;

/// Most names: up to 253 characters of DNS labels joined by dots.
pub const DNS1123_SUBDOMAIN_MAX_LENGTH: usize = 253;
/// Namespace and Service names, label name parts and values: up to 63 characters.
pub const DNS1123_LABEL_MAX_LENGTH: usize = 63;
/// The total size of an object's annotations (keys plus values), in bytes.
pub const ANNOTATIONS_MAX_BYTES: usize = 256 * 1024;
/// A generated name is at most this long (the prefix is cut to make room for the suffix).
pub const GENERATED_NAME_MAX_LENGTH: usize = 63;
/// The length of the random suffix Kubernetes appends to `generateName`.
pub const GENERATED_SUFFIX_LENGTH: usize = 5;

/// Errors of name handling outside field validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The object's `metadata.namespace` differs from the namespace in the request path.
    #[error(
        "the namespace of the provided object does not match the namespace sent on the request"
    )]
    NamespaceMismatch,
    /// A namespaced object was sent without any namespace.
    #[error("an empty namespace may not be set during creation")]
    NamespaceRequired,
}

/// Which rule an object's name must follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// `[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*`, at most 253 characters.
    Dns1123Subdomain,
    /// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
    Dns1123Label,
    /// `[a-z]([-a-z0-9]*[a-z0-9])?`, at most 63 characters (Services: names become DNS names).
    Dns1035Label,
    /// Anything usable as one URL path segment (RBAC objects: `system:controller:foo`).
    PathSegment,
}

/// The name rule of a resource, as kube-apiserver applies it.
pub fn rule_for(group: &str, resource: &str) -> NameRule {
    match (group, resource) {
        ("", "namespaces") => NameRule::Dns1123Label,
        ("", "services") => NameRule::Dns1035Label,
        ("rbac.authorization.k8s.io", _) => NameRule::PathSegment,
        ("authorization.k8s.io", _) => NameRule::PathSegment,
        _ => NameRule::Dns1123Subdomain,
    }
}

/// Every reason `name` breaks `rule`.
pub fn validate_name(rule: NameRule, name: &str) -> Vec<String> {
    match rule {
        NameRule::Dns1123Subdomain => dns1123_subdomain(name),
        NameRule::Dns1123Label => dns1123_label(name),
        NameRule::Dns1035Label => dns1035_label(name),
        NameRule::PathSegment => path_segment(name),
    }
}

fn is_lower_alphanumeric(byte: u8) -> bool {
    byte.is_ascii_lowercase() || byte.is_ascii_digit()
}

fn is_label_shape(text: &str) -> bool {
    let bytes = text.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            is_lower_alphanumeric(*first)
                && is_lower_alphanumeric(*last)
                && bytes
                    .iter()
                    .all(|byte| is_lower_alphanumeric(*byte) || *byte == b'-')
        }
        _ => false,
    }
}

fn too_long(max: usize) -> String {
    format!("must be no more than {max} characters")
}

/// Reasons `name` is not a DNS-1123 label.
pub fn dns1123_label(name: &str) -> Vec<String> {
    let mut reasons = Vec::new();
    if name.len() > DNS1123_LABEL_MAX_LENGTH {
        reasons.push(too_long(DNS1123_LABEL_MAX_LENGTH));
    }
    if !is_label_shape(name) {
        reasons.push(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', \
             and must start and end with an alphanumeric character (e.g. 'my-name' or '123-abc')"
                .to_string(),
        );
    }
    reasons
}

/// Reasons `name` is not a DNS-1123 subdomain.
pub fn dns1123_subdomain(name: &str) -> Vec<String> {
    let mut reasons = Vec::new();
    if name.len() > DNS1123_SUBDOMAIN_MAX_LENGTH {
        reasons.push(too_long(DNS1123_SUBDOMAIN_MAX_LENGTH));
    }
    if !name.split('.').all(is_label_shape) {
        reasons.push(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, \
             '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com')"
                .to_string(),
        );
    }
    reasons
}

/// Reasons `name` is not a DNS-1035 label.
pub fn dns1035_label(name: &str) -> Vec<String> {
    let mut reasons = Vec::new();
    if name.len() > DNS1123_LABEL_MAX_LENGTH {
        reasons.push(too_long(DNS1123_LABEL_MAX_LENGTH));
    }
    let starts_with_letter = name.as_bytes().first().is_some_and(u8::is_ascii_lowercase);
    if !starts_with_letter || !is_label_shape(name) {
        reasons.push(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start \
             with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name' \
             or 'abc-123')"
                .to_string(),
        );
    }
    reasons
}

/// Reasons `name` cannot be one URL path segment.
pub fn path_segment(name: &str) -> Vec<String> {
    let mut reasons = Vec::new();
    if name == "." || name == ".." {
        reasons.push(format!("may not be '{name}'"));
    }
    for forbidden in ["/", "%"] {
        if name.contains(forbidden) {
            reasons.push(format!("may not contain '{forbidden}'"));
        }
    }
    reasons
}

fn is_alphanumeric(byte: u8) -> bool {
    byte.is_ascii_alphanumeric()
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`: label name parts and non-empty label values.
fn is_qualified_part(text: &str) -> bool {
    let bytes = text.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            is_alphanumeric(*first)
                && is_alphanumeric(*last)
                && bytes
                    .iter()
                    .all(|byte| is_alphanumeric(*byte) || matches!(byte, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// Reasons `key` is not a qualified name (`[prefix/]name`), the syntax of label and annotation
/// keys: the optional prefix a DNS subdomain, the name at most 63 characters.
pub fn qualified_name(key: &str) -> Vec<String> {
    let mut reasons = Vec::new();
    let parts: Vec<&str> = key.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                reasons.push("prefix part must be non-empty".to_string());
            } else {
                for reason in dns1123_subdomain(prefix) {
                    reasons.push(format!("prefix part {reason}"));
                }
            }
            *name
        }
        _ => {
            reasons.push(
                "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and \
                 must start and end with an alphanumeric character, with an optional DNS \
                 subdomain prefix and '/' (e.g. 'MyName', 'my.name' or 'example.com/MyName')"
                    .to_string(),
            );
            return reasons;
        }
    };
    if name.is_empty() {
        reasons.push("name part must be non-empty".to_string());
        return reasons;
    }
    if name.len() > DNS1123_LABEL_MAX_LENGTH {
        reasons.push(format!("name part {}", too_long(DNS1123_LABEL_MAX_LENGTH)));
    }
    if !is_qualified_part(name) {
        reasons.push(
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start \
             and end with an alphanumeric character (e.g. 'MyName', 'my.name' or '123-abc')"
                .to_string(),
        );
    }
    reasons
}

/// Reasons `value` is not a valid label value (empty is valid).
pub fn label_value(value: &str) -> Vec<String> {
    let mut reasons = Vec::new();
    if value.len() > DNS1123_LABEL_MAX_LENGTH {
        reasons.push(too_long(DNS1123_LABEL_MAX_LENGTH));
    }
    if !value.is_empty() && !is_qualified_part(value) {
        reasons.push(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', \
             '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue', \
             'my_value' or '12345')"
                .to_string(),
        );
    }
    reasons
}

/// Field errors for a `labels` map at `path` (keys and values).
pub fn validate_labels(labels: &BTreeMap<String, String>, path: &field::Path) -> Vec<field::Error> {
    let mut errors = Vec::new();
    for (key, value) in labels {
        for reason in qualified_name(key) {
            errors.push(field::Error::invalid(path, key.as_str(), &reason));
        }
        for reason in label_value(value) {
            errors.push(field::Error::invalid(
                &path.key(key),
                value.as_str(),
                &reason,
            ));
        }
    }
    errors
}

/// Field errors for an `annotations` map at `path`: keys must be qualified names (compared
/// lower-cased) and keys plus values may take at most [`ANNOTATIONS_MAX_BYTES`].
pub fn validate_annotations(
    annotations: &BTreeMap<String, String>,
    path: &field::Path,
) -> Vec<field::Error> {
    let mut errors = Vec::new();
    let mut total = 0usize;
    for (key, value) in annotations {
        for reason in qualified_name(&key.to_ascii_lowercase()) {
            errors.push(field::Error::invalid(path, key.as_str(), &reason));
        }
        total = total.saturating_add(key.len()).saturating_add(value.len());
    }
    if total > ANNOTATIONS_MAX_BYTES {
        errors.push(field::Error::too_long(path, ANNOTATIONS_MAX_BYTES));
    }
    errors
}

/// A string map (`labels`, `annotations`) read from JSON; non-string values are skipped.
pub fn string_map(value: Option<&Value>) -> BTreeMap<String, String> {
    value
        .and_then(Value::as_object)
        .map(|object| {
            object
                .iter()
                .filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// The name Kubernetes makes from `generateName` and a caller-supplied random suffix: the
/// prefix is cut so the whole name stays within [`GENERATED_NAME_MAX_LENGTH`].
pub fn generate_name(base: &str, random_suffix: &str) -> String {
    let room = GENERATED_NAME_MAX_LENGTH.saturating_sub(random_suffix.len());
    let mut cut = base.len().min(room);
    while !base.is_char_boundary(cut) {
        cut -= 1;
    }
    let prefix = base.get(..cut).unwrap_or_default();
    format!("{prefix}{random_suffix}")
}

/// The namespace a request's object belongs in, from the request path and the body.
///
/// For namespaced resources the body may omit the namespace (the path's is used) but may not
/// name another one; cluster-scoped resources have no namespace (an empty string is returned
/// and a namespace in the body is left for validation to reject).
pub fn resolve_namespace(
    namespaced: bool,
    path_namespace: Option<&str>,
    object_namespace: Option<&str>,
) -> Result<String, Error> {
    if !namespaced {
        return Ok(String::new());
    }
    let path_namespace = path_namespace.filter(|namespace| !namespace.is_empty());
    let object_namespace = object_namespace.filter(|namespace| !namespace.is_empty());
    match (path_namespace, object_namespace) {
        (Some(path), Some(object)) if path != object => Err(Error::NamespaceMismatch),
        (Some(namespace), _) | (None, Some(namespace)) => Ok(namespace.to_string()),
        (None, None) => Err(Error::NamespaceRequired),
    }
}

#[cfg(test)]
mod tests;
