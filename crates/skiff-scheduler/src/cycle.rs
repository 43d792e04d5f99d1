//! One scheduling cycle's pre-computed state for one pod (kube-scheduler's PreFilter and
//! PreScore): compiled node affinity, volume constraints, pod (anti-)affinity counts by topology
//! domain and topology spread counts, so that the per-node filters and scores are cheap.
//!
//! Invariants: built from one immutable snapshot; the expensive counts are computed only when
//! the pod (or some assigned pod) needs them; a pre-filter failure applies to every node.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Toleration;
use skiff_core::selector::{LabelSelector, Operator, Requirement};

use crate::snapshot::{NodeInfo, PodInfo, Snapshot};
use crate::status::{Code, Status, reasons};
use crate::terms::{NodeSelectorMatcher, first_untolerated};

/// A PVC volume's constraint on nodes.
#[derive(Debug, Clone)]
pub enum VolumeConstraint {
    /// Bound to a PV whose node affinity the node must match.
    BoundPv(NodeSelectorMatcher),
    /// Unbound, WaitForFirstConsumer: provisioned on the chosen node (`selected-node`).
    DelayedBinding { claim: String },
}

/// A compiled topology spread constraint with its counts.
#[derive(Debug, Clone)]
pub struct SpreadConstraint {
    pub max_skew: i64,
    pub topology_key: String,
    /// DoNotSchedule (a filter) or ScheduleAnyway (a score).
    pub hard: bool,
    pub min_domains: i64,
    pub selector: SpreadSelector,
    pub honor_node_affinity: bool,
    pub honor_taints: bool,
    /// Matching pods by the topology value of their node.
    pub counts: HashMap<String, i64>,
    /// The smallest count over the eligible domains (0 if fewer than `min_domains`).
    pub min_count: i64,
    /// Whether the pod itself matches the selector.
    pub self_match: i64,
}

/// Which pods a spread constraint counts.
#[derive(Debug, Clone)]
pub enum SpreadSelector {
    Labels(LabelSelector),
    /// The system default constraints: pods of the same controller.
    Owner(String),
}

impl SpreadSelector {
    fn matches(&self, pod: &PodInfo) -> bool {
        match self {
            SpreadSelector::Labels(selector) => selector.matches(&pod.labels),
            SpreadSelector::Owner(uid) => controller_uid(pod) == Some(uid.as_str()),
        }
    }
}

fn controller_uid(pod: &PodInfo) -> Option<&str> {
    pod.pod
        .metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
        .map(|r| r.uid.as_str())
}

/// The per-pod state of one cycle.
#[derive(Debug, Clone)]
pub struct Cycle {
    pub pod: Arc<PodInfo>,
    pub tolerations: Vec<Toleration>,
    pub node_selector: BTreeMap<String, String>,
    pub required_node_affinity: Option<NodeSelectorMatcher>,
    pub preferred_node_affinity: Vec<(i64, NodeSelectorMatcher)>,
    pub volumes: Vec<VolumeConstraint>,
    /// (topology key, value) pairs where an assigned pod's required anti-affinity forbids us.
    pub existing_anti_affinity: HashMap<(String, String), i64>,
    /// Per required affinity term: matching pods by topology value.
    pub affinity_counts: Vec<HashMap<String, i64>>,
    /// Whether no assigned pod matches any required affinity term while the pod matches all of
    /// its own terms (the first pod of a group may go anywhere).
    pub affinity_first_of_group: bool,
    /// Per required anti-affinity term: matching pods by topology value.
    pub anti_affinity_counts: Vec<HashMap<String, i64>>,
    pub spread: Vec<SpreadConstraint>,
}

impl Cycle {
    /// Pre-filter a pod against a snapshot; an error status applies to every node.
    pub fn new(snapshot: &Snapshot, pod: Arc<PodInfo>) -> Result<Self, Status> {
        let spec = pod.pod.spec.clone().unwrap_or_default();
        let affinity = spec
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref());
        let required_node_affinity = affinity
            .and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .map(NodeSelectorMatcher::new);
        let preferred_node_affinity = affinity
            .and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .into_iter()
            .flatten()
            .map(|t| {
                (
                    i64::from(t.weight),
                    NodeSelectorMatcher::from_term(&t.preference),
                )
            })
            .collect();
        let mut cycle = Self {
            tolerations: spec.tolerations.clone().unwrap_or_default(),
            node_selector: spec.node_selector.clone().unwrap_or_default(),
            required_node_affinity,
            preferred_node_affinity,
            volumes: Vec::new(),
            existing_anti_affinity: HashMap::new(),
            affinity_counts: Vec::new(),
            affinity_first_of_group: false,
            anti_affinity_counts: Vec::new(),
            spread: Vec::new(),
            pod,
        };
        cycle.volumes = volume_constraints(snapshot, &cycle.pod)?;
        cycle.pre_filter_inter_pod_affinity(snapshot);
        cycle.pre_filter_spread(snapshot, &spec);
        Ok(cycle)
    }

    /// Whether a node matches the pod's nodeSelector and required node affinity.
    pub fn matches_node_affinity(&self, node: &NodeInfo) -> bool {
        self.node_selector
            .iter()
            .all(|(key, value)| node.labels.get(key) == Some(value))
            && self
                .required_node_affinity
                .as_ref()
                .is_none_or(|m| m.matches(&node.name, &node.labels))
    }

    /// Count (`delta` = 1) or stop counting (`delta` = -1) an assigned pod on `node` in the
    /// pre-computed state (kube-scheduler's AddPod/RemovePod), as preemption does when it
    /// simulates removing victims.
    pub fn account(&mut self, snapshot: &Snapshot, other: &PodInfo, node: &NodeInfo, delta: i64) {
        let pod = self.pod.clone();
        let other_namespace_labels = snapshot.namespace_labels(&other.namespace);
        let own_namespace_labels = snapshot.namespace_labels(&pod.namespace);
        for (i, term) in pod.required_affinity.iter().enumerate() {
            if let Some(value) = node.label(&term.topology_key)
                && term.matches(&other.namespace, other_namespace_labels, &other.labels)
                && let Some(counts) = self.affinity_counts.get_mut(i)
            {
                *counts.entry(value.to_string()).or_insert(0) += delta;
            }
        }
        for (i, term) in pod.required_anti_affinity.iter().enumerate() {
            if let Some(value) = node.label(&term.topology_key)
                && term.matches(&other.namespace, other_namespace_labels, &other.labels)
                && let Some(counts) = self.anti_affinity_counts.get_mut(i)
            {
                *counts.entry(value.to_string()).or_insert(0) += delta;
            }
        }
        for term in &other.required_anti_affinity {
            if let Some(value) = node.label(&term.topology_key)
                && term.matches(&pod.namespace, own_namespace_labels, &pod.labels)
            {
                *self
                    .existing_anti_affinity
                    .entry((term.topology_key.clone(), value.to_string()))
                    .or_insert(0) += delta;
            }
        }
        for constraint in &mut self.spread {
            if !other.terminating
                && other.namespace == pod.namespace
                && constraint.selector.matches(other)
                && let Some(value) = node.label(&constraint.topology_key)
                && let Some(count) = constraint.counts.get_mut(value)
            {
                *count += delta;
                if constraint.counts.len() as i64 >= constraint.min_domains {
                    constraint.min_count = constraint.counts.values().copied().min().unwrap_or(0);
                }
            }
        }
    }

    fn pre_filter_inter_pod_affinity(&mut self, snapshot: &Snapshot) {
        let pod = self.pod.clone();
        let needs_existing = snapshot.any_required_anti_affinity();
        if pod.required_affinity.is_empty()
            && pod.required_anti_affinity.is_empty()
            && !needs_existing
        {
            return;
        }
        self.affinity_counts = vec![HashMap::new(); pod.required_affinity.len()];
        self.anti_affinity_counts = vec![HashMap::new(); pod.required_anti_affinity.len()];
        let own_namespace_labels = snapshot.namespace_labels(&pod.namespace);
        for node in snapshot.nodes() {
            for other in &node.pods {
                if other.uid == pod.uid && !pod.uid.is_empty() {
                    continue;
                }
                let other_namespace_labels = snapshot.namespace_labels(&other.namespace);
                for (i, term) in pod.required_affinity.iter().enumerate() {
                    if let Some(value) = node.label(&term.topology_key)
                        && term.matches(&other.namespace, other_namespace_labels, &other.labels)
                    {
                        *self.affinity_counts[i]
                            .entry(value.to_string())
                            .or_insert(0) += 1;
                    }
                }
                for (i, term) in pod.required_anti_affinity.iter().enumerate() {
                    if let Some(value) = node.label(&term.topology_key)
                        && term.matches(&other.namespace, other_namespace_labels, &other.labels)
                    {
                        *self.anti_affinity_counts[i]
                            .entry(value.to_string())
                            .or_insert(0) += 1;
                    }
                }
                for term in &other.required_anti_affinity {
                    if let Some(value) = node.label(&term.topology_key)
                        && term.matches(&pod.namespace, own_namespace_labels, &pod.labels)
                    {
                        *self
                            .existing_anti_affinity
                            .entry((term.topology_key.clone(), value.to_string()))
                            .or_insert(0) += 1;
                    }
                }
            }
        }
        if !pod.required_affinity.is_empty() && self.affinity_counts.iter().all(HashMap::is_empty) {
            self.affinity_first_of_group = pod
                .required_affinity
                .iter()
                .all(|term| term.matches(&pod.namespace, own_namespace_labels, &pod.labels));
        }
    }

    fn pre_filter_spread(
        &mut self,
        snapshot: &Snapshot,
        spec: &k8s_openapi::api::core::v1::PodSpec,
    ) {
        let pod = self.pod.clone();
        let explicit = spec.topology_spread_constraints.clone().unwrap_or_default();
        let mut constraints = Vec::new();
        for constraint in &explicit {
            let mut selector = constraint
                .label_selector
                .as_ref()
                .and_then(|s| serde_json::to_value(s).ok())
                .and_then(|v| LabelSelector::from_json(&v).ok())
                .unwrap_or_else(LabelSelector::nothing);
            let mut extra = Vec::new();
            for key in constraint.match_label_keys.iter().flatten() {
                if let Some(value) = pod.labels.get(key)
                    && let Ok(r) = Requirement::new(key, Operator::In, vec![value.clone()])
                {
                    extra.push(r);
                }
            }
            if !extra.is_empty() && constraint.label_selector.is_some() {
                let mut requirements = selector.requirements().to_vec();
                requirements.extend(extra);
                selector = LabelSelector::from_requirements(requirements);
            }
            constraints.push(SpreadConstraint {
                max_skew: i64::from(constraint.max_skew.max(1)),
                topology_key: constraint.topology_key.clone(),
                hard: constraint.when_unsatisfiable == "DoNotSchedule",
                min_domains: i64::from(constraint.min_domains.unwrap_or(1).max(1)),
                selector: SpreadSelector::Labels(selector),
                honor_node_affinity: constraint.node_affinity_policy.as_deref() != Some("Ignore"),
                honor_taints: constraint.node_taints_policy.as_deref() == Some("Honor"),
                counts: HashMap::new(),
                min_count: 0,
                self_match: 0,
            });
        }
        if explicit.is_empty()
            && let Some(owner) = controller_uid(&pod)
        {
            // kube-scheduler's system default constraints (soft), selecting the pod's siblings.
            for (key, skew) in [
                ("kubernetes.io/hostname", 3),
                ("topology.kubernetes.io/zone", 5),
            ] {
                constraints.push(SpreadConstraint {
                    max_skew: skew,
                    topology_key: key.to_string(),
                    hard: false,
                    min_domains: 1,
                    selector: SpreadSelector::Owner(owner.to_string()),
                    honor_node_affinity: true,
                    honor_taints: false,
                    counts: HashMap::new(),
                    min_count: 0,
                    self_match: 0,
                });
            }
            // The zone constraint only applies when nodes have zones.
            if !snapshot
                .nodes()
                .iter()
                .any(|n| n.labels.contains_key("topology.kubernetes.io/zone"))
            {
                constraints.pop();
            }
        }
        if constraints.is_empty() {
            return;
        }
        for constraint in &mut constraints {
            constraint.self_match = i64::from(constraint.selector.matches(&pod));
        }
        let keys: Vec<String> = constraints.iter().map(|c| c.topology_key.clone()).collect();
        for node in snapshot.nodes() {
            if !keys.iter().all(|k| node.labels.contains_key(k)) {
                continue;
            }
            for constraint in &mut constraints {
                if constraint.honor_node_affinity && !self.matches_node_affinity(node) {
                    continue;
                }
                if constraint.honor_taints
                    && first_untolerated(
                        &node.taints,
                        &self.tolerations,
                        &["NoSchedule", "NoExecute"],
                    )
                    .is_some()
                {
                    continue;
                }
                let Some(value) = node.label(&constraint.topology_key) else {
                    continue;
                };
                let matching = node
                    .pods
                    .iter()
                    .filter(|p| {
                        !p.terminating
                            && p.namespace == pod.namespace
                            && constraint.selector.matches(p)
                    })
                    .count() as i64;
                *constraint.counts.entry(value.to_string()).or_insert(0) += matching;
            }
        }
        for constraint in &mut constraints {
            let domains = constraint.counts.len() as i64;
            constraint.min_count = if domains < constraint.min_domains {
                0
            } else {
                constraint.counts.values().copied().min().unwrap_or(0)
            };
        }
        self.spread = constraints;
    }
}

fn volume_constraints(snapshot: &Snapshot, pod: &PodInfo) -> Result<Vec<VolumeConstraint>, Status> {
    let mut constraints = Vec::new();
    let volumes = pod.pod.spec.as_ref().and_then(|s| s.volumes.as_ref());
    for volume in volumes.into_iter().flatten() {
        let claim_name = match (&volume.persistent_volume_claim, &volume.ephemeral) {
            (Some(source), _) => source.claim_name.clone(),
            (None, Some(_)) => format!("{}-{}", pod.name, volume.name),
            (None, None) => continue,
        };
        let Some(claim) = snapshot.pvc(&pod.namespace, &claim_name) else {
            return Err(Status::new(
                Code::UnschedulableAndUnresolvable,
                format!("persistentvolumeclaim \"{claim_name}\" not found"),
            ));
        };
        if claim.metadata.deletion_timestamp.is_some() {
            return Err(Status::new(
                Code::UnschedulableAndUnresolvable,
                format!("persistentvolumeclaim \"{claim_name}\" is being deleted"),
            ));
        }
        let volume_name = claim.spec.as_ref().and_then(|s| s.volume_name.clone());
        match volume_name.filter(|n| !n.is_empty()) {
            Some(pv_name) => {
                let Some(pv) = snapshot.pv(&pv_name) else {
                    return Err(Status::new(
                        Code::UnschedulableAndUnresolvable,
                        format!("persistentvolume \"{pv_name}\" not found"),
                    ));
                };
                if let Some(required) = pv
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_affinity.as_ref())
                    .and_then(|a| a.required.as_ref())
                {
                    constraints.push(VolumeConstraint::BoundPv(NodeSelectorMatcher::new(
                        required,
                    )));
                }
            }
            None => {
                let class_name = claim
                    .spec
                    .as_ref()
                    .and_then(|s| s.storage_class_name.as_deref());
                let class = snapshot.storage_class(class_name);
                let delayed = class
                    .and_then(|c| c.volume_binding_mode.as_deref())
                    .is_some_and(|mode| mode == "WaitForFirstConsumer");
                if !delayed {
                    return Err(Status::new(
                        Code::UnschedulableAndUnresolvable,
                        reasons::UNBOUND_IMMEDIATE_PVC,
                    ));
                }
                constraints.push(VolumeConstraint::DelayedBinding { claim: claim_name });
            }
        }
    }
    Ok(constraints)
}
