//! Minimal OpenAPI v3 documents: an index (`/openapi/v3`) and one document per group version
//! (`/openapi/v3/apis/apps/v1`) holding only PATCH operations, each tagged with
//! `x-kubernetes-group-version-kind` and declaring the `fieldValidation` and `fieldManager` query
//! parameters (KUBE-API.md §2.2). That is what makes kubectl trust server-side field validation.
//!
//! Invariants: no operation has a `requestBody` (so kubectl computes strategic merge patches from
//! its built-in metadata instead of our schemas, which carry none); the index's
//! `serverRelativeURL` carries a content hash of the document it points to, equal for equal
//! registries and different whenever the document changes (kubectl caches by that hash).

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha512};

use super::{Registry, Resource, Scope, group_version};

/// The version reported in `info.version`.
const INFO_VERSION: &str = "v1.33.0";

/// `api/v1` or `apis/<group>/<version>`: the key of a group version in the index.
pub fn openapi_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{}", group_version(group, version))
    }
}

/// The upper-case hex SHA-512 of a document's JSON: its `?hash=` in the index.
pub fn content_hash(document: &Value) -> String {
    let bytes = serde_json::to_vec(document).unwrap_or_default();
    hex::encode_upper(Sha512::digest(&bytes))
}

fn patch_operation(group: &str, version: &str, kind: &str) -> Value {
    json!({
        "patch": {
            "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": kind},
            "x-kubernetes-action": "patch",
            "parameters": [
                {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                {"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": true}},
            ],
            "responses": {"200": {"description": "OK"}, "201": {"description": "Created"}},
        }
    })
}

fn object_path(resource: &Resource) -> String {
    let root = if resource.group.is_empty() {
        format!("/api/{}", resource.version)
    } else {
        format!("/apis/{}/{}", resource.group, resource.version)
    };
    match resource.scope {
        Scope::Namespaced => format!(
            "{root}/namespaces/{{namespace}}/{}/{{name}}",
            resource.plural
        ),
        Scope::Cluster => format!("{root}/{}/{{name}}", resource.plural),
    }
}

impl Registry {
    /// The group versions that have an OpenAPI document (those with a patchable resource).
    fn openapi_group_versions(&self) -> Vec<(String, String)> {
        let mut found = Vec::new();
        for group in self.groups() {
            for version in &group.versions {
                if self
                    .resources_in(&group.name, version)
                    .any(|resource| resource.supports("patch"))
                {
                    found.push((group.name.clone(), version.clone()));
                }
            }
        }
        found
    }

    /// `GET /openapi/v3/<path>` for `path` like `api/v1` or `apis/apps/v1`; `None` when the
    /// path names no served group version.
    pub fn openapi_v3_document(&self, path: &str) -> Option<Value> {
        let path = path.trim_matches('/');
        let (group, version) = self
            .openapi_group_versions()
            .into_iter()
            .find(|(group, version)| openapi_path(group, version) == path)?;
        let mut paths = Map::new();
        for resource in self.resources_in(&group, &version) {
            if !resource.supports("patch") {
                continue;
            }
            let base = object_path(resource);
            paths.insert(
                base.clone(),
                patch_operation(&resource.group, &resource.version, &resource.kind),
            );
            for sub in &resource.subresources {
                if !sub.verbs.iter().any(|verb| verb == "patch") {
                    continue;
                }
                let (sub_group, sub_version, sub_kind) = if sub.name == "status" {
                    (&resource.group, &resource.version, &resource.kind)
                } else {
                    (&sub.group, &sub.version, &sub.kind)
                };
                paths.insert(
                    format!("{base}/{}", sub.name),
                    patch_operation(sub_group, sub_version, sub_kind),
                );
            }
        }
        Some(json!({
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": INFO_VERSION},
            "paths": paths,
            "components": {"schemas": {}},
        }))
    }

    /// `GET /openapi/v3`: every group version's document, addressed with its content hash.
    pub fn openapi_v3_index(&self) -> Value {
        let mut paths = Map::new();
        for (group, version) in self.openapi_group_versions() {
            let path = openapi_path(&group, &version);
            if let Some(document) = self.openapi_v3_document(&path) {
                let url = format!("/openapi/v3/{path}?hash={}", content_hash(&document));
                paths.insert(path, json!({"serverRelativeURL": url}));
            }
        }
        json!({"paths": paths})
    }
}

#[cfg(test)]
mod tests;
