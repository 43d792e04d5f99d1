//! The built-in resource table: what kube-apiserver 1.33 advertises for the resources in
//! DESIGN.md §3 (names, short names, categories, verbs, subresources), written as data.
//!
//! Invariant: the group list is in kube-apiserver's discovery priority order and each group's
//! versions are in preference order; `registry/tests.rs` checks that every resource's group
//! version is listed here and that no (group, version, plural) repeats.

use super::{Group, Resource, Scope, Subresource};

const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const NO_COLLECTION_DELETE: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];
const READ_ONLY: &[&str] = &["get", "list"];
const CREATE_ONLY: &[&str] = &["create"];
const GET_PATCH_UPDATE: &[&str] = &["get", "patch", "update"];
const CREATE_GET: &[&str] = &["create", "get"];
const PROXY: &[&str] = &["create", "delete", "get", "patch", "update"];

/// Groups in priority order with their versions, preferred first.
const GROUPS: &[(&str, &[&str])] = &[
    ("", &["v1"]),
    ("apps", &["v1"]),
    ("events.k8s.io", &["v1"]),
    ("authorization.k8s.io", &["v1"]),
    ("autoscaling", &["v2", "v1"]),
    ("batch", &["v1"]),
    ("networking.k8s.io", &["v1"]),
    ("policy", &["v1"]),
    ("rbac.authorization.k8s.io", &["v1"]),
    ("storage.k8s.io", &["v1"]),
    ("scheduling.k8s.io", &["v1"]),
    ("coordination.k8s.io", &["v1"]),
    ("discovery.k8s.io", &["v1"]),
    ("metrics.k8s.io", &["v1beta1"]),
];

struct Builder {
    resource: Resource,
}

fn resource(group: &str, version: &str, kind: &str, plural: &str, scope: Scope) -> Builder {
    Builder {
        resource: Resource {
            group: group.to_string(),
            version: version.to_string(),
            kind: kind.to_string(),
            list_kind: format!("{kind}List"),
            plural: plural.to_string(),
            singular: kind.to_ascii_lowercase(),
            short_names: Vec::new(),
            categories: Vec::new(),
            scope,
            verbs: strings(ALL_VERBS),
            subresources: Vec::new(),
            stored: true,
        },
    }
}

fn namespaced(group: &str, version: &str, kind: &str, plural: &str) -> Builder {
    resource(group, version, kind, plural, Scope::Namespaced)
}

fn cluster(group: &str, version: &str, kind: &str, plural: &str) -> Builder {
    resource(group, version, kind, plural, Scope::Cluster)
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| (*item).to_string()).collect()
}

impl Builder {
    fn short(mut self, names: &[&str]) -> Self {
        self.resource.short_names = strings(names);
        self
    }

    /// In the `all` category (`kubectl get all`).
    fn in_all(mut self) -> Self {
        self.resource.categories = strings(&["all"]);
        self
    }

    fn verbs(mut self, verbs: &[&str]) -> Self {
        self.resource.verbs = strings(verbs);
        self
    }

    fn not_stored(mut self) -> Self {
        self.resource.stored = false;
        self
    }

    /// A subresource whose kind is in another group version.
    fn sub_of(
        mut self,
        name: &str,
        group: &str,
        version: &str,
        kind: &str,
        verbs: &[&str],
    ) -> Self {
        self.resource.subresources.push(Subresource {
            name: name.to_string(),
            group: group.to_string(),
            version: version.to_string(),
            kind: kind.to_string(),
            verbs: strings(verbs),
        });
        self
    }

    /// A subresource whose kind is in the resource's own group version.
    fn sub(self, name: &str, kind: &str, verbs: &[&str]) -> Self {
        let (group, version) = (self.resource.group.clone(), self.resource.version.clone());
        self.sub_of(name, &group, &version, kind, verbs)
    }

    /// The `status` subresource, answered with the resource's own kind.
    fn status(self) -> Self {
        let kind = self.resource.kind.clone();
        self.sub("status", &kind, GET_PATCH_UPDATE)
    }

    /// The `scale` subresource (autoscaling/v1 Scale).
    fn scale(self) -> Self {
        self.sub_of("scale", "autoscaling", "v1", "Scale", GET_PATCH_UPDATE)
    }

    fn build(self) -> Resource {
        self.resource
    }
}

fn core() -> Vec<Builder> {
    vec![
        namespaced("", "v1", "ConfigMap", "configmaps").short(&["cm"]),
        namespaced("", "v1", "Endpoints", "endpoints").short(&["ep"]),
        namespaced("", "v1", "Event", "events").short(&["ev"]),
        namespaced("", "v1", "LimitRange", "limitranges").short(&["limits"]),
        cluster("", "v1", "Namespace", "namespaces")
            .short(&["ns"])
            .verbs(NO_COLLECTION_DELETE)
            .sub("finalize", "Namespace", &["update"])
            .status(),
        cluster("", "v1", "Node", "nodes")
            .short(&["no"])
            .sub("proxy", "NodeProxyOptions", PROXY)
            .status(),
        namespaced("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims")
            .short(&["pvc"])
            .status(),
        cluster("", "v1", "PersistentVolume", "persistentvolumes")
            .short(&["pv"])
            .status(),
        namespaced("", "v1", "Pod", "pods")
            .short(&["po"])
            .in_all()
            .sub("attach", "PodAttachOptions", CREATE_GET)
            .sub("binding", "Binding", CREATE_ONLY)
            .sub("ephemeralcontainers", "Pod", GET_PATCH_UPDATE)
            .sub_of("eviction", "policy", "v1", "Eviction", CREATE_ONLY)
            .sub("exec", "PodExecOptions", CREATE_GET)
            .sub("log", "Pod", &["get"])
            .sub("portforward", "PodPortForwardOptions", CREATE_GET)
            .sub("proxy", "PodProxyOptions", PROXY)
            .sub("resize", "Pod", GET_PATCH_UPDATE)
            .status(),
        namespaced("", "v1", "ResourceQuota", "resourcequotas")
            .short(&["quota"])
            .status(),
        namespaced("", "v1", "Secret", "secrets"),
        namespaced("", "v1", "ServiceAccount", "serviceaccounts")
            .short(&["sa"])
            .sub_of(
                "token",
                "authentication.k8s.io",
                "v1",
                "TokenRequest",
                CREATE_ONLY,
            ),
        namespaced("", "v1", "Service", "services")
            .short(&["svc"])
            .in_all()
            .sub("proxy", "ServiceProxyOptions", PROXY)
            .status(),
    ]
}

fn apps_and_workloads() -> Vec<Builder> {
    vec![
        namespaced("apps", "v1", "ControllerRevision", "controllerrevisions"),
        namespaced("apps", "v1", "DaemonSet", "daemonsets")
            .short(&["ds"])
            .in_all()
            .status(),
        namespaced("apps", "v1", "Deployment", "deployments")
            .short(&["deploy"])
            .in_all()
            .scale()
            .status(),
        namespaced("apps", "v1", "ReplicaSet", "replicasets")
            .short(&["rs"])
            .in_all()
            .scale()
            .status(),
        namespaced("apps", "v1", "StatefulSet", "statefulsets")
            .short(&["sts"])
            .in_all()
            .scale()
            .status(),
        namespaced("events.k8s.io", "v1", "Event", "events").short(&["ev"]),
        cluster(
            "authorization.k8s.io",
            "v1",
            "SelfSubjectAccessReview",
            "selfsubjectaccessreviews",
        )
        .verbs(CREATE_ONLY)
        .not_stored(),
        namespaced(
            "autoscaling",
            "v2",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
        )
        .short(&["hpa"])
        .in_all()
        .status(),
        namespaced(
            "autoscaling",
            "v1",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
        )
        .short(&["hpa"])
        .in_all()
        .status(),
        namespaced("batch", "v1", "CronJob", "cronjobs")
            .short(&["cj"])
            .in_all()
            .status(),
        namespaced("batch", "v1", "Job", "jobs").in_all().status(),
    ]
}

fn platform() -> Vec<Builder> {
    vec![
        cluster("networking.k8s.io", "v1", "IngressClass", "ingressclasses"),
        namespaced("networking.k8s.io", "v1", "Ingress", "ingresses")
            .short(&["ing"])
            .status(),
        namespaced(
            "networking.k8s.io",
            "v1",
            "NetworkPolicy",
            "networkpolicies",
        )
        .short(&["netpol"]),
        namespaced(
            "policy",
            "v1",
            "PodDisruptionBudget",
            "poddisruptionbudgets",
        )
        .short(&["pdb"])
        .status(),
        cluster(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRoleBinding",
            "clusterrolebindings",
        ),
        cluster(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRole",
            "clusterroles",
        ),
        namespaced(
            "rbac.authorization.k8s.io",
            "v1",
            "RoleBinding",
            "rolebindings",
        ),
        namespaced("rbac.authorization.k8s.io", "v1", "Role", "roles"),
        cluster("storage.k8s.io", "v1", "StorageClass", "storageclasses").short(&["sc"]),
        cluster(
            "scheduling.k8s.io",
            "v1",
            "PriorityClass",
            "priorityclasses",
        )
        .short(&["pc"]),
        namespaced("coordination.k8s.io", "v1", "Lease", "leases"),
        namespaced("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices"),
        cluster("metrics.k8s.io", "v1beta1", "NodeMetrics", "nodes")
            .verbs(READ_ONLY)
            .not_stored(),
        namespaced("metrics.k8s.io", "v1beta1", "PodMetrics", "pods")
            .verbs(READ_ONLY)
            .not_stored(),
    ]
}

/// The groups (priority order) and resources (grouped likewise) of a built-in registry.
pub(super) fn table() -> (Vec<Group>, Vec<Resource>) {
    let groups: Vec<Group> = GROUPS
        .iter()
        .map(|(name, versions)| Group {
            name: (*name).to_string(),
            versions: strings(versions),
        })
        .collect();
    let unordered: Vec<Resource> = core()
        .into_iter()
        .chain(apps_and_workloads())
        .chain(platform())
        .map(Builder::build)
        .collect();
    let mut resources = Vec::with_capacity(unordered.len());
    for group in &groups {
        for version in &group.versions {
            resources.extend(
                unordered
                    .iter()
                    .filter(|resource| resource.group == group.name && &resource.version == version)
                    .cloned(),
            );
        }
    }
    (groups, resources)
}
