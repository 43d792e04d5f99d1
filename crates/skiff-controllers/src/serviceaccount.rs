//! ServiceAccounts: every active namespace has a `default` ServiceAccount.
//!
//! Invariants: a namespace being deleted gets none; an existing one is never replaced.

pub mod shell;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// The ServiceAccounts to create.
pub fn plan(namespaces: &[Namespace], accounts: &[ServiceAccount]) -> Vec<ServiceAccount> {
    namespaces
        .iter()
        .filter(|ns| ns.metadata.deletion_timestamp.is_none())
        .filter(|ns| ns.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Terminating"))
        .filter_map(|ns| ns.metadata.name.clone())
        .filter(|ns| {
            !accounts.iter().any(|sa| {
                sa.metadata.namespace.as_deref() == Some(ns.as_str())
                    && sa.metadata.name.as_deref() == Some("default")
            })
        })
        .map(|ns| ServiceAccount {
            metadata: ObjectMeta {
                name: Some("default".into()),
                namespace: Some(ns),
                ..Default::default()
            },
            ..Default::default()
        })
        .collect()
}

#[cfg(test)]
mod tests;
