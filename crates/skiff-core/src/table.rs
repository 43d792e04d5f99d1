//! `meta.k8s.io/v1` Table conversion: the columns and cells kubectl prints for `get`, as
//! kube-apiserver's printers produce them (pods, workloads, services, nodes, events, ...), with
//! the generic `Name`/`Created At` columns for every other resource.
//!
//! Invariants: cells always include the wide (priority 1) columns, since kubectl filters them;
//! every row has exactly one cell per column; ages are computed from a `now` the caller passes
//! (no clock reads) and printed like kubectl (`5s`, `3m2s`, `5h`, `2d3h`); malformed or missing
//! fields print as `<none>`/`<unknown>` and never fail the conversion.

mod cluster;
mod events;
mod network;
mod pods;
mod workloads;

use k8s_openapi::jiff::Timestamp;
use serde_json::{Map, Value, json};

/// What each row carries in `object` (the `includeObject` query parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    /// No object.
    None,
    /// A `PartialObjectMetadata` with the object's metadata (the default).
    #[default]
    Metadata,
    /// The whole object.
    Object,
}

impl IncludeObject {
    /// Parse `includeObject`; empty means the default, anything unknown is `None`-safe `Err`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "" | "Metadata" => Ok(Self::Metadata),
            "None" => Ok(Self::None),
            "Object" => Ok(Self::Object),
            other => Err(format!(
                "includeObject must be one of \"None\", \"Metadata\" or \"Object\", not \"{other}\""
            )),
        }
    }
}

/// One column definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    /// `string`, `integer` or `date`.
    pub column_type: &'static str,
    pub description: &'static str,
    /// 0 for the default view, 1 for `-o wide` only.
    pub priority: u8,
}

const fn column(
    name: &'static str,
    column_type: &'static str,
    description: &'static str,
    priority: u8,
) -> Column {
    Column {
        name,
        column_type,
        description,
        priority,
    }
}

pub(crate) const NAME: Column = column(
    "Name",
    "string",
    "Name must be unique within a namespace.",
    0,
);
pub(crate) const AGE: Column = column("Age", "string", "Time since the object was created.", 0);
const CREATED_AT: Column = column("Created At", "date", "When the object was created.", 0);

/// A printer: its columns and the function making a row's cells.
pub(crate) struct Printer {
    pub(crate) columns: Vec<Column>,
    pub(crate) cells: fn(&Value, Timestamp) -> Vec<Value>,
    /// Row conditions (`Completed` for finished pods), if the printer sets any.
    pub(crate) conditions: fn(&Value) -> Option<Value>,
}

/// A printer without row conditions.
pub(crate) fn printer_of(
    columns: &[Column],
    cells: fn(&Value, Timestamp) -> Vec<Value>,
) -> Option<Printer> {
    Some(Printer {
        columns: columns.to_vec(),
        cells,
        conditions: no_conditions,
    })
}

/// A default-view string column.
pub(crate) fn string(name: &'static str, description: &'static str) -> Column {
    column(name, "string", description, 0)
}

/// A wide-only string column.
pub(crate) fn wide(name: &'static str, description: &'static str) -> Column {
    column(name, "string", description, 1)
}

pub(crate) fn no_conditions(_: &Value) -> Option<Value> {
    None
}

fn default_cells(object: &Value, _now: Timestamp) -> Vec<Value> {
    vec![
        json!(name_of(object)),
        json!(text(object, "/metadata/creationTimestamp")),
    ]
}

fn printer(group: &str, resource: &str) -> Printer {
    pods::printer(group, resource)
        .or_else(|| workloads::printer(group, resource))
        .or_else(|| cluster::printer(group, resource))
        .or_else(|| network::printer(group, resource))
        .or_else(|| events::printer(group, resource))
        .unwrap_or(Printer {
            columns: vec![NAME, CREATED_AT],
            cells: default_cells,
            conditions: no_conditions,
        })
}

/// The column definitions of a resource.
pub fn columns(group: &str, resource: &str) -> Vec<Column> {
    printer(group, resource).columns
}

fn column_json(column: &Column) -> Value {
    let format = if column.name == "Name" { "name" } else { "" };
    json!({
        "name": column.name,
        "type": column.column_type,
        "format": format,
        "description": column.description,
        "priority": column.priority,
    })
}

fn row_json(printer: &Printer, object: &Value, now: Timestamp, include: IncludeObject) -> Value {
    let mut row = Map::new();
    row.insert("cells".into(), Value::Array((printer.cells)(object, now)));
    if let Some(conditions) = (printer.conditions)(object) {
        row.insert("conditions".into(), conditions);
    }
    match include {
        IncludeObject::None => {}
        IncludeObject::Metadata => {
            let metadata = object.get("metadata").cloned().unwrap_or_else(|| json!({}));
            row.insert(
                "object".into(),
                json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": metadata}),
            );
        }
        IncludeObject::Object => {
            row.insert("object".into(), object.clone());
        }
    }
    Value::Object(row)
}

fn table_json(columns: Option<&[Column]>, rows: Vec<Value>, metadata: Value) -> Value {
    let mut table = Map::new();
    table.insert("kind".into(), json!("Table"));
    table.insert("apiVersion".into(), json!("meta.k8s.io/v1"));
    table.insert("metadata".into(), metadata);
    if let Some(columns) = columns {
        let definitions = columns.iter().map(column_json).collect();
        table.insert("columnDefinitions".into(), Value::Array(definitions));
    }
    table.insert("rows".into(), Value::Array(rows));
    Value::Object(table)
}

/// The Table for a list: `list_metadata` is the list's metadata (`resourceVersion`, `continue`,
/// `remainingItemCount`), copied to the Table's.
pub fn list_table(
    group: &str,
    resource: &str,
    items: &[Value],
    list_metadata: &Value,
    now: Timestamp,
    include: IncludeObject,
) -> Value {
    let printer = printer(group, resource);
    let rows = items
        .iter()
        .map(|item| row_json(&printer, item, now, include))
        .collect();
    let metadata = if list_metadata.is_object() {
        list_metadata.clone()
    } else {
        json!({})
    };
    table_json(Some(&printer.columns), rows, metadata)
}

/// The Table of one object (a GET, or one watch event). Watch events after the first may leave
/// out the column definitions (`with_columns: false`).
pub fn object_table(
    group: &str,
    resource: &str,
    object: &Value,
    now: Timestamp,
    include: IncludeObject,
    with_columns: bool,
) -> Value {
    let printer = printer(group, resource);
    let row = row_json(&printer, object, now, include);
    let resource_version = text(object, "/metadata/resourceVersion");
    let metadata = if resource_version.is_empty() {
        json!({})
    } else {
        json!({"resourceVersion": resource_version})
    };
    table_json(
        with_columns.then_some(printer.columns.as_slice()),
        vec![row],
        metadata,
    )
}

/// The string at a JSON pointer, or `""`.
pub(crate) fn text(object: &Value, pointer: &str) -> String {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// The string at a JSON pointer, or `<none>` when empty.
pub(crate) fn text_or_none(object: &Value, pointer: &str) -> String {
    let found = text(object, pointer);
    if found.is_empty() {
        "<none>".to_string()
    } else {
        found
    }
}

/// The integer at a JSON pointer, or 0.
pub(crate) fn int(object: &Value, pointer: &str) -> i64 {
    object.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

/// The list at a JSON pointer, or an empty slice.
pub(crate) fn list<'a>(object: &'a Value, pointer: &str) -> &'a [Value] {
    object
        .pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

pub(crate) fn name_of(object: &Value) -> String {
    text(object, "/metadata/name")
}

/// How long ago `timestamp` (RFC 3339) was, like kubectl; `<unknown>` when absent or malformed.
pub(crate) fn since(timestamp: &str, now: Timestamp) -> String {
    match timestamp.parse::<Timestamp>() {
        Ok(then) => human_duration(now.as_second().saturating_sub(then.as_second())),
        Err(_) => "<unknown>".to_string(),
    }
}

/// The age column of an object.
pub(crate) fn age(object: &Value, now: Timestamp) -> String {
    since(&text(object, "/metadata/creationTimestamp"), now)
}

/// kubectl's human duration: seconds up to 2m, then minutes (with seconds under 10m), hours (with
/// minutes under 8h), days (with hours under 8d), years (with days under 8y).
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let rest = seconds % 60;
        return if rest == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{rest}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let rest = minutes % 60;
        return if rest == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{rest}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        let rest = hours % 24;
        return if rest == 0 {
            format!("{days}d")
        } else {
            format!("{days}d{rest}h")
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    let years = days / 365;
    if hours < 24 * 365 * 8 {
        let rest = days % 365;
        return if rest == 0 {
            format!("{years}y")
        } else {
            format!("{years}y{rest}d")
        };
    }
    format!("{years}y")
}

/// `a=b,c=d` for a label map (sorted), `<none>` when empty.
pub(crate) fn format_labels(map: Option<&Value>) -> String {
    let labels = crate::names::string_map(map);
    if labels.is_empty() {
        return "<none>".to_string();
    }
    labels
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A LabelSelector in string form, `<none>` when empty or absent.
pub(crate) fn format_selector(selector: Option<&Value>) -> String {
    match selector.map(crate::selector::LabelSelector::from_json) {
        Some(Ok(selector)) if !selector.is_everything() => selector.to_string(),
        _ => "<none>".to_string(),
    }
}

/// Join at most `max` items with `,`, then ` + N more...`.
pub(crate) fn join_capped(items: &[String], max: usize) -> String {
    let mut joined = items
        .iter()
        .take(max)
        .cloned()
        .collect::<Vec<_>>()
        .join(",");
    if items.len() > max {
        joined.push_str(&format!(" + {} more...", items.len() - max));
    }
    joined
}

#[cfg(test)]
mod tests;
