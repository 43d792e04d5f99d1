//! Discovery documents built from a [`Registry`]: legacy `APIVersions` (`/api`), `APIGroupList`
//! (`/apis`), `APIGroup` (`/apis/<group>`), `APIResourceList` (`/api/v1`, `/apis/<g>/<v>`), and
//! aggregated `APIGroupDiscoveryList` (apidiscovery.k8s.io/v2) for `/api` and `/apis`.
//!
//! Invariants: the legacy per-group-version list carries one entry per subresource named
//! `<plural>/<subresource>`, with `group`/`version` only when they differ from the list's own
//! (`pods/eviction` is `policy/v1`), because `kubectl drain` finds eviction support there; the
//! aggregated list must be served with [`AGGREGATED_CONTENT_TYPE`] exactly, or kubectl misreads it.

use serde_json::{Map, Value, json};

use super::{Registry, Resource, Subresource, group_version};

/// The Content-Type of an aggregated discovery response.
pub const AGGREGATED_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Which aggregated discovery document: the core group (`/api`) or the named groups (`/apis`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscoveryRoot {
    Api,
    Apis,
}

fn names(items: &[String]) -> Value {
    Value::Array(items.iter().map(|item| json!(item)).collect())
}

fn group_version_entry(group: &str, version: &str) -> Value {
    json!({"groupVersion": group_version(group, version), "version": version})
}

fn legacy_resource_entry(resource: &Resource) -> Value {
    let mut entry = Map::new();
    entry.insert("name".into(), json!(resource.plural));
    entry.insert("singularName".into(), json!(resource.singular));
    entry.insert("namespaced".into(), json!(resource.is_namespaced()));
    entry.insert("kind".into(), json!(resource.kind));
    entry.insert("verbs".into(), names(&resource.verbs));
    if !resource.short_names.is_empty() {
        entry.insert("shortNames".into(), names(&resource.short_names));
    }
    if !resource.categories.is_empty() {
        entry.insert("categories".into(), names(&resource.categories));
    }
    Value::Object(entry)
}

fn legacy_subresource_entry(resource: &Resource, sub: &Subresource) -> Value {
    let mut entry = Map::new();
    entry.insert(
        "name".into(),
        json!(format!("{}/{}", resource.plural, sub.name)),
    );
    entry.insert("singularName".into(), json!(""));
    entry.insert("namespaced".into(), json!(resource.is_namespaced()));
    if sub.group != resource.group || sub.version != resource.version {
        entry.insert("group".into(), json!(sub.group));
        entry.insert("version".into(), json!(sub.version));
    }
    entry.insert("kind".into(), json!(sub.kind));
    entry.insert("verbs".into(), names(&sub.verbs));
    Value::Object(entry)
}

fn response_kind(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "version": version, "kind": kind})
}

fn aggregated_resource_entry(resource: &Resource) -> Value {
    let mut entry = Map::new();
    entry.insert("resource".into(), json!(resource.plural));
    entry.insert(
        "responseKind".into(),
        response_kind(&resource.group, &resource.version, &resource.kind),
    );
    entry.insert("scope".into(), json!(resource.scope.as_str()));
    entry.insert("singularResource".into(), json!(resource.singular));
    entry.insert("verbs".into(), names(&resource.verbs));
    if !resource.short_names.is_empty() {
        entry.insert("shortNames".into(), names(&resource.short_names));
    }
    if !resource.categories.is_empty() {
        entry.insert("categories".into(), names(&resource.categories));
    }
    if !resource.subresources.is_empty() {
        let subresources = resource
            .subresources
            .iter()
            .map(|sub| {
                json!({
                    "subresource": sub.name,
                    "responseKind": response_kind(&sub.group, &sub.version, &sub.kind),
                    "verbs": names(&sub.verbs),
                })
            })
            .collect();
        entry.insert("subresources".into(), Value::Array(subresources));
    }
    Value::Object(entry)
}

impl Registry {
    /// `GET /api` (legacy): the core group's versions.
    pub fn api_versions(&self, server_address: &str) -> Value {
        let versions = self
            .group("")
            .map(|group| names(&group.versions))
            .unwrap_or_else(|| json!([]));
        json!({
            "kind": "APIVersions",
            "versions": versions,
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
        })
    }

    fn api_group_entry(&self, name: &str) -> Option<Value> {
        let group = self.group(name)?;
        let preferred = group.preferred_version()?;
        let versions: Vec<Value> = group
            .versions
            .iter()
            .map(|version| group_version_entry(name, version))
            .collect();
        Some(json!({
            "name": name,
            "versions": versions,
            "preferredVersion": group_version_entry(name, preferred),
        }))
    }

    /// `GET /apis` (legacy): every named group.
    pub fn api_group_list(&self) -> Value {
        let groups: Vec<Value> = self
            .groups()
            .iter()
            .filter(|group| !group.name.is_empty())
            .filter_map(|group| self.api_group_entry(&group.name))
            .collect();
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
    }

    /// `GET /apis/<group>`: one named group, `None` when it is not served.
    pub fn api_group(&self, group: &str) -> Option<Value> {
        if group.is_empty() {
            return None;
        }
        let mut entry = self.api_group_entry(group)?;
        if let Value::Object(object) = &mut entry {
            object.insert("kind".into(), json!("APIGroup"));
            object.insert("apiVersion".into(), json!("v1"));
        }
        Some(entry)
    }

    /// `GET /api/v1` or `GET /apis/<group>/<version>`: the resources and subresources of one
    /// group version, `None` when it is not served.
    pub fn api_resource_list(&self, group: &str, version: &str) -> Option<Value> {
        if !self.has_group_version(group, version) {
            return None;
        }
        let mut entries = Vec::new();
        for resource in self.resources_in(group, version) {
            entries.push(legacy_resource_entry(resource));
            for sub in &resource.subresources {
                entries.push(legacy_subresource_entry(resource, sub));
            }
        }
        Some(json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": group_version(group, version),
            "resources": entries,
        }))
    }

    /// `GET /api` or `GET /apis` asking for `as=APIGroupDiscoveryList`; serve it with
    /// [`AGGREGATED_CONTENT_TYPE`].
    pub fn aggregated_discovery(&self, root: DiscoveryRoot) -> Value {
        let items: Vec<Value> = self
            .groups()
            .iter()
            .filter(|group| match root {
                DiscoveryRoot::Api => group.name.is_empty(),
                DiscoveryRoot::Apis => !group.name.is_empty(),
            })
            .map(|group| {
                let versions: Vec<Value> = group
                    .versions
                    .iter()
                    .map(|version| {
                        let resources: Vec<Value> = self
                            .resources_in(&group.name, version)
                            .map(aggregated_resource_entry)
                            .collect();
                        json!({"version": version, "resources": resources, "freshness": "Current"})
                    })
                    .collect();
                json!({"metadata": {"name": group.name}, "versions": versions})
            })
            .collect();
        json!({
            "kind": "APIGroupDiscoveryList",
            "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {},
            "items": items,
        })
    }
}

#[cfg(test)]
mod tests;
