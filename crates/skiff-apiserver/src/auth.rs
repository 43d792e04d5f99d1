//! Who is calling (authentication) and whether they may (authorization).
//!
//! Authentication: an x509 client certificate verified by TLS against the cluster CA (CN is the
//! user, O the groups), or a bearer token from the token table (`/skiff/tokens/<sha256>` in the
//! store). Certificates that carry the store's roles (`skiff:member`, `skiff:store`) are not
//! Kubernetes identities and are refused. No credentials: 401.
//!
//! Authorization is the seam where RBAC plugs in: `system:masters` may do anything; nodes
//! (`system:nodes`) get the node authorizer's narrow rights; everyone else is refused with
//! Kubernetes' exact message until RBAC exists.

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use skiff_core::status;

use crate::request_info::RequestInfo;

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    #[serde(default)]
    pub uid: String,
    #[serde(default)]
    pub groups: Vec<String>,
}

pub const MASTERS: &str = "system:masters";
pub const NODES: &str = "system:nodes";
pub const NODE_PREFIX: &str = "system:node:";

impl User {
    pub fn in_group(&self, g: &str) -> bool {
        self.groups.iter().any(|x| x == g)
    }

    /// The node name if this is a node identity (`system:node:<name>` in `system:nodes`).
    pub fn node_name(&self) -> Option<&str> {
        if self.in_group(NODES) {
            self.name.strip_prefix(NODE_PREFIX)
        } else {
            None
        }
    }
}

/// A user from a verified client certificate.
pub fn from_certificate(der: &[u8]) -> Result<User, status::Error> {
    let (cn, orgs) = skiff_store::tls::subject_of(der)
        .ok_or_else(|| status::Error::unauthorized("the client certificate cannot be parsed"))?;
    if orgs
        .iter()
        .any(|o| o == skiff_store::tls::ROLE_MEMBER || o == skiff_store::tls::ROLE_STORE)
    {
        return Err(status::Error::unauthorized(
            "store certificates are not Kubernetes identities; use the admin kubeconfig",
        ));
    }
    let name = cn
        .filter(|c| !c.is_empty())
        .ok_or_else(|| status::Error::unauthorized("the client certificate has no common name"))?;
    let mut groups = orgs;
    groups.push("system:authenticated".into());
    Ok(User {
        name,
        uid: String::new(),
        groups,
    })
}

/// The storage key of a bearer token (only its hash is stored).
pub fn token_key(token: &str) -> String {
    format!(
        "/skiff/tokens/{}",
        hex::encode(Sha256::digest(token.as_bytes()))
    )
}

/// A short-lived cache of bearer-token lookups.
#[derive(Default)]
pub struct TokenCache {
    entries: Mutex<HashMap<String, (Option<User>, Instant)>>,
}

impl TokenCache {
    const TTL: Duration = Duration::from_secs(10);

    pub fn get(&self, token: &str) -> Option<Option<User>> {
        let guard = self.entries.lock().ok()?;
        let (user, at) = guard.get(token)?;
        (at.elapsed() < Self::TTL).then(|| user.clone())
    }

    pub fn put(&self, token: &str, user: Option<User>) {
        if let Ok(mut guard) = self.entries.lock() {
            if guard.len() > 10_000 {
                guard.clear();
            }
            guard.insert(token.to_string(), (user, Instant::now()));
        }
    }
}

/// The bearer token of a request, if any.
pub fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    let v = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Whether `user` may do what `info` asks.
pub fn authorize(user: &User, info: &RequestInfo) -> Result<(), status::Error> {
    if user.in_group(MASTERS) {
        return Ok(());
    }
    if let Some(node) = user.node_name()
        && node_may(node, info)
    {
        return Ok(());
    }
    Err(forbidden(user, info))
}

/// The node authorizer: an agent may read what pods need, write its own Node and Lease, the
/// status of pods, Events, and delete pods (after their graceful termination).
fn node_may(node: &str, info: &RequestInfo) -> bool {
    let read = matches!(info.verb.as_str(), "get" | "list" | "watch");
    let own = info.name == node;
    match (
        info.group.as_str(),
        info.resource.as_str(),
        info.subresource.as_str(),
    ) {
        ("", "nodes", "") => {
            read || (info.verb == "create")
                || (own && matches!(info.verb.as_str(), "update" | "patch"))
        }
        ("", "nodes", "status") => own && matches!(info.verb.as_str(), "get" | "update" | "patch"),
        ("coordination.k8s.io", "leases", "") => {
            info.namespace == "kube-node-lease" && (own || info.verb == "create" || read)
        }
        ("", "pods", "") => read || info.verb == "delete",
        ("", "pods", "status") => matches!(info.verb.as_str(), "get" | "update" | "patch"),
        ("", "events", "") | ("events.k8s.io", "events", "") => {
            matches!(info.verb.as_str(), "create" | "update" | "patch") || read
        }
        (
            "",
            "configmaps"
            | "secrets"
            | "services"
            | "endpoints"
            | "persistentvolumeclaims"
            | "persistentvolumes",
            "",
        ) => read,
        ("discovery.k8s.io", "endpointslices", "")
        | ("networking.k8s.io", "ingresses" | "ingressclasses", "") => read,
        ("storage.k8s.io", "storageclasses", "") => read,
        ("", "serviceaccounts", "token") => info.verb == "create",
        ("", "serviceaccounts", "") => read,
        _ => false,
    }
}

/// Kubernetes' refusal: `pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "default"`.
pub fn forbidden(user: &User, info: &RequestInfo) -> status::Error {
    let resource = if info.subresource.is_empty() {
        info.resource.clone()
    } else {
        format!("{}/{}", info.resource, info.subresource)
    };
    let scope = if info.namespace.is_empty() {
        if info.is_resource_request {
            " at the cluster scope".to_string()
        } else {
            String::new()
        }
    } else {
        format!(" in the namespace \"{}\"", info.namespace)
    };
    let why = if info.is_resource_request {
        format!(
            "User \"{}\" cannot {} resource \"{}\" in API group \"{}\"{}",
            user.name, info.verb, resource, info.group, scope
        )
    } else {
        format!(
            "User \"{}\" cannot {} path \"{}\"",
            user.name, info.verb, info.path
        )
    };
    status::Error::forbidden(&info.group, &info.resource, &info.name, &why)
}
