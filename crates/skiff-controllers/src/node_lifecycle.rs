//! Node lifecycle: a Node whose Lease in `kube-node-lease` has not been renewed for the grace
//! period (40 s by default) gets its conditions set to Unknown ("Kubelet stopped posting node
//! status.") and the `node.kubernetes.io/unreachable` NoExecute and NoSchedule taints; a Node
//! reporting Ready=False gets the `not-ready` ones; a healthy Node loses them. Pods on a node
//! with NoExecute taints are evicted (deleted) once their tolerations run out (the API server
//! adds 300 s tolerations for not-ready/unreachable to every pod; `tolerationSeconds` is honoured),
//! and pods on an unreachable node are marked not Ready so that endpoints drop them.
//!
//! Invariants: the clock is an input; a node is never judged before the grace period has passed
//! since this controller started (a new leader does not evict on stale leases); the `timeAdded`
//! of a taint is kept while the taint stays, so eviction deadlines do not move.

pub mod shell;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, Taint};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::events::Record;
use crate::workload::time;
use skiff_scheduler::terms::tolerates;

/// The taint of a node whose agent stopped heartbeating.
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// The taint of a node whose agent reports it not ready.
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";

/// Settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// How long a Lease may go unrenewed before the node is Unknown.
    pub grace_period: SignedDuration,
    /// When this controller started (nodes get a grace period from then on).
    pub started: Timestamp,
}

/// One write the shell performs.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Replace the node's taints.
    SetTaints { node: String, taints: Vec<Taint> },
    /// Replace the node's conditions (status subresource).
    SetConditions {
        node: String,
        conditions: Vec<NodeCondition>,
    },
    /// Set a pod's Ready condition to False.
    MarkPodNotReady { namespace: String, name: String },
    /// Evict a pod (delete it).
    EvictPod {
        namespace: String,
        name: String,
        uid: String,
    },
    /// An event on a node or pod.
    Event {
        namespace: String,
        kind: String,
        name: String,
        record: Record,
    },
}

/// The outcome of a pass.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub changes: Vec<Change>,
    pub requeue_after_seconds: Option<i64>,
}

fn ready_condition(node: &Node) -> Option<&NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

fn last_heartbeat(node: &Node, lease: Option<&Lease>) -> Option<Timestamp> {
    let renew = lease
        .and_then(|l| l.spec.as_ref())
        .and_then(|s| s.renew_time.as_ref())
        .map(|t| t.0);
    let posted = ready_condition(node)
        .and_then(|c| c.last_heartbeat_time.as_ref())
        .map(|t| t.0);
    renew.max(posted)
}

fn earlier(a: Option<i64>, b: i64) -> Option<i64> {
    Some(a.map_or(b, |a| a.min(b)))
}

/// Plan one pass over all nodes, their leases and all pods.
pub fn plan<P: std::borrow::Borrow<Pod>>(
    config: &Config,
    nodes: &[Node],
    leases: &[Lease],
    pods: &[P],
    now: Timestamp,
) -> Plan {
    let mut changes = Vec::new();
    let mut requeue: Option<i64> = None;
    for node in nodes {
        let name = node.metadata.name.clone().unwrap_or_default();
        let lease = leases
            .iter()
            .find(|l| l.metadata.name.as_deref() == Some(name.as_str()));
        let heartbeat = last_heartbeat(node, lease)
            .unwrap_or(config.started)
            .max(config.started);
        let deadline = heartbeat + config.grace_period;
        let unreachable = deadline <= now;
        if !unreachable {
            requeue = earlier(requeue, deadline.duration_since(now).as_secs().max(0) + 1);
        }
        let ready = ready_condition(node);
        let mut conditions = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        if unreachable {
            let mut changed = false;
            for condition in &mut conditions {
                if condition.status != "Unknown" {
                    condition.status = "Unknown".into();
                    condition.reason = Some("NodeStatusUnknown".into());
                    condition.message = Some("Kubelet stopped posting node status.".into());
                    condition.last_transition_time = Some(time(now));
                    changed = true;
                }
            }
            if conditions.iter().all(|c| c.type_ != "Ready") {
                conditions.push(NodeCondition {
                    type_: "Ready".into(),
                    status: "Unknown".into(),
                    reason: Some("NodeStatusNeverUpdated".into()),
                    message: Some("Kubelet never posted node status.".into()),
                    last_transition_time: Some(time(now)),
                    last_heartbeat_time: None,
                });
                changed = true;
            }
            if changed {
                changes.push(Change::SetConditions {
                    node: name.clone(),
                    conditions: conditions.clone(),
                });
                changes.push(Change::Event {
                    namespace: "default".into(),
                    kind: "Node".into(),
                    name: name.clone(),
                    record: Record::normal(
                        "NodeNotReady",
                        format!("Node {name} status is now: NodeNotReady"),
                    ),
                });
                for pod in pods
                    .iter()
                    .map(|p| p.borrow())
                    .filter(|p| on_node(p, &name))
                {
                    if crate::workload::is_ready(pod) {
                        changes.push(Change::MarkPodNotReady {
                            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
                            name: pod.metadata.name.clone().unwrap_or_default(),
                        });
                    }
                }
            }
        }
        // Which NoExecute/NoSchedule taints the node should have.
        let want: Option<&str> = if unreachable {
            Some(UNREACHABLE)
        } else {
            match ready.map(|c| c.status.as_str()) {
                Some("True") => None,
                Some("False") => Some(NOT_READY),
                _ => None,
            }
        };
        let current = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default();
        let mut taints: Vec<Taint> = current
            .iter()
            .filter(|t| {
                (t.key != UNREACHABLE && t.key != NOT_READY) || Some(t.key.as_str()) == want
            })
            .cloned()
            .collect();
        if let Some(key) = want {
            for effect in ["NoSchedule", "NoExecute"] {
                if !taints.iter().any(|t| t.key == key && t.effect == effect) {
                    taints.push(Taint {
                        key: key.into(),
                        value: None,
                        effect: effect.into(),
                        time_added: Some(time(now)),
                    });
                }
            }
        }
        if taints != current {
            changes.push(Change::SetTaints {
                node: name.clone(),
                taints: taints.clone(),
            });
        }
        // Evictions under NoExecute taints.
        let no_execute: Vec<&Taint> = taints.iter().filter(|t| t.effect == "NoExecute").collect();
        if no_execute.is_empty() {
            continue;
        }
        for pod in pods
            .iter()
            .map(|p| p.borrow())
            .filter(|p| on_node(p, &name) && p.metadata.deletion_timestamp.is_none())
        {
            match eviction_time(pod, &no_execute, now) {
                Some(at) if at <= now => {
                    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
                    let pod_name = pod.metadata.name.clone().unwrap_or_default();
                    changes.push(Change::EvictPod {
                        namespace: namespace.clone(),
                        name: pod_name.clone(),
                        uid: pod.metadata.uid.clone().unwrap_or_default(),
                    });
                    changes.push(Change::Event {
                        namespace: namespace.clone(),
                        kind: "Pod".into(),
                        name: pod_name.clone(),
                        record: Record::normal(
                            "TaintManagerEviction",
                            format!("Marking for deletion Pod {namespace}/{pod_name}"),
                        ),
                    });
                }
                Some(at) => requeue = earlier(requeue, at.duration_since(now).as_secs().max(0) + 1),
                None => {}
            }
        }
    }
    Plan {
        changes,
        requeue_after_seconds: requeue,
    }
}

fn on_node(pod: &Pod, node: &str) -> bool {
    pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node)
}

/// When a pod must leave a node with these NoExecute taints: now if one is not tolerated, the
/// earliest `timeAdded + tolerationSeconds` over the taints, or never (`None`).
pub fn eviction_time(pod: &Pod, taints: &[&Taint], now: Timestamp) -> Option<Timestamp> {
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.clone())
        .unwrap_or_default();
    let mut at: Option<Timestamp> = None;
    for taint in taints {
        let matching: Vec<_> = tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        if matching.is_empty() {
            return Some(now);
        }
        // A toleration without seconds tolerates forever; otherwise the shortest applies.
        if matching.iter().any(|t| t.toleration_seconds.is_none()) {
            continue;
        }
        let seconds = matching
            .iter()
            .filter_map(|t| t.toleration_seconds)
            .min()
            .unwrap_or(0)
            .max(0);
        let added = taint.time_added.as_ref().map(|t| t.0).unwrap_or(now);
        let due = added + SignedDuration::from_secs(seconds);
        at = Some(at.map_or(due, |a| a.min(due)));
    }
    at
}

#[cfg(test)]
mod tests;
