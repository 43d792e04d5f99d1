//! Label selectors: the string syntax (`a=b,c!=d,e in (x,y),!f`), `metav1.LabelSelector`
//! objects (`matchLabels` + `matchExpressions`), matching against a label map, and the canonical
//! string form.
//!
//! Invariant: a selector built from nothing (a `null` LabelSelector) matches nothing, an empty
//! one matches everything; a parsed selector's requirements are sorted by key.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use super::{Error, Result};
use crate::names;

/// How a requirement compares a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// `a=b`
    Equals,
    /// `a==b`
    DoubleEquals,
    /// `a!=b`
    NotEquals,
    /// `a in (x,y)`
    In,
    /// `a notin (x,y)`
    NotIn,
    /// `a`
    Exists,
    /// `!a`
    DoesNotExist,
    /// `a>1`
    GreaterThan,
    /// `a<1`
    LessThan,
}

/// One requirement on one label key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub operator: Operator,
    /// Sorted and de-duplicated for set operators.
    pub values: Vec<String>,
}

impl Requirement {
    /// Build a requirement, checking the key, the values and their count.
    pub fn new(key: &str, operator: Operator, values: Vec<String>) -> Result<Self> {
        if let Some(reason) = names::qualified_name(key).into_iter().next() {
            return Err(Error::InvalidKey {
                key: key.to_string(),
                reason,
            });
        }
        let mut values = values;
        match operator {
            Operator::In | Operator::NotIn if values.is_empty() => {
                return Err(Error::InvalidValueCount {
                    values,
                    reason: "for 'in', 'notin' operators, values set can't be empty".into(),
                });
            }
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals
                if values.len() != 1 =>
            {
                return Err(Error::InvalidValueCount {
                    values,
                    reason: "exact-match compatibility requires one single value".into(),
                });
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                return Err(Error::InvalidValueCount {
                    values,
                    reason: "values set must be empty for exists and does not exist".into(),
                });
            }
            Operator::GreaterThan | Operator::LessThan => {
                let single = match values.as_slice() {
                    [single] => single.clone(),
                    _ => {
                        return Err(Error::InvalidValueCount {
                            values,
                            reason: "for 'Gt', 'Lt' operators, exactly one value is required"
                                .into(),
                        });
                    }
                };
                if single.parse::<i64>().is_err() {
                    return Err(Error::NotAnInteger { value: single });
                }
            }
            _ => {}
        }
        if !matches!(operator, Operator::GreaterThan | Operator::LessThan) {
            for (index, value) in values.iter().enumerate() {
                if let Some(reason) = names::label_value(value).into_iter().next() {
                    return Err(Error::InvalidValue {
                        key: key.to_string(),
                        index,
                        value: value.clone(),
                        reason,
                    });
                }
            }
        }
        values.sort();
        values.dedup();
        Ok(Self {
            key: key.to_string(),
            operator,
            values,
        })
    }

    /// Whether a label map satisfies the requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        let in_values = |value: &String| self.values.contains(value);
        let compare = |value: &String, ordering: std::cmp::Ordering| {
            let bound = self
                .values
                .first()
                .and_then(|bound| bound.parse::<i64>().ok());
            match (value.parse::<i64>().ok(), bound) {
                (Some(have), Some(bound)) => have.cmp(&bound) == ordering,
                _ => false,
            }
        };
        match self.operator {
            Operator::Equals | Operator::DoubleEquals | Operator::In => {
                value.is_some_and(in_values)
            }
            Operator::NotEquals | Operator::NotIn => !value.is_some_and(in_values),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan => value.is_some_and(|v| compare(v, std::cmp::Ordering::Greater)),
            Operator::LessThan => value.is_some_and(|v| compare(v, std::cmp::Ordering::Less)),
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = &self.key;
        let first = self.values.first().map(String::as_str).unwrap_or_default();
        match self.operator {
            Operator::Equals => write!(f, "{key}={first}"),
            Operator::DoubleEquals => write!(f, "{key}=={first}"),
            Operator::NotEquals => write!(f, "{key}!={first}"),
            Operator::In => write!(f, "{key} in ({})", self.values.join(",")),
            Operator::NotIn => write!(f, "{key} notin ({})", self.values.join(",")),
            Operator::Exists => write!(f, "{key}"),
            Operator::DoesNotExist => write!(f, "!{key}"),
            Operator::GreaterThan => write!(f, "{key}>{first}"),
            Operator::LessThan => write!(f, "{key}<{first}"),
        }
    }
}

/// A set of requirements that must all hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
    /// Set for the selector of a `null` LabelSelector: it matches no object.
    nothing: bool,
}

impl LabelSelector {
    /// The selector that matches every object.
    pub fn everything() -> Self {
        Self::default()
    }

    /// The selector that matches no object.
    pub fn nothing() -> Self {
        Self {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    /// A selector of these requirements (sorted by key).
    pub fn from_requirements(mut requirements: Vec<Requirement>) -> Self {
        requirements.sort_by(|left, right| left.key.cmp(&right.key));
        Self {
            requirements,
            nothing: false,
        }
    }

    /// Parse the string syntax of the `labelSelector` query parameter.
    pub fn parse(text: &str) -> Result<Self> {
        let tokens = super::label_lexer::tokenize(text);
        let requirements = super::label_lexer::parse(&tokens)?;
        Ok(Self::from_requirements(requirements))
    }

    /// A `metav1.LabelSelector` object; `null` matches nothing, `{}` everything.
    pub fn from_json(selector: &Value) -> Result<Self> {
        let object = match selector {
            Value::Null => return Ok(Self::nothing()),
            Value::Object(object) => object,
            _ => {
                return Err(Error::Malformed(
                    "a label selector must be an object".into(),
                ));
            }
        };
        let mut requirements = Vec::new();
        match object.get("matchLabels") {
            None | Some(Value::Null) => {}
            Some(Value::Object(labels)) => {
                for (key, value) in labels {
                    let value = value.as_str().ok_or_else(|| {
                        Error::Malformed(format!("matchLabels[{key}] must be a string"))
                    })?;
                    requirements.push(Requirement::new(key, Operator::Equals, vec![value.into()])?);
                }
            }
            Some(_) => return Err(Error::Malformed("matchLabels must be an object".into())),
        }
        match object.get("matchExpressions") {
            None | Some(Value::Null) => {}
            Some(Value::Array(expressions)) => {
                for expression in expressions {
                    requirements.push(expression_requirement(expression)?);
                }
            }
            Some(_) => return Err(Error::Malformed("matchExpressions must be a list".into())),
        }
        Ok(Self::from_requirements(requirements))
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Whether the selector matches every object.
    pub fn is_everything(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    /// Whether a label map satisfies every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Whether an object's `metadata.labels` satisfy every requirement.
    pub fn matches_object(&self, object: &Value) -> bool {
        let labels = names::string_map(object.pointer("/metadata/labels"));
        self.matches(&labels)
    }
}

fn expression_requirement(expression: &Value) -> Result<Requirement> {
    let key = expression
        .get("key")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::Malformed("matchExpressions[].key must be a string".into()))?;
    let operator = expression
        .get("operator")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::Malformed("matchExpressions[].operator must be a string".into()))?;
    let operator = match operator {
        "In" => Operator::In,
        "NotIn" => Operator::NotIn,
        "Exists" => Operator::Exists,
        "DoesNotExist" => Operator::DoesNotExist,
        other => {
            return Err(Error::UnknownOperator {
                operator: other.to_string(),
            });
        }
    };
    let values = match expression.get("values") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(values)) => values
            .iter()
            .map(|value| {
                value.as_str().map(String::from).ok_or_else(|| {
                    Error::Malformed("matchExpressions[].values must be strings".into())
                })
            })
            .collect::<Result<Vec<_>>>()?,
        Some(_) => {
            return Err(Error::Malformed(
                "matchExpressions[].values must be a list".into(),
            ));
        }
    };
    Requirement::new(key, operator, values)
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.requirements.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join(","))
    }
}
