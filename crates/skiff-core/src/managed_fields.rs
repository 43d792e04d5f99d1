//! `metadata.managedFields`: which field manager owns which fields of an object, in the
//! `FieldsV1` format Kubernetes uses.
//!
//! A [`FieldSet`] is a set of paths; each path element is spelled as in `fieldsV1`:
//! `f:<field>` for an object field, `k:{"name":"nginx"}` for the element of a list map with
//! those key values, `v:"value"` for an element of a set, `i:<n>` for a list index. In the
//! JSON form the paths form a tree; a path that is itself in the set and also has children
//! carries a `".": {}` member, a path with no children is `{}`.
//!
//! Invariants: a [`FieldSet`] holds each path once and iterates in a stable order, so rendering
//! the same set always gives the same JSON; parsing never panics on what a client sent (an
//! unusable entry is an [`Error`] the caller may drop); nothing here reads a clock: times are
//! strings the caller passes in.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

#[cfg(test)]
mod tests;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How deep a `fieldsV1` tree may nest.
const MAX_DEPTH: usize = 128;

/// Why managed fields could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    #[error("metadata.managedFields must be a list of objects")]
    NotAList,
    #[error("managedFields[{index}]: {reason}")]
    InvalidEntry { index: usize, reason: String },
}

/// One path: its elements in `fieldsV1` spelling (`f:spec`, `k:{"name":"x"}`, ...).
pub type Path = Vec<String>;

/// A set of field paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet(BTreeSet<Path>);

impl FieldSet {
    pub fn new() -> Self {
        FieldSet(BTreeSet::new())
    }

    pub fn insert(&mut self, path: Path) {
        self.0.insert(path);
    }

    pub fn contains(&self, path: &Path) -> bool {
        self.0.contains(path)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Path> {
        self.0.iter()
    }

    pub fn union(&self, other: &FieldSet) -> FieldSet {
        FieldSet(self.0.union(&other.0).cloned().collect())
    }

    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        FieldSet(self.0.difference(&other.0).cloned().collect())
    }

    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        FieldSet(self.0.intersection(&other.0).cloned().collect())
    }

    /// Parses a `fieldsV1` tree.
    pub fn from_fields_v1(fields: &Value) -> Result<FieldSet, String> {
        let mut set = FieldSet::new();
        let Value::Object(children) = fields else {
            return Err("fieldsV1 must be an object".into());
        };
        let mut pending: Vec<(Path, &Map<String, Value>)> = vec![(Vec::new(), children)];
        while let Some((path, children)) = pending.pop() {
            if path.len() > MAX_DEPTH {
                return Err(format!("fieldsV1 nests deeper than {MAX_DEPTH} levels"));
            }
            for (element, child) in children {
                if element == "." {
                    if !path.is_empty() {
                        set.insert(path.clone());
                    }
                    continue;
                }
                if !is_path_element(element) {
                    return Err(format!("{element:?} is not a fieldsV1 path element"));
                }
                let Value::Object(grandchildren) = child else {
                    return Err(format!("the value of {element:?} must be an object"));
                };
                let mut child_path = path.clone();
                child_path.push(element.clone());
                if grandchildren.is_empty() {
                    set.insert(child_path);
                } else {
                    pending.push((child_path, grandchildren));
                }
            }
        }
        Ok(set)
    }

    /// Renders the set as a `fieldsV1` tree.
    pub fn to_fields_v1(&self) -> Value {
        #[derive(Default)]
        struct Node {
            member: bool,
            children: BTreeMap<String, Node>,
        }
        fn render(node: &Node) -> Value {
            let mut members = Map::new();
            if node.member && !node.children.is_empty() {
                members.insert(".".into(), Value::Object(Map::new()));
            }
            for (element, child) in &node.children {
                members.insert(element.clone(), render(child));
            }
            Value::Object(members)
        }
        let mut root = Node::default();
        for path in &self.0 {
            let mut node = &mut root;
            for element in path {
                node = node.children.entry(element.clone()).or_default();
            }
            node.member = true;
        }
        render(&root)
    }
}

impl FromIterator<Path> for FieldSet {
    fn from_iter<I: IntoIterator<Item = Path>>(paths: I) -> Self {
        FieldSet(paths.into_iter().collect())
    }
}

fn is_path_element(element: &str) -> bool {
    ["f:", "k:", "v:", "i:"]
        .iter()
        .any(|prefix| element.starts_with(prefix))
}

/// `f:<name>`.
pub fn field(name: &str) -> String {
    format!("f:{name}")
}

/// A path the way Kubernetes prints it in conflicts: `.spec.containers[name="nginx"].image`.
pub fn display(path: &Path) -> String {
    let mut text = String::new();
    for element in path {
        let (kind, rest) = match (element.get(..2), element.get(2..)) {
            (Some(kind), Some(rest)) => (kind, rest),
            _ => ("", element.as_str()),
        };
        match kind {
            "f:" => {
                text.push('.');
                text.push_str(rest);
            }
            "k:" => match serde_json::from_str::<Map<String, Value>>(rest) {
                Ok(keys) => {
                    let keys: Vec<String> = keys
                        .iter()
                        .map(|(name, value)| format!("{name}={value}"))
                        .collect();
                    text.push_str(&format!("[{}]", keys.join(",")));
                }
                Err(_) => text.push_str(&format!("[{rest}]")),
            },
            "v:" => text.push_str(&format!("[={rest}]")),
            _ => text.push_str(&format!("[{rest}]")),
        }
    }
    text
}

/// Whether a manager applied its fields or updated the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Apply,
    Update,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub manager: String,
    pub operation: Operation,
    pub api_version: String,
    pub time: Option<String>,
    /// `None` for the main resource, `Some("status")` for the status subresource.
    pub subresource: Option<String>,
    pub fields: FieldSet,
}

impl Entry {
    /// Whether this entry belongs to the manager `manager` doing `operation` on `subresource`.
    pub fn is(&self, manager: &str, operation: Operation, subresource: Option<&str>) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource.as_deref() == subresource
    }

    /// How Kubernetes names the manager in a conflict: `"kubectl" with subresource "status"
    /// using apps/v1` (the version only for updates).
    pub fn describe(&self) -> String {
        let mut text = format!("{:?}", self.manager);
        if let Some(subresource) = &self.subresource {
            text.push_str(&format!(" with subresource {subresource:?}"));
        }
        if self.operation == Operation::Update {
            text.push_str(&format!(" using {}", self.api_version));
        }
        text
    }
}

/// Reads `metadata.managedFields` of `object`; an object without any has no entries.
pub fn parse(object: &Value) -> Result<Vec<Entry>> {
    let Some(entries) = object
        .get("metadata")
        .and_then(|metadata| metadata.get("managedFields"))
    else {
        return Ok(Vec::new());
    };
    match entries {
        Value::Null => Ok(Vec::new()),
        Value::Array(entries) => entries
            .iter()
            .enumerate()
            .map(|(index, entry)| parse_entry(index, entry))
            .collect(),
        _ => Err(Error::NotAList),
    }
}

fn parse_entry(index: usize, entry: &Value) -> Result<Entry> {
    let invalid = |reason: String| Error::InvalidEntry { index, reason };
    let text = |name: &str| entry.get(name).and_then(Value::as_str).map(str::to_owned);
    let operation = match text("operation").as_deref() {
        Some("Apply") => Operation::Apply,
        Some("Update") => Operation::Update,
        other => {
            return Err(invalid(format!(
                "operation must be Apply or Update, not {other:?}"
            )));
        }
    };
    if let Some(fields_type) = text("fieldsType")
        && fields_type != "FieldsV1"
    {
        return Err(invalid(format!(
            "fieldsType {fields_type:?} is not FieldsV1"
        )));
    }
    let fields = match entry.get("fieldsV1") {
        None | Some(Value::Null) => FieldSet::new(),
        Some(fields) => FieldSet::from_fields_v1(fields).map_err(invalid)?,
    };
    Ok(Entry {
        manager: text("manager").unwrap_or_default(),
        operation,
        api_version: text("apiVersion").unwrap_or_default(),
        time: text("time"),
        subresource: text("subresource").filter(|subresource| !subresource.is_empty()),
        fields,
    })
}

/// The JSON of `metadata.managedFields` for `entries`.
pub fn render(entries: &[Entry]) -> Value {
    Value::Array(
        entries
            .iter()
            .map(|entry| {
                let mut members = Map::new();
                members.insert("manager".into(), Value::String(entry.manager.clone()));
                members.insert(
                    "operation".into(),
                    Value::String(entry.operation.as_str().into()),
                );
                members.insert(
                    "apiVersion".into(),
                    Value::String(entry.api_version.clone()),
                );
                if let Some(time) = &entry.time {
                    members.insert("time".into(), Value::String(time.clone()));
                }
                members.insert("fieldsType".into(), Value::String("FieldsV1".into()));
                members.insert("fieldsV1".into(), entry.fields.to_fields_v1());
                if let Some(subresource) = &entry.subresource {
                    members.insert("subresource".into(), Value::String(subresource.clone()));
                }
                Value::Object(members)
            })
            .collect(),
    )
}
