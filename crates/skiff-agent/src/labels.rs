//! The Docker label scheme and container names of every container the agent creates.
//!
//! Labels are the agent's only memory across restarts: from them it re-adopts running containers
//! (which pod, which container, which attempt) without stopping or duplicating anything.

use std::collections::HashMap;

/// The node that owns a container or network.
pub const NODE: &str = "io.skiff.node";
pub const POD_UID: &str = "io.skiff.pod.uid";
pub const POD_NAMESPACE: &str = "io.skiff.pod.namespace";
pub const POD_NAME: &str = "io.skiff.pod.name";
pub const CONTAINER_NAME: &str = "io.skiff.container.name";
/// `sandbox`, `container` or `init`.
pub const KIND: &str = "io.skiff.kind";
/// The attempt number of this container instance (0 for the first run): its restart count.
pub const RESTART_COUNT: &str = "io.skiff.restart-count";
/// The sandbox container an app or init container was started in.
pub const SANDBOX_ID: &str = "io.skiff.sandbox";
/// A hash of the container's spec; a changed spec (e.g. a new image) restarts the container.
pub const SPEC_HASH: &str = "io.skiff.spec-hash";
/// The pod's termination grace period when the container was created (re-adoption needs it).
pub const GRACE_SECONDS: &str = "io.skiff.grace-seconds";

/// What a container is to its pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Sandbox,
    Init,
    App,
}

impl Kind {
    pub fn as_label(self) -> &'static str {
        match self {
            Kind::Sandbox => "sandbox",
            Kind::Init => "init",
            Kind::App => "container",
        }
    }

    pub fn from_label(value: &str) -> Option<Kind> {
        match value {
            "sandbox" => Some(Kind::Sandbox),
            "init" => Some(Kind::Init),
            "container" => Some(Kind::App),
            _ => None,
        }
    }
}

/// The name the sandbox container carries in its labels and name.
pub const SANDBOX_CONTAINER_NAME: &str = "POD";

/// `skiff_<node>_<ns>_<pod>_<container>_<attempt>`.
pub fn container_name(
    node: &str,
    namespace: &str,
    pod: &str,
    container: &str,
    attempt: u32,
) -> String {
    format!("skiff_{node}_{namespace}_{pod}_{container}_{attempt}")
}

/// The identity of a container read back from its labels; `None` when a label is missing or
/// malformed (such a container is not ours to manage, or was tampered with).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub node: String,
    pub pod_uid: String,
    pub namespace: String,
    pub pod_name: String,
    pub container_name: String,
    pub kind: Kind,
    pub attempt: u32,
    pub sandbox_id: Option<String>,
    pub spec_hash: Option<String>,
    pub grace_seconds: Option<i64>,
}

impl Identity {
    pub fn from_labels(labels: &HashMap<String, String>) -> Option<Identity> {
        Some(Identity {
            node: labels.get(NODE)?.clone(),
            pod_uid: labels.get(POD_UID)?.clone(),
            namespace: labels.get(POD_NAMESPACE)?.clone(),
            pod_name: labels.get(POD_NAME)?.clone(),
            container_name: labels.get(CONTAINER_NAME)?.clone(),
            kind: Kind::from_label(labels.get(KIND)?)?,
            attempt: labels.get(RESTART_COUNT)?.parse().ok()?,
            sandbox_id: labels.get(SANDBOX_ID).cloned(),
            spec_hash: labels.get(SPEC_HASH).cloned(),
            grace_seconds: labels.get(GRACE_SECONDS).and_then(|v| v.parse().ok()),
        })
    }

    pub fn to_labels(&self) -> HashMap<String, String> {
        let mut labels = HashMap::new();
        labels.insert(NODE.into(), self.node.clone());
        labels.insert(POD_UID.into(), self.pod_uid.clone());
        labels.insert(POD_NAMESPACE.into(), self.namespace.clone());
        labels.insert(POD_NAME.into(), self.pod_name.clone());
        labels.insert(CONTAINER_NAME.into(), self.container_name.clone());
        labels.insert(KIND.into(), self.kind.as_label().into());
        labels.insert(RESTART_COUNT.into(), self.attempt.to_string());
        if let Some(id) = &self.sandbox_id {
            labels.insert(SANDBOX_ID.into(), id.clone());
        }
        if let Some(hash) = &self.spec_hash {
            labels.insert(SPEC_HASH.into(), hash.clone());
        }
        if let Some(grace) = self.grace_seconds {
            labels.insert(GRACE_SECONDS.into(), grace.to_string());
        }
        labels
    }

    pub fn docker_name(&self) -> String {
        container_name(
            &self.node,
            &self.namespace,
            &self.pod_name,
            &self.container_name,
            self.attempt,
        )
    }
}
