//! A per-namespace index over a cache's objects, so a controller that reads "the pods in the
//! namespaces where I have objects" on every wake pays for those namespaces only, not for every
//! pod in the cluster (with 10,000 pods elsewhere, the endpoints controller's scan of all of them
//! on every pod change took a tenth of the leader's CPU while the scheduler bench ran).
//!
//! Pure data: the cache's shell feeds it the store's own `Arc`s (no second copy of any object).
//! Invariant: after `rebuild` and every later `upsert`/`remove`, it holds exactly the namespaced
//! objects given, once each, under (namespace, name); cluster-scoped objects are not indexed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use kube::Resource;

/// Objects by namespace, then name.
#[derive(Debug)]
pub struct NamespaceIndex<K> {
    by_namespace: HashMap<String, HashMap<String, Arc<K>>>,
}

impl<K> Default for NamespaceIndex<K> {
    fn default() -> Self {
        NamespaceIndex {
            by_namespace: HashMap::new(),
        }
    }
}

fn key<K: Resource>(object: &K) -> Option<(&str, &str)> {
    let meta = object.meta();
    Some((meta.namespace.as_deref()?, meta.name.as_deref()?))
}

impl<K: Resource> NamespaceIndex<K> {
    /// Adds or replaces one object.
    pub fn upsert(&mut self, object: Arc<K>) {
        let Some((namespace, name)) = key(object.as_ref()) else {
            return;
        };
        let name = name.to_string();
        let namespace = namespace.to_string();
        self.by_namespace
            .entry(namespace)
            .or_default()
            .insert(name, object);
    }

    /// Forgets one object (by namespace and name).
    pub fn remove(&mut self, object: &K) {
        let Some((namespace, name)) = key(object) else {
            return;
        };
        if let Some(objects) = self.by_namespace.get_mut(namespace) {
            objects.remove(name);
            if objects.is_empty() {
                self.by_namespace.remove(namespace);
            }
        }
    }

    /// Replaces everything (after a relist).
    pub fn rebuild(&mut self, objects: impl IntoIterator<Item = Arc<K>>) {
        self.by_namespace.clear();
        for object in objects {
            self.upsert(object);
        }
    }

    /// The objects in these namespaces.
    pub fn in_namespaces<'a>(
        &'a self,
        namespaces: &'a HashSet<String>,
    ) -> impl Iterator<Item = &'a Arc<K>> + 'a {
        namespaces
            .iter()
            .filter_map(|namespace| self.by_namespace.get(namespace))
            .flat_map(HashMap::values)
    }

    /// How many objects are indexed.
    pub fn len(&self) -> usize {
        self.by_namespace.values().map(HashMap::len).sum()
    }

    /// Whether nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.by_namespace.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Namespace, Pod};

    fn pod(namespace: &str, name: &str, image: &str) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"namespace": namespace, "name": name},
                "spec": {"containers": [{"name": "c", "image": image}]}
            }))
            .unwrap_or_default(),
        )
    }

    fn names(index: &NamespaceIndex<Pod>, namespaces: &[&str]) -> Vec<String> {
        let set: HashSet<String> = namespaces.iter().map(|s| s.to_string()).collect();
        let mut names: Vec<String> = index
            .in_namespaces(&set)
            .map(|p| {
                format!(
                    "{}/{}",
                    p.metadata.namespace.as_deref().unwrap_or_default(),
                    p.metadata.name.as_deref().unwrap_or_default()
                )
            })
            .collect();
        names.sort();
        names
    }

    #[test]
    fn lists_only_the_namespaces_asked_for_with_the_newest_object() {
        let mut index = NamespaceIndex::default();
        index.upsert(pod("a", "p1", "one"));
        index.upsert(pod("a", "p2", "one"));
        index.upsert(pod("b", "p1", "one"));
        index.upsert(pod("a", "p1", "two"));
        assert_eq!(index.len(), 3);
        assert_eq!(names(&index, &["a"]), vec!["a/p1", "a/p2"]);
        assert_eq!(names(&index, &["b", "c"]), vec!["b/p1"]);
        assert!(names(&index, &[]).is_empty());
        let set: HashSet<String> = ["a".to_string()].into();
        let images: Vec<String> = index
            .in_namespaces(&set)
            .filter(|p| p.metadata.name.as_deref() == Some("p1"))
            .filter_map(|p| p.spec.as_ref()?.containers.first()?.image.clone())
            .collect();
        assert_eq!(images, vec!["two"]);
    }

    #[test]
    fn removal_and_rebuild_leave_exactly_what_is_given() {
        let mut index = NamespaceIndex::default();
        index.upsert(pod("a", "p1", "x"));
        index.upsert(pod("b", "p2", "x"));
        index.remove(&pod("a", "p1", "whatever"));
        index.remove(&pod("zz", "nothing", "x"));
        assert_eq!(names(&index, &["a", "b"]), vec!["b/p2"]);
        index.rebuild(vec![pod("c", "p3", "x"), pod("c", "p4", "x")]);
        assert_eq!(names(&index, &["a", "b", "c"]), vec!["c/p3", "c/p4"]);
        index.rebuild(Vec::new());
        assert!(index.is_empty());
    }

    #[test]
    fn cluster_scoped_objects_are_not_indexed() {
        let mut index = NamespaceIndex::default();
        index.upsert(Arc::new(Namespace {
            metadata: kube::api::ObjectMeta {
                name: Some("default".into()),
                ..Default::default()
            },
            ..Default::default()
        }));
        assert!(index.is_empty());
    }
}
