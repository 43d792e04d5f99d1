//! `metadata` validation: name or generateName by the resource's name rule, namespace presence
//! by scope, labels, annotations, owner references and finalizers; and on update, the fields
//! that may never change (name, namespace, uid, creationTimestamp).

use serde_json::Value;

use super::values::{list, text, text_or_empty};
use crate::field::{Error, Path};
use crate::names::{self, NameRule};
use crate::registry::Resource;

/// Errors in an object's `metadata` on create.
pub(super) fn object_meta(resource: &Resource, object: &Value) -> Vec<Error> {
    let path = Path::new("metadata");
    let empty = Value::Null;
    let metadata = object.get("metadata").unwrap_or(&empty);
    let mut errors = Vec::new();
    let rule = names::rule_for(&resource.group, &resource.plural);
    let name = text_or_empty(metadata, "name");
    let generate_name = text_or_empty(metadata, "generateName");
    if name.is_empty() && generate_name.is_empty() {
        errors.push(Error::required(
            &path.child("name"),
            "name or generateName is required",
        ));
    } else if !name.is_empty() {
        for reason in names::validate_name(rule, name) {
            errors.push(Error::invalid(&path.child("name"), name, &reason));
        }
    } else {
        let prefix = generate_name.trim_end_matches('-');
        let checked = if prefix.is_empty() { "a" } else { prefix };
        let reasons = match rule {
            NameRule::PathSegment => names::path_segment(checked),
            _ => names::validate_name(rule, checked),
        };
        for reason in reasons {
            errors.push(Error::invalid(
                &path.child("generateName"),
                generate_name,
                &reason,
            ));
        }
    }
    let namespace = text_or_empty(metadata, "namespace");
    if resource.is_namespaced() {
        if namespace.is_empty() {
            errors.push(Error::required(&path.child("namespace"), ""));
        } else {
            for reason in names::dns1123_label(namespace) {
                errors.push(Error::invalid(&path.child("namespace"), namespace, &reason));
            }
        }
    } else if !namespace.is_empty() {
        errors.push(Error::forbidden(
            &path.child("namespace"),
            "not allowed on this type",
        ));
    }
    errors.extend(names::validate_labels(
        &names::string_map(metadata.get("labels")),
        &path.child("labels"),
    ));
    errors.extend(names::validate_annotations(
        &names::string_map(metadata.get("annotations")),
        &path.child("annotations"),
    ));
    owner_references(
        &mut errors,
        &path.child("ownerReferences"),
        list(metadata, "ownerReferences"),
    );
    for (index, finalizer) in list(metadata, "finalizers").iter().enumerate() {
        let finalizer = finalizer.as_str().unwrap_or_default();
        for reason in names::qualified_name(finalizer) {
            errors.push(Error::invalid(
                &path.child("finalizers").index(index),
                finalizer,
                &reason,
            ));
        }
    }
    errors
}

fn owner_references(errors: &mut Vec<Error>, path: &Path, references: &[Value]) {
    let mut controllers = 0;
    for (index, reference) in references.iter().enumerate() {
        let at = path.index(index);
        for field in ["apiVersion", "kind", "name", "uid"] {
            if text(reference, field).is_none_or(str::is_empty) {
                errors.push(Error::required(&at.child(field), ""));
            }
        }
        if reference.get("controller").and_then(Value::as_bool) == Some(true) {
            controllers += 1;
        }
    }
    if controllers > 1 {
        errors.push(Error::invalid(
            path,
            Value::Array(references.to_vec()),
            "Only one reference can have Controller set to true",
        ));
    }
}

/// The template `metadata` of a workload: labels and annotations only.
pub(super) fn template_meta(errors: &mut Vec<Error>, path: &Path, template: &Value) {
    let metadata = template.get("metadata");
    let labels = names::string_map(metadata.and_then(|metadata| metadata.get("labels")));
    errors.extend(names::validate_labels(&labels, &path.child("labels")));
    let annotations = names::string_map(metadata.and_then(|metadata| metadata.get("annotations")));
    errors.extend(names::validate_annotations(
        &annotations,
        &path.child("annotations"),
    ));
}

/// Errors for metadata fields changed by an update that must never change.
pub(super) fn object_meta_update(new: &Value, old: &Value) -> Vec<Error> {
    let path = Path::new("metadata");
    let mut errors = Vec::new();
    for field in ["name", "namespace", "uid", "creationTimestamp"] {
        let pointer = format!("/metadata/{field}");
        let before = old.pointer(&pointer).filter(|value| !value.is_null());
        let after = new.pointer(&pointer).filter(|value| !value.is_null());
        if before.is_some() && before != after {
            let shown = after.cloned().unwrap_or(Value::Null);
            errors.push(Error::invalid(
                &path.child(field),
                shown,
                "field is immutable",
            ));
        }
    }
    errors
}
