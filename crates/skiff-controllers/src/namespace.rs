//! Namespace lifecycle: a namespace being deleted has all its contents deleted (every namespaced
//! resource the API serves), and when nothing is left its `kubernetes` finalizer is removed so
//! the API server can remove it.
//!
//! Invariants: nothing is deleted in a namespace that is not being deleted; the finalizer is
//! removed only when no object of any namespaced resource remains.

pub mod shell;

use k8s_openapi::api::core::v1::Namespace;

/// The finalizer the namespace controller owns.
pub const FINALIZER: &str = "kubernetes";

/// One write the shell performs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Delete every object of this resource (group, version, plural) in the namespace.
    DeleteAll {
        group: String,
        version: String,
        plural: String,
    },
    /// Remove the `kubernetes` finalizer (through the `finalize` subresource).
    Finalize,
}

/// Plan for one namespace given how many objects of each resource remain in it.
pub fn plan(namespace: &Namespace, remaining: &[((String, String, String), usize)]) -> Vec<Change> {
    if namespace.metadata.deletion_timestamp.is_none() {
        return Vec::new();
    }
    let has_finalizer = namespace
        .spec
        .as_ref()
        .and_then(|s| s.finalizers.as_ref())
        .is_some_and(|f| f.iter().any(|f| f == FINALIZER));
    if !has_finalizer {
        return Vec::new();
    }
    let left: Vec<Change> = remaining
        .iter()
        .filter(|(_, count)| *count > 0)
        .map(|((group, version, plural), _)| Change::DeleteAll {
            group: group.clone(),
            version: version.clone(),
            plural: plural.clone(),
        })
        .collect();
    if left.is_empty() {
        vec![Change::Finalize]
    } else {
        left
    }
}

#[cfg(test)]
mod tests;
