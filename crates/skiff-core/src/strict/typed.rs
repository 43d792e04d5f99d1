//! The typed round trip: deserialise a value into the `k8s-openapi` type of its kind and
//! serialise it back, so the caller can see which input keys the model does not know.
//!
//! Invariant: the table covers every stored kind of the built-in registry plus the subresource
//! kinds clients write (Scale, Eviction, Binding); `registry` tests would not catch a gap, so
//! `strict/tests.rs` walks the registry and checks each kind is here.

use k8s_openapi::api::{
    apps, authorization, autoscaling, batch, coordination, core, discovery, events, networking,
    policy, rbac, scheduling, storage,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{Error, Result, to_typed};

fn through<T: DeserializeOwned + Serialize>(
    value: &Value,
    version: &str,
    kind: &str,
) -> Result<Value> {
    let typed: T = to_typed(value, version, kind)?;
    serde_json::to_value(&typed).map_err(|error| Error::Type {
        kind: kind.to_string(),
        version: version.to_string(),
        detail: error.to_string(),
    })
}

macro_rules! kinds {
    ($group:expr, $version:expr, $kind:expr, $value:expr; $( ($g:literal, $v:literal, $k:literal) => $ty:ty ),* $(,)?) => {
        match ($group, $version, $kind) {
            $( ($g, $v, $k) => Some(through::<$ty>($value, $v, $k)), )*
            _ => None,
        }
    };
}

/// The value after a typed round trip, `None` for kinds without a typed model.
pub(super) fn round_trip(
    group: &str,
    version: &str,
    kind: &str,
    value: &Value,
) -> Option<Result<Value>> {
    kinds!(group, version, kind, value;
        ("", "v1", "Binding") => core::v1::Binding,
        ("", "v1", "ConfigMap") => core::v1::ConfigMap,
        ("", "v1", "Endpoints") => core::v1::Endpoints,
        ("", "v1", "Event") => core::v1::Event,
        ("", "v1", "LimitRange") => core::v1::LimitRange,
        ("", "v1", "Namespace") => core::v1::Namespace,
        ("", "v1", "Node") => core::v1::Node,
        ("", "v1", "PersistentVolume") => core::v1::PersistentVolume,
        ("", "v1", "PersistentVolumeClaim") => core::v1::PersistentVolumeClaim,
        ("", "v1", "Pod") => core::v1::Pod,
        ("", "v1", "ResourceQuota") => core::v1::ResourceQuota,
        ("", "v1", "Secret") => core::v1::Secret,
        ("", "v1", "Service") => core::v1::Service,
        ("", "v1", "ServiceAccount") => core::v1::ServiceAccount,
        ("apps", "v1", "ControllerRevision") => apps::v1::ControllerRevision,
        ("apps", "v1", "DaemonSet") => apps::v1::DaemonSet,
        ("apps", "v1", "Deployment") => apps::v1::Deployment,
        ("apps", "v1", "ReplicaSet") => apps::v1::ReplicaSet,
        ("apps", "v1", "StatefulSet") => apps::v1::StatefulSet,
        ("events.k8s.io", "v1", "Event") => events::v1::Event,
        ("authorization.k8s.io", "v1", "SelfSubjectAccessReview") => authorization::v1::SelfSubjectAccessReview,
        ("autoscaling", "v1", "HorizontalPodAutoscaler") => autoscaling::v1::HorizontalPodAutoscaler,
        ("autoscaling", "v1", "Scale") => autoscaling::v1::Scale,
        ("autoscaling", "v2", "HorizontalPodAutoscaler") => autoscaling::v2::HorizontalPodAutoscaler,
        ("batch", "v1", "CronJob") => batch::v1::CronJob,
        ("batch", "v1", "Job") => batch::v1::Job,
        ("networking.k8s.io", "v1", "Ingress") => networking::v1::Ingress,
        ("networking.k8s.io", "v1", "IngressClass") => networking::v1::IngressClass,
        ("networking.k8s.io", "v1", "NetworkPolicy") => networking::v1::NetworkPolicy,
        ("policy", "v1", "Eviction") => policy::v1::Eviction,
        ("policy", "v1", "PodDisruptionBudget") => policy::v1::PodDisruptionBudget,
        ("rbac.authorization.k8s.io", "v1", "ClusterRole") => rbac::v1::ClusterRole,
        ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding") => rbac::v1::ClusterRoleBinding,
        ("rbac.authorization.k8s.io", "v1", "Role") => rbac::v1::Role,
        ("rbac.authorization.k8s.io", "v1", "RoleBinding") => rbac::v1::RoleBinding,
        ("storage.k8s.io", "v1", "StorageClass") => storage::v1::StorageClass,
        ("scheduling.k8s.io", "v1", "PriorityClass") => scheduling::v1::PriorityClass,
        ("coordination.k8s.io", "v1", "Lease") => coordination::v1::Lease,
        ("discovery.k8s.io", "v1", "EndpointSlice") => discovery::v1::EndpointSlice,
    )
}
