//! The scheduler's view of the cluster: per-node aggregates (`NodeInfo`) kept up to date
//! incrementally as pods and nodes come and go, plus the PVCs, PVs, storage classes and
//! namespace labels the filters read.
//!
//! Invariants: objects are shared (`Arc`) and never mutated; adding or removing a pod touches
//! only its node's aggregates (O(pods on that node)), never the whole cluster; a pod bound to a
//! node the snapshot does not know yet is remembered and counted when the node appears; a pod in
//! a terminal phase (Succeeded/Failed) uses no resources and is not counted.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod, Taint};
use k8s_openapi::api::storage::v1::StorageClass;

use crate::resources::{PodRequests, Resources, pod_requests};
use crate::terms::{AffinityTerm, WeightedAffinityTerm};

/// A host port a pod uses: (protocol, host IP, port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    pub protocol: String,
    pub host_ip: String,
    pub port: i32,
}

impl HostPort {
    /// Whether two host ports cannot both be bound on one node.
    pub fn conflicts(&self, other: &HostPort) -> bool {
        let wildcard = |ip: &str| ip.is_empty() || ip == "0.0.0.0" || ip == "::";
        self.port == other.port
            && self.protocol == other.protocol
            && (wildcard(&self.host_ip)
                || wildcard(&other.host_ip)
                || self.host_ip == other.host_ip)
    }
}

/// What the scheduler needs from one pod, computed once.
#[derive(Debug, Clone)]
pub struct PodInfo {
    pub pod: Arc<Pod>,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub labels: BTreeMap<String, String>,
    pub requests: PodRequests,
    pub priority: i32,
    pub node_name: String,
    pub host_ports: Vec<HostPort>,
    pub required_affinity: Vec<AffinityTerm>,
    pub required_anti_affinity: Vec<AffinityTerm>,
    pub preferred_affinity: Vec<WeightedAffinityTerm>,
    pub preferred_anti_affinity: Vec<WeightedAffinityTerm>,
    pub terminating: bool,
    /// `status.startTime` in seconds since the epoch (0 when unknown).
    pub start_time: i64,
}

impl PodInfo {
    /// Compile a pod.
    pub fn new(pod: Arc<Pod>) -> Self {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        let spec = pod.spec.as_ref();
        let mut host_ports = Vec::new();
        for container in spec
            .map(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
            })
            .into_iter()
            .flatten()
        {
            for port in container.ports.iter().flatten() {
                if let Some(host_port) = port.host_port.filter(|p| *p > 0) {
                    host_ports.push(HostPort {
                        protocol: port.protocol.clone().unwrap_or_else(|| "TCP".into()),
                        host_ip: port.host_ip.clone().unwrap_or_default(),
                        port: host_port,
                    });
                }
            }
        }
        let affinity = spec.and_then(|s| s.affinity.as_ref());
        let pod_affinity = affinity.and_then(|a| a.pod_affinity.as_ref());
        let pod_anti = affinity.and_then(|a| a.pod_anti_affinity.as_ref());
        let compile = |terms: Option<&Vec<k8s_openapi::api::core::v1::PodAffinityTerm>>| {
            terms
                .into_iter()
                .flatten()
                .map(|t| AffinityTerm::new(t, &namespace, &labels))
                .collect::<Vec<_>>()
        };
        let compile_weighted =
            |terms: Option<&Vec<k8s_openapi::api::core::v1::WeightedPodAffinityTerm>>| {
                terms
                    .into_iter()
                    .flatten()
                    .map(|t| WeightedAffinityTerm {
                        term: AffinityTerm::new(&t.pod_affinity_term, &namespace, &labels),
                        weight: i64::from(t.weight),
                    })
                    .collect::<Vec<_>>()
            };
        let required_affinity = compile(pod_affinity.and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        }));
        let required_anti_affinity = compile(pod_anti.and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        }));
        let preferred_affinity = compile_weighted(pod_affinity.and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        }));
        let preferred_anti_affinity = compile_weighted(pod_anti.and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        }));
        Self {
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            requests: pod_requests(&pod),
            priority: spec.and_then(|s| s.priority).unwrap_or(0),
            node_name: spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
            terminating: pod.metadata.deletion_timestamp.is_some(),
            start_time: pod
                .status
                .as_ref()
                .and_then(|s| s.start_time.as_ref())
                .map(|t| t.0.as_second())
                .unwrap_or(0),
            host_ports,
            required_affinity,
            required_anti_affinity,
            preferred_affinity,
            preferred_anti_affinity,
            namespace,
            labels,
            pod,
        }
    }

    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Whether the pod has any (anti-)affinity term that other pods' placement must respect.
    pub fn has_affinity(&self) -> bool {
        !(self.required_affinity.is_empty()
            && self.required_anti_affinity.is_empty()
            && self.preferred_affinity.is_empty()
            && self.preferred_anti_affinity.is_empty())
    }
}

/// Whether a pod in this phase still holds node resources.
pub fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// One node and the pods bound to it.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub node: Arc<Node>,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub unschedulable: bool,
    pub allocatable: Resources,
    /// Sum of the bound pods' requests (`pods` counts them).
    pub requested: Resources,
    pub non_zero_milli_cpu: i64,
    pub non_zero_memory: i64,
    pub pods: Vec<Arc<PodInfo>>,
    pub used_ports: Vec<HostPort>,
    /// Images present on the node: (name, size in bytes).
    pub images: Vec<(String, i64)>,
}

impl NodeInfo {
    fn new(node: Arc<Node>) -> Self {
        let spec = node.spec.as_ref();
        let status = node.status.as_ref();
        let allocatable = status
            .and_then(|s| s.allocatable.as_ref().or(s.capacity.as_ref()))
            .map(|list| Resources::from_list(Some(list)))
            .unwrap_or_default();
        let mut images = Vec::new();
        for image in status.and_then(|s| s.images.as_ref()).into_iter().flatten() {
            for name in image.names.iter().flatten() {
                images.push((name.clone(), image.size_bytes.unwrap_or(0)));
            }
        }
        Self {
            name: node.metadata.name.clone().unwrap_or_default(),
            labels: node.metadata.labels.clone().unwrap_or_default(),
            taints: spec.and_then(|s| s.taints.clone()).unwrap_or_default(),
            unschedulable: spec.and_then(|s| s.unschedulable).unwrap_or(false),
            allocatable,
            requested: Resources::default(),
            non_zero_milli_cpu: 0,
            non_zero_memory: 0,
            pods: Vec::new(),
            used_ports: Vec::new(),
            images,
            node,
        }
    }

    /// Count a pod on this node.
    pub fn add_pod(&mut self, pod: Arc<PodInfo>) {
        self.requested.add(&pod.requests.requests);
        self.requested.pods += 1;
        self.non_zero_milli_cpu += pod.requests.non_zero_milli_cpu;
        self.non_zero_memory += pod.requests.non_zero_memory;
        self.used_ports.extend(pod.host_ports.iter().cloned());
        self.pods.push(pod);
    }

    /// Stop counting a pod (by uid, or by key when it has none); returns whether it was here.
    pub fn remove_pod(&mut self, uid: &str, key: &str) -> bool {
        let Some(index) = self.pods.iter().position(|p| {
            if uid.is_empty() {
                p.key() == key
            } else {
                p.uid == uid
            }
        }) else {
            return false;
        };
        let pod = self.pods.swap_remove(index);
        self.requested.sub(&pod.requests.requests);
        self.requested.pods -= 1;
        self.non_zero_milli_cpu -= pod.requests.non_zero_milli_cpu;
        self.non_zero_memory -= pod.requests.non_zero_memory;
        for port in &pod.host_ports {
            if let Some(i) = self.used_ports.iter().position(|p| p == port) {
                self.used_ports.swap_remove(i);
            }
        }
        true
    }

    /// The node's value of a topology label.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }
}

/// The whole view, updated incrementally by the shell (or the benchmark) between cycles.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    nodes: Vec<NodeInfo>,
    index: HashMap<String, usize>,
    /// Every assigned pod by uid (or key): the node it counts on.
    assigned: HashMap<String, Arc<PodInfo>>,
    /// Pods bound to nodes that are not (yet) in the snapshot, by node name.
    orphans: HashMap<String, Vec<Arc<PodInfo>>>,
    namespaces: HashMap<String, BTreeMap<String, String>>,
    pvcs: HashMap<(String, String), Arc<PersistentVolumeClaim>>,
    pvs: HashMap<String, Arc<PersistentVolume>>,
    storage_classes: HashMap<String, Arc<StorageClass>>,
    /// How many nodes have each image.
    image_nodes: HashMap<String, usize>,
    /// How many assigned pods have (anti-)affinity terms.
    pods_with_affinity: usize,
    pods_with_required_anti_affinity: usize,
}

fn pod_id(pod: &PodInfo) -> String {
    if pod.uid.is_empty() {
        pod.key()
    } else {
        pod.uid.clone()
    }
}

impl Snapshot {
    /// An empty snapshot.
    pub fn new() -> Self {
        Self::default()
    }

    /// The nodes, in a stable order.
    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    /// One node by name.
    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.index.get(name).and_then(|i| self.nodes.get(*i))
    }

    /// Add or replace a node (its pods stay counted).
    pub fn upsert_node(&mut self, node: Arc<Node>) {
        let mut info = NodeInfo::new(node);
        if let Some(&i) = self.index.get(&info.name) {
            let old = std::mem::replace(&mut self.nodes[i], NodeInfo::new(info.node.clone()));
            self.forget_images(&old.images);
            for pod in old.pods {
                info.add_pod(pod);
            }
            self.remember_images(&info.images);
            self.nodes[i] = info;
            return;
        }
        for pod in self.orphans.remove(&info.name).unwrap_or_default() {
            info.add_pod(pod);
        }
        self.remember_images(&info.images);
        self.index.insert(info.name.clone(), self.nodes.len());
        self.nodes.push(info);
    }

    /// Remove a node; its pods are remembered in case it comes back.
    pub fn remove_node(&mut self, name: &str) {
        let Some(i) = self.index.remove(name) else {
            return;
        };
        let removed = self.nodes.swap_remove(i);
        if let Some(moved) = self.nodes.get(i) {
            self.index.insert(moved.name.clone(), i);
        }
        self.forget_images(&removed.images);
        if !removed.pods.is_empty() {
            self.orphans.insert(removed.name, removed.pods);
        }
    }

    fn remember_images(&mut self, images: &[(String, i64)]) {
        for (name, _) in images {
            *self.image_nodes.entry(name.clone()).or_insert(0) += 1;
        }
    }

    fn forget_images(&mut self, images: &[(String, i64)]) {
        for (name, _) in images {
            if let Some(count) = self.image_nodes.get_mut(name) {
                *count = count.saturating_sub(1);
            }
        }
    }

    /// How many nodes have an image.
    pub fn nodes_with_image(&self, image: &str) -> usize {
        self.image_nodes.get(image).copied().unwrap_or(0)
    }

    /// Add, update or remove a pod according to its state: counted on its node while it is
    /// bound and not terminal. Pods without `spec.nodeName` are not counted (they are queued).
    pub fn upsert_pod(&mut self, pod: Arc<Pod>) {
        let info = Arc::new(PodInfo::new(pod));
        self.remove_pod_info(&pod_id(&info), &info.key());
        if info.node_name.is_empty() || is_terminal(&info.pod) {
            return;
        }
        if info.has_affinity() {
            self.pods_with_affinity += 1;
        }
        if !info.required_anti_affinity.is_empty() {
            self.pods_with_required_anti_affinity += 1;
        }
        self.assigned.insert(pod_id(&info), info.clone());
        match self.index.get(&info.node_name) {
            Some(&i) => self.nodes[i].add_pod(info),
            None => self
                .orphans
                .entry(info.node_name.clone())
                .or_default()
                .push(info),
        }
    }

    /// Remove a pod (by the object last seen).
    pub fn remove_pod(&mut self, pod: &Pod) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let key = format!(
            "{}/{}",
            pod.metadata.namespace.as_deref().unwrap_or_default(),
            pod.metadata.name.as_deref().unwrap_or_default()
        );
        let id = if uid.is_empty() { key.clone() } else { uid };
        self.remove_pod_info(&id, &key);
    }

    fn remove_pod_info(&mut self, id: &str, key: &str) {
        let Some(old) = self.assigned.remove(id) else {
            return;
        };
        if old.has_affinity() {
            self.pods_with_affinity -= 1;
        }
        if !old.required_anti_affinity.is_empty() {
            self.pods_with_required_anti_affinity -= 1;
        }
        let uid = old.uid.as_str();
        match self.index.get(&old.node_name) {
            Some(&i) => {
                self.nodes[i].remove_pod(uid, key);
            }
            None => {
                if let Some(list) = self.orphans.get_mut(&old.node_name) {
                    list.retain(|p| pod_id(p) != id);
                }
            }
        }
    }

    /// The pod counted under this uid (or `namespace/name`), if any.
    pub fn assigned_pod(&self, id: &str) -> Option<&Arc<PodInfo>> {
        self.assigned.get(id)
    }

    /// Every pod counted on a node (or waiting for its node to appear).
    pub fn assigned_pods(&self) -> impl Iterator<Item = &Arc<PodInfo>> {
        self.assigned.values()
    }

    /// Whether any assigned pod has (anti-)affinity terms.
    pub fn any_pod_affinity(&self) -> bool {
        self.pods_with_affinity > 0
    }

    /// Whether any assigned pod has required anti-affinity terms.
    pub fn any_required_anti_affinity(&self) -> bool {
        self.pods_with_required_anti_affinity > 0
    }

    /// Set a namespace's labels (for namespace selectors in affinity terms).
    pub fn upsert_namespace(&mut self, name: &str, labels: BTreeMap<String, String>) {
        self.namespaces.insert(name.to_string(), labels);
    }

    /// Forget a namespace.
    pub fn remove_namespace(&mut self, name: &str) {
        self.namespaces.remove(name);
    }

    /// A namespace's labels, if known.
    pub fn namespace_labels(&self, name: &str) -> Option<&BTreeMap<String, String>> {
        self.namespaces.get(name)
    }

    /// Add or replace a PVC.
    pub fn upsert_pvc(&mut self, pvc: Arc<PersistentVolumeClaim>) {
        let key = (
            pvc.metadata.namespace.clone().unwrap_or_default(),
            pvc.metadata.name.clone().unwrap_or_default(),
        );
        self.pvcs.insert(key, pvc);
    }

    /// Forget a PVC.
    pub fn remove_pvc(&mut self, namespace: &str, name: &str) {
        self.pvcs.remove(&(namespace.to_string(), name.to_string()));
    }

    /// A PVC by namespace and name.
    pub fn pvc(&self, namespace: &str, name: &str) -> Option<&Arc<PersistentVolumeClaim>> {
        self.pvcs.get(&(namespace.to_string(), name.to_string()))
    }

    /// Add or replace a PV.
    pub fn upsert_pv(&mut self, pv: Arc<PersistentVolume>) {
        self.pvs
            .insert(pv.metadata.name.clone().unwrap_or_default(), pv);
    }

    /// Forget a PV.
    pub fn remove_pv(&mut self, name: &str) {
        self.pvs.remove(name);
    }

    /// A PV by name.
    pub fn pv(&self, name: &str) -> Option<&Arc<PersistentVolume>> {
        self.pvs.get(name)
    }

    /// Add or replace a storage class.
    pub fn upsert_storage_class(&mut self, class: Arc<StorageClass>) {
        self.storage_classes
            .insert(class.metadata.name.clone().unwrap_or_default(), class);
    }

    /// Forget a storage class.
    pub fn remove_storage_class(&mut self, name: &str) {
        self.storage_classes.remove(name);
    }

    /// A storage class by name; `None` for the empty name means the default class.
    pub fn storage_class(&self, name: Option<&str>) -> Option<&Arc<StorageClass>> {
        match name {
            Some(name) => self.storage_classes.get(name),
            None => self.storage_classes.values().find(|class| {
                class
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get("storageclass.kubernetes.io/is-default-class"))
                    .is_some_and(|v| v == "true")
            }),
        }
    }
}
