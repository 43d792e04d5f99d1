//! Field selectors (`metadata.name=x,status.phase!=Failed`): parsing with Kubernetes' escapes
//! (`\,`, `\=`, `\\`), the fields each resource can be filtered by, and reading a field's value
//! from a JSON object the way kube-apiserver's field sets do (absent strings are empty, absent
//! booleans `false`, absent counters `0`).
//!
//! Invariant: a selector that passed [`FieldSelector::check_supported`] for a resource can be
//! evaluated on any object of it without error.

use serde_json::Value;

use super::{Error, Result};

/// Whether a term wants the field equal or not equal to the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldOperator {
    Equals,
    NotEquals,
}

/// One `field=value` or `field!=value` term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    pub field: String,
    pub operator: FieldOperator,
    pub value: String,
}

/// A conjunction of field terms; the empty selector matches everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

/// Split on separators that are not escaped with a backslash.
fn split_unescaped(text: &str, separator: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut escaped = false;
    for character in text.chars() {
        if escaped {
            current.push('\\');
            current.push(character);
            escaped = false;
        } else if character == '\\' {
            escaped = true;
        } else if character == separator {
            parts.push(std::mem::take(&mut current));
        } else {
            current.push(character);
        }
    }
    if escaped {
        current.push('\\');
    }
    parts.push(current);
    parts
}

fn unescape(value: &str, term: &str) -> Result<String> {
    let mut plain = String::new();
    let mut characters = value.chars();
    while let Some(character) = characters.next() {
        if character != '\\' {
            plain.push(character);
            continue;
        }
        match characters.next() {
            Some(escaped @ ('\\' | ',' | '=')) => plain.push(escaped),
            _ => {
                return Err(Error::InvalidEscape {
                    term: term.to_string(),
                });
            }
        }
    }
    Ok(plain)
}

impl FieldSelector {
    /// Parse the `fieldSelector` query parameter.
    pub fn parse(text: &str) -> Result<Self> {
        let mut requirements = Vec::new();
        if text.trim().is_empty() {
            return Ok(Self { requirements });
        }
        for term in split_unescaped(text, ',') {
            let (field, operator, value) = ["!=", "==", "="]
                .iter()
                .find_map(|operator| {
                    let (field, value) = term.split_once(operator)?;
                    let operator = if *operator == "!=" {
                        FieldOperator::NotEquals
                    } else {
                        FieldOperator::Equals
                    };
                    Some((field, operator, value))
                })
                .ok_or_else(|| Error::FieldSyntax {
                    selector: text.to_string(),
                    term: term.clone(),
                })?;
            let field = field.trim();
            if field.is_empty() {
                return Err(Error::FieldSyntax {
                    selector: text.to_string(),
                    term: term.clone(),
                });
            }
            requirements.push(FieldRequirement {
                field: field.to_string(),
                operator,
                value: unescape(value, &term)?,
            });
        }
        Ok(Self { requirements })
    }

    /// The terms, in the order given.
    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    /// Whether the selector matches everything.
    pub fn is_everything(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The value `field` must equal, when a term pins it (`metadata.name=x` → `Some("x")`).
    pub fn exact_value(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|term| term.field == field && term.operator == FieldOperator::Equals)
            .map(|term| term.value.as_str())
    }

    /// Fail with `field label not supported: x` on the first field the resource lacks.
    pub fn check_supported(&self, group: &str, resource: &str) -> Result<()> {
        let supported = supported_fields(group, resource);
        match self
            .requirements
            .iter()
            .find(|term| !supported.contains(&term.field.as_str()))
        {
            Some(term) => Err(Error::FieldLabelNotSupported {
                field: term.field.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Whether an object of the resource matches every term (unsupported fields never match).
    pub fn matches(&self, group: &str, resource: &str, object: &Value) -> bool {
        self.requirements.iter().all(|term| {
            match field_value(group, resource, object, &term.field) {
                Some(value) => (value == term.value) == (term.operator == FieldOperator::Equals),
                None => false,
            }
        })
    }
}

const POD_FIELDS: &[&str] = &[
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
];

const EVENT_FIELDS: &[&str] = &[
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
];

/// The fields `resource` can be filtered by (always `metadata.name` and `metadata.namespace`).
pub fn supported_fields(group: &str, resource: &str) -> Vec<&'static str> {
    let mut fields = vec!["metadata.name", "metadata.namespace"];
    let specific: &[&str] = match (group, resource) {
        ("", "pods") => POD_FIELDS,
        ("", "events") | ("events.k8s.io", "events") => EVENT_FIELDS,
        ("", "secrets") => &["type"],
        ("", "nodes") => &["spec.unschedulable"],
        ("", "namespaces") => &["status.phase"],
        ("apps", "replicasets") => &["status.replicas"],
        ("batch", "jobs") => &["status.successful"],
        _ => &[],
    };
    fields.extend_from_slice(specific);
    fields
}

fn text_at(object: &Value, pointer: &str) -> String {
    match object.pointer(pointer) {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Number(number)) => number.to_string(),
        Some(Value::Bool(flag)) => flag.to_string(),
        _ => String::new(),
    }
}

fn flag_at(object: &Value, pointer: &str) -> String {
    object
        .pointer(pointer)
        .and_then(Value::as_bool)
        .unwrap_or(false)
        .to_string()
}

fn count_at(object: &Value, pointer: &str) -> String {
    object
        .pointer(pointer)
        .and_then(Value::as_i64)
        .unwrap_or(0)
        .to_string()
}

/// The value of a selectable field of an object, `None` when the resource does not support the
/// field. Events of `events.k8s.io` answer with their own fields under the core names
/// (`involvedObject.*` reads `regarding.*`, `source` reads `deprecatedSource.component`).
pub fn field_value(group: &str, resource: &str, object: &Value, field: &str) -> Option<String> {
    if !supported_fields(group, resource).contains(&field) {
        return None;
    }
    let value = match field {
        "metadata.name" => text_at(object, "/metadata/name"),
        "metadata.namespace" => text_at(object, "/metadata/namespace"),
        "spec.hostNetwork" | "spec.unschedulable" => {
            flag_at(object, &format!("/{}", field.replace('.', "/")))
        }
        "status.replicas" => count_at(object, "/status/replicas"),
        "status.successful" => count_at(object, "/status/succeeded"),
        "status.podIP" => {
            let first = text_at(object, "/status/podIPs/0/ip");
            if first.is_empty() {
                text_at(object, "/status/podIP")
            } else {
                first
            }
        }
        _ if resource == "events" => event_field(group, object, field),
        _ => text_at(object, &format!("/{}", field.replace('.', "/"))),
    };
    Some(value)
}

fn event_field(group: &str, object: &Value, field: &str) -> String {
    let new_style = group == "events.k8s.io";
    if let Some(part) = field.strip_prefix("involvedObject.") {
        let root = if new_style {
            "regarding"
        } else {
            "involvedObject"
        };
        return text_at(object, &format!("/{root}/{part}"));
    }
    match (field, new_style) {
        ("source", false) => text_at(object, "/source/component"),
        ("source", true) => text_at(object, "/deprecatedSource/component"),
        ("reportingComponent", true) => text_at(object, "/reportingController"),
        _ => text_at(object, &format!("/{field}")),
    }
}
