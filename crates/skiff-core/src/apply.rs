//! Server-side apply (`PATCH` with `application/apply-patch+yaml`) and the field ownership that
//! every write records in `metadata.managedFields`.
//!
//! [`apply`] merges an applied configuration into the live object (or creates it), with list
//! maps and sets per `patch::schema` (containers by `name`, ports by `containerPort` and
//! `protocol`, finalizers as a set, everything unknown atomic), and records the applier's
//! fields as an `Apply` entry. A field the applier changes that another manager owns is a
//! conflict ([`Error::Conflict`], 409) unless `force` takes it over; fields the applier set last
//! time and no longer sets are removed unless another manager owns them. [`update`] records,
//! for a create/update/patch, the fields that changed as owned by an `Update` entry, taking
//! them from other managers; this is what lets kubectl migrate client-side-applied objects to
//! server-side apply and report conflicts against `kubectl-client-side-apply`.
//!
//! Invariants: `apiVersion`, `kind` and the server-owned metadata (`name`, `namespace`, `uid`,
//! `resourceVersion`, `generation`, `creationTimestamp`, `managedFields`, ...) are never owned
//! by anyone; an applied body's own `managedFields` are ignored; `status` is ignored for the
//! main resource and only `status` counts for the status subresource; nothing reads a clock:
//! callers pass the time.
//!
//! Simpler than structured-merge-diff, on purpose:
//! - one entry per manager, operation and subresource (Kubernetes also splits `Update` entries
//!   by apiVersion, converts between versions, and caps `Update` entries at ten);
//! - list semantics come from a table of the built-in kinds, not from OpenAPI; custom resources
//!   only get `metadata` semantics, their lists are atomic;
//! - objects of an `Update` that did not exist before are owned as a whole (with `"."`) also
//!   when Go would see them as always-present structs;
//! - removing fields a manager stopped applying also removes objects and lists emptied by it;
//! - duplicate elements of a live list map are matched by their first occurrence.

use serde_json::Value;

use crate::managed_fields::{self, Entry, FieldSet, Operation, Path, field};
use crate::patch::schema::{self, Type};

mod fields;
#[cfg(test)]
mod tests;

use fields::{Comparison, Shape};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How deep an applied configuration may nest.
pub const MAX_DEPTH: usize = 128;

/// Why an apply or an update could not be recorded. See [`Error::code`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// Fields the applier changes are owned by other managers (409 Conflict).
    #[error("{}", conflict_message(.0))]
    Conflict(Vec<Conflict>),
    /// The body is neither JSON nor YAML (400).
    #[error("the apply body is neither JSON nor YAML: {0}")]
    InvalidBody(String),
    /// The body is not an object naming its apiVersion and kind (400).
    #[error("the applied configuration must be an object with apiVersion and kind")]
    MissingTypeMeta,
    /// Apply needs a field manager (400).
    #[error("PATCH requests of type apply require a fieldManager")]
    MissingFieldManager,
    /// A list map element without its key, or twice the same key (422).
    #[error("{path}: {reason}")]
    Invalid { path: String, reason: String },
    /// The configuration nests deeper than [`MAX_DEPTH`] (400).
    #[error("the applied configuration nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

impl Error {
    /// The HTTP status code kube-apiserver uses for this failure.
    pub fn code(&self) -> u16 {
        match self {
            Error::Conflict(_) => 409,
            Error::Invalid { .. } => 422,
            _ => 400,
        }
    }
}

/// One field another manager owns that the applier would change.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    /// How Kubernetes names the owner: `"kubectl-client-side-apply" using apps/v1`.
    pub manager: String,
    /// The field: `.spec.replicas`, `.spec.template.spec.containers[name="nginx"].image`.
    pub field: String,
}

impl Conflict {
    /// The `reason` of the Status cause kubectl expects.
    pub const REASON: &'static str = "FieldManagerConflict";

    /// The `message` of the Status cause: `conflict with "kubectl" using apps/v1`.
    pub fn message(&self) -> String {
        format!("conflict with {}", self.manager)
    }
}

fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [conflict] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            conflict.manager, conflict.field
        );
    }
    let mut managers: Vec<&str> = conflicts
        .iter()
        .map(|conflict| conflict.manager.as_str())
        .collect();
    managers.sort_unstable();
    managers.dedup();
    let mut lines = Vec::new();
    for manager in managers {
        lines.push(format!("conflicts with {manager}:"));
        lines.extend(
            conflicts
                .iter()
                .filter(|c| c.manager == manager)
                .map(|c| format!("- {}", c.field)),
        );
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

/// Who applies, and how.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The field manager (`?fieldManager=`).
    pub manager: &'a str,
    /// `?force=true`: take over conflicting fields instead of failing.
    pub force: bool,
    /// The time to record, RFC 3339 (`2025-05-01T10:00:00Z`).
    pub time: &'a str,
    /// `None` for the main resource, `Some("status")` for the status subresource.
    pub subresource: Option<&'a str>,
    /// The kind's list semantics (`patch::schema::for_kind`); `None` for custom resources.
    pub schema: Option<&'static Type>,
}

/// Parses an apply body: JSON, or YAML (which JSON is a subset of).
pub fn parse_body(body: &[u8]) -> Result<Value> {
    if let Ok(value) = serde_json::from_slice(body) {
        return Ok(value);
    }
    serde_yaml_ng::from_slice(body).map_err(|error| Error::InvalidBody(error.to_string()))
}

/// Applies `applied` (the parsed body) over `live` (`None`: the object does not exist yet)
/// and returns the new object with its `metadata.managedFields`.
pub fn apply(live: Option<&Value>, applied: &Value, request: &Request<'_>) -> Result<Value> {
    if request.manager.is_empty() {
        return Err(Error::MissingFieldManager);
    }
    let has_type_meta = ["apiVersion", "kind"]
        .iter()
        .all(|name| applied.get(name).and_then(Value::as_str).is_some());
    if !applied.is_object() || !has_type_meta {
        return Err(Error::MissingTypeMeta);
    }
    if crate::patch::nests_deeper_than(applied, MAX_DEPTH) {
        return Err(Error::TooDeep);
    }
    let api_version = applied
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let config = scope(without_managed_fields(applied), request.subresource);
    let shape = Shape::root(request.schema.unwrap_or(&schema::OBJECT));
    let mut entries = live.map(managed_entries).unwrap_or_default();
    let live_object = live
        .map(without_managed_fields)
        .unwrap_or_else(|| Value::Object(Default::default()));

    let mut applied_set = FieldSet::new();
    fields::to_set(&config, shape, &mut Vec::new(), &mut applied_set)?;
    let applied_set = owned(applied_set, request.subresource);
    let mut merged =
        fields::merge(Some(&live_object), &config, shape, &mut Vec::new())?.unwrap_or_default();

    // Fields this manager applied before and applies no more go, unless someone else owns them.
    let is_applier =
        |entry: &Entry| entry.is(request.manager, Operation::Apply, request.subresource);
    let others = entries
        .iter()
        .filter(|entry| !is_applier(entry))
        .fold(FieldSet::new(), |all, entry| all.union(&entry.fields));
    if let Some(previous) = entries.iter().find(|entry| is_applier(entry)) {
        let stale = previous.fields.difference(&applied_set);
        for path in stale.iter() {
            if !others.iter().any(|owned| owned.starts_with(path)) {
                fields::remove(&mut merged, path, shape);
            }
        }
    }

    let comparison = owned_changes(&live_object, &merged, shape, request.subresource);
    let changed = comparison.added.union(&comparison.modified);
    let mut conflicts = Vec::new();
    for entry in entries.iter_mut().filter(|entry| !is_applier(entry)) {
        let conflicting = entry.fields.intersection(&changed);
        if request.force {
            entry.fields = entry.fields.difference(&conflicting);
        } else {
            let manager = entry.describe();
            conflicts.extend(conflicting.iter().map(|path| Conflict {
                manager: manager.clone(),
                field: managed_fields::display(path),
            }));
        }
        entry.fields = entry.fields.difference(&comparison.removed);
    }
    if !conflicts.is_empty() {
        return Err(Error::Conflict(conflicts));
    }

    let object_changed = merged != live_object;
    let entry = Entry {
        manager: request.manager.into(),
        operation: Operation::Apply,
        api_version,
        time: Some(request.time.into()),
        subresource: request.subresource.map(str::to_owned),
        fields: applied_set,
    };
    match entries.iter_mut().find(|entry| is_applier(entry)) {
        // An apply that changes nothing keeps the time of the last one that did.
        Some(existing) if !object_changed && existing.fields == entry.fields => {}
        Some(existing) => *existing = entry,
        None => entries.push(entry),
    }
    entries.retain(|entry| !entry.fields.is_empty());
    Ok(with_managed_fields(merged, &entries))
}

/// Who writes with a create, update or non-apply patch.
#[derive(Debug, Clone, Copy)]
pub struct Update<'a> {
    /// `?fieldManager=`, or what the caller derives from the User-Agent.
    pub manager: &'a str,
    /// The apiVersion of the request.
    pub api_version: &'a str,
    /// The time to record, RFC 3339.
    pub time: &'a str,
    /// `None` for the main resource, `Some("status")` for the status subresource.
    pub subresource: Option<&'a str>,
    /// The kind's list semantics; `None` for custom resources.
    pub schema: Option<&'static Type>,
}

/// Records an update from `old` (`None` for a create) to `new`: the fields that changed become
/// the updater's, other managers lose them, and removed fields are owned by no one. Returns
/// `new` with its `metadata.managedFields`. If `new` carries `managedFields` of its own (a
/// client may send them), they replace the old ones; an empty list resets them.
pub fn update(old: Option<&Value>, new: &Value, request: &Update<'_>) -> Result<Value> {
    let manager = if request.manager.is_empty() {
        "unknown"
    } else {
        request.manager
    };
    let shape = Shape::root(request.schema.unwrap_or(&schema::OBJECT));
    let sent = new
        .get("metadata")
        .and_then(|metadata| metadata.get("managedFields"));
    let mut entries = match sent {
        Some(Value::Array(sent)) if sent.is_empty() => return Ok(without_managed_fields(new)),
        Some(_) => managed_entries(new),
        None => old.map(managed_entries).unwrap_or_default(),
    };
    let old_object = old
        .map(without_managed_fields)
        .unwrap_or_else(|| Value::Object(Default::default()));
    let new_object = without_managed_fields(new);
    let comparison = owned_changes(&old_object, &new_object, shape, request.subresource);
    let changed = comparison.added.union(&comparison.modified);
    let is_updater = |entry: &Entry| entry.is(manager, Operation::Update, request.subresource);
    for entry in entries.iter_mut().filter(|entry| !is_updater(entry)) {
        entry.fields = entry
            .fields
            .difference(&changed)
            .difference(&comparison.removed);
    }
    if !changed.is_empty() || !comparison.removed.is_empty() {
        let previous = entries
            .iter()
            .find(|entry| is_updater(entry))
            .map(|entry| entry.fields.clone())
            .unwrap_or_default();
        let entry = Entry {
            manager: manager.into(),
            operation: Operation::Update,
            api_version: request.api_version.into(),
            time: Some(request.time.into()),
            subresource: request.subresource.map(str::to_owned),
            fields: previous.difference(&comparison.removed).union(&changed),
        };
        match entries.iter_mut().find(|entry| is_updater(entry)) {
            Some(existing) => *existing = entry,
            None => entries.push(entry),
        }
    }
    entries.retain(|entry| !entry.fields.is_empty());
    Ok(with_managed_fields(new_object, &entries))
}

/// The fields nobody owns: type meta and the metadata the server manages.
const SERVER_OWNED: &[&[&str]] = &[
    &["apiVersion"],
    &["kind"],
    &["metadata"],
    &["metadata", "name"],
    &["metadata", "namespace"],
    &["metadata", "creationTimestamp"],
    &["metadata", "selfLink"],
    &["metadata", "uid"],
    &["metadata", "clusterName"],
    &["metadata", "generation"],
    &["metadata", "managedFields"],
    &["metadata", "resourceVersion"],
];

/// `set` without the server-owned fields; for the status subresource, only `status`.
fn owned(set: FieldSet, subresource: Option<&str>) -> FieldSet {
    let status = field("status");
    let server_owned = |path: &Path| {
        SERVER_OWNED.iter().any(|owned| {
            owned.len() == path.len() && owned.iter().zip(path).all(|(o, p)| field(o) == *p)
        })
    };
    set.iter()
        .filter(|path| !server_owned(path))
        .filter(|path| subresource != Some("status") || path.first() == Some(&status))
        .cloned()
        .collect()
}

fn owned_changes(old: &Value, new: &Value, shape: Shape, subresource: Option<&str>) -> Comparison {
    let mut comparison = Comparison::default();
    fields::compare(
        Some(old),
        Some(new),
        shape,
        &mut Vec::new(),
        &mut comparison,
    );
    Comparison {
        added: owned(comparison.added, subresource),
        modified: owned(comparison.modified, subresource),
        removed: owned(comparison.removed, subresource),
    }
}

/// The part of an applied configuration that counts for the subresource.
fn scope(mut config: Value, subresource: Option<&str>) -> Value {
    if let Value::Object(members) = &mut config {
        match subresource {
            Some("status") => members.retain(|name, _| {
                matches!(name.as_str(), "apiVersion" | "kind" | "metadata" | "status")
            }),
            _ => {
                members.remove("status");
            }
        }
    }
    config
}

fn managed_entries(object: &Value) -> Vec<Entry> {
    // Kubernetes resets managed fields it cannot read rather than failing the request.
    managed_fields::parse(object).unwrap_or_default()
}

fn without_managed_fields(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("managedFields");
    }
    object
}

fn with_managed_fields(mut object: Value, entries: &[Entry]) -> Value {
    if entries.is_empty() {
        return object;
    }
    if let Value::Object(members) = &mut object {
        let metadata = members
            .entry("metadata")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Value::Object(metadata) = metadata {
            metadata.insert("managedFields".into(), managed_fields::render(entries));
        }
    }
    object
}
