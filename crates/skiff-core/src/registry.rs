//! The resource registry: every built-in resource Skiff serves, with the facts discovery,
//! routing, storage and kubectl need about it (group, version, kind, plural, singular, short
//! names, categories, scope, verbs, subresources).
//!
//! Invariants:
//! - (group, version, plural) and (group, version, kind) are unique in a [`Registry`].
//! - Each group has one preferred version, the first in its version list (`autoscaling` prefers
//!   `v2`), and groups are listed in kube-apiserver's priority order (the core group first).
//! - Storage keys are `/registry/<group>/<plural>/<namespace>/<name>` (cluster-scoped: no
//!   namespace segment); the core group, whose name is empty, uses the segment `core`, so no key
//!   has an empty segment and no group can collide with it (real group names contain a dot or
//!   are well-known words, never `core`). Versions of one group share their objects' keys.
//!
//! Discovery documents live in `registry/discovery.rs`, the minimal OpenAPI v3 documents in
//! `registry/openapi.rs`, and the built-in table in `registry/builtin.rs`.

mod builtin;
pub mod discovery;
pub mod openapi;

/// Whether objects of a resource live in a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Namespaced,
    Cluster,
}

impl Scope {
    /// `Namespaced` or `Cluster`, as aggregated discovery spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Namespaced => "Namespaced",
            Self::Cluster => "Cluster",
        }
    }
}

/// A subresource (`pods/status`, `deployments/scale`, `pods/eviction`) with its own kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subresource {
    pub name: String,
    pub group: String,
    pub version: String,
    pub kind: String,
    pub verbs: Vec<String>,
}

/// One resource in one group version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub list_kind: String,
    pub plural: String,
    pub singular: String,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub scope: Scope,
    pub verbs: Vec<String>,
    pub subresources: Vec<Subresource>,
    /// False for virtual resources (metrics, access reviews) that are computed, never stored.
    pub stored: bool,
}

impl Resource {
    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        group_version(&self.group, &self.version)
    }

    /// Whether objects live in a namespace.
    pub fn is_namespaced(&self) -> bool {
        self.scope == Scope::Namespaced
    }

    /// Whether the resource supports `verb` (`get`, `list`, `watch`, `create`, ...).
    pub fn supports(&self, verb: &str) -> bool {
        self.verbs.iter().any(|supported| supported == verb)
    }

    /// The subresource called `name`, if the resource has it.
    pub fn subresource(&self, name: &str) -> Option<&Subresource> {
        self.subresources.iter().find(|sub| sub.name == name)
    }

    /// The storage prefix of every object of the resource: `/registry/apps/deployments`.
    pub fn storage_prefix(&self) -> String {
        format!("/registry/{}/{}", storage_group(&self.group), self.plural)
    }

    /// The prefix of the objects in one namespace (the prefix itself when cluster-scoped).
    pub fn storage_namespace_prefix(&self, namespace: &str) -> String {
        match self.scope {
            Scope::Namespaced => format!("{}/{namespace}", self.storage_prefix()),
            Scope::Cluster => self.storage_prefix(),
        }
    }

    /// The storage key of one object (`namespace` is ignored for cluster-scoped resources).
    pub fn storage_key(&self, namespace: &str, name: &str) -> String {
        format!("{}/{name}", self.storage_namespace_prefix(namespace))
    }
}

/// The storage segment of a group: its name, or `core` for the empty core group.
pub fn storage_group(group: &str) -> &str {
    if group.is_empty() { "core" } else { group }
}

/// `v1` for the core group, `group/version` otherwise.
pub fn group_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

/// Split an `apiVersion` into (group, version): `apps/v1` → (`apps`, `v1`), `v1` → (``, `v1`).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((group, version)) => (group, version),
        None => ("", api_version),
    }
}

/// A group with its versions, the preferred one first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub versions: Vec<String>,
}

impl Group {
    /// The version clients should use.
    pub fn preferred_version(&self) -> Option<&str> {
        self.versions.first().map(String::as_str)
    }
}

/// The set of resources a server serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    groups: Vec<Group>,
    resources: Vec<Resource>,
}

impl Registry {
    /// Every built-in resource of DESIGN.md §3.
    pub fn builtin() -> Self {
        let (groups, resources) = builtin::table();
        Self { groups, resources }
    }

    /// All resources, grouped by group in priority order, versions in preference order.
    pub fn resources(&self) -> &[Resource] {
        &self.resources
    }

    /// All groups in priority order (the core group, named ``, first).
    pub fn groups(&self) -> &[Group] {
        &self.groups
    }

    /// The group called `name`.
    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|group| group.name == name)
    }

    /// The preferred version of a group.
    pub fn preferred_version(&self, group: &str) -> Option<&str> {
        self.group(group).and_then(Group::preferred_version)
    }

    /// Whether the group version is served.
    pub fn has_group_version(&self, group: &str, version: &str) -> bool {
        self.group(group)
            .is_some_and(|found| found.versions.iter().any(|served| served == version))
    }

    /// The resources of one group version, in table order.
    pub fn resources_in(&self, group: &str, version: &str) -> impl Iterator<Item = &Resource> {
        let (group, version) = (group.to_string(), version.to_string());
        self.resources
            .iter()
            .filter(move |resource| resource.group == group && resource.version == version)
    }

    /// The resource at `/apis/<group>/<version>/<plural>`.
    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<&Resource> {
        self.resources_in(group, version)
            .find(|resource| resource.plural == plural)
    }

    /// The resource serving `kind` in one group version.
    pub fn by_kind(&self, group: &str, version: &str, kind: &str) -> Option<&Resource> {
        self.resources_in(group, version)
            .find(|resource| resource.kind == kind)
    }

    /// The resource serving `kind` in the preferred version of `group` that has it.
    pub fn by_group_kind(&self, group: &str, kind: &str) -> Option<&Resource> {
        let versions = &self.group(group)?.versions;
        versions
            .iter()
            .find_map(|version| self.by_kind(group, version, kind))
    }

    /// Resources called `name` in any group: plural, singular or short name (case-insensitive),
    /// or `plural.group` / `singular.group`. Only the preferred version of each group is
    /// returned; groups come in priority order, so the first match is the one kubectl picks.
    pub fn resolve(&self, name: &str) -> Vec<&Resource> {
        let wanted = name.to_ascii_lowercase();
        let mut found = Vec::new();
        for group in &self.groups {
            let Some(version) = group.preferred_version() else {
                continue;
            };
            for resource in self.resources_in(&group.name, version) {
                if resource_answers_to(resource, &wanted) {
                    found.push(resource);
                }
            }
        }
        found
    }
}

fn resource_answers_to(resource: &Resource, wanted: &str) -> bool {
    let (base, group) = match wanted.split_once('.') {
        Some((base, group)) => (base, Some(group)),
        None => (wanted, None),
    };
    if let Some(group) = group
        && group != resource.group
    {
        return false;
    }
    resource.plural == base
        || resource.singular == base
        || resource.kind.eq_ignore_ascii_case(base)
        || resource.short_names.iter().any(|short| short == base)
}

#[cfg(test)]
mod tests;
