//! The garbage collector: objects whose owners are all gone are deleted (background); owners
//! deleted with `propagationPolicy: Foreground` (finalizer `foregroundDeletion`) have their
//! dependents deleted first and lose the finalizer once no dependent blocks them; owners deleted
//! with `Orphan` (finalizer `orphan`) have their references removed from their dependents, then
//! lose the finalizer.
//!
//! Invariants: an object is deleted as an orphan only when every owner is absent from the graph
//! (the shell confirms absence with a live read before deleting: a cache may lag); dangling
//! references next to a live owner are removed, not acted on; the plan is pure over a graph of
//! object nodes.

pub mod shell;

use std::collections::HashMap;

/// One object as the collector sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub uid: String,
    /// `apiVersion`, `kind` (for owner references), and the resource's plural.
    pub api_version: String,
    pub kind: String,
    pub plural: String,
    pub namespace: Option<String>,
    pub name: String,
    pub owners: Vec<Owner>,
    pub deleting: bool,
    pub finalizers: Vec<String>,
}

/// An owner reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub uid: String,
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub block_owner_deletion: bool,
}

/// One write the shell performs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Delete an object whose owners are gone (after confirming with the API), with this
    /// propagation policy.
    Delete {
        uid: String,
        foreground: bool,
        absent_owners: Vec<Owner>,
    },
    /// Remove the references to these owner uids from an object.
    RemoveOwners { uid: String, owners: Vec<String> },
    /// Remove a finalizer from an object.
    RemoveFinalizer { uid: String, finalizer: String },
}

/// The foreground deletion finalizer.
pub const FOREGROUND: &str = "foregroundDeletion";
/// The orphan finalizer.
pub const ORPHAN: &str = "orphan";

/// Plan over the whole graph.
pub fn plan(nodes: &[Node]) -> Vec<Change> {
    let by_uid: HashMap<&str, &Node> = nodes.iter().map(|n| (n.uid.as_str(), n)).collect();
    let mut dependents: HashMap<&str, Vec<&Node>> = HashMap::new();
    for node in nodes {
        for owner in &node.owners {
            dependents.entry(owner.uid.as_str()).or_default().push(node);
        }
    }
    let mut changes = Vec::new();
    for node in nodes {
        // Owners in the graph are present; namespaced dependents can only have owners in their
        // namespace or cluster-scoped ones (the uid lookup covers both).
        let absent: Vec<Owner> = node
            .owners
            .iter()
            .filter(|o| !by_uid.contains_key(o.uid.as_str()))
            .cloned()
            .collect();
        if !node.owners.is_empty() && absent.len() == node.owners.len() && !node.deleting {
            changes.push(Change::Delete {
                uid: node.uid.clone(),
                foreground: false,
                absent_owners: absent,
            });
            continue;
        }
        if !absent.is_empty() && !node.deleting {
            changes.push(Change::RemoveOwners {
                uid: node.uid.clone(),
                owners: absent.iter().map(|o| o.uid.clone()).collect(),
            });
        }
        // Owners waiting on their dependents (foreground deletion).
        let waiting: Vec<&Owner> = node
            .owners
            .iter()
            .filter(|o| {
                by_uid.get(o.uid.as_str()).is_some_and(|owner| {
                    owner.deleting && owner.finalizers.iter().any(|f| f == FOREGROUND)
                })
            })
            .collect();
        if !waiting.is_empty() && !node.deleting {
            let has_dependents = dependents
                .get(node.uid.as_str())
                .is_some_and(|d| !d.is_empty());
            changes.push(Change::Delete {
                uid: node.uid.clone(),
                foreground: has_dependents,
                absent_owners: Vec::new(),
            });
        }
    }
    for node in nodes.iter().filter(|n| n.deleting) {
        let mine = dependents
            .get(node.uid.as_str())
            .cloned()
            .unwrap_or_default();
        if node.finalizers.iter().any(|f| f == ORPHAN) {
            for dependent in &mine {
                changes.push(Change::RemoveOwners {
                    uid: dependent.uid.clone(),
                    owners: vec![node.uid.clone()],
                });
            }
            changes.push(Change::RemoveFinalizer {
                uid: node.uid.clone(),
                finalizer: ORPHAN.into(),
            });
        } else if node.finalizers.iter().any(|f| f == FOREGROUND) {
            let blocking = mine.iter().any(|d| {
                d.owners
                    .iter()
                    .any(|o| o.uid == node.uid && o.block_owner_deletion)
            });
            if !blocking {
                changes.push(Change::RemoveFinalizer {
                    uid: node.uid.clone(),
                    finalizer: FOREGROUND.into(),
                });
            }
        }
    }
    changes
}

#[cfg(test)]
mod tests;
