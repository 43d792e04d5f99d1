//! Helpers every workload controller shares: owner references, pod readiness and availability,
//! percentages (`IntOrString`) with Kubernetes' rounding, and time.
//!
//! Invariants: pure functions; a pod is *ready* when its `Ready` condition is True and it is not
//! being deleted, *available* when it has been ready for at least `minReadySeconds`; a pod is
//! *active* when it is neither terminal (Succeeded/Failed) nor being deleted.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// The controller owner reference of an object, if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
}

/// Whether `meta` is controlled by the object with this uid.
pub fn is_controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    controller_of(meta).is_some_and(|r| r.uid == uid)
}

/// A controller owner reference (`controller: true`, `blockOwnerDeletion: true`).
pub fn owner_reference(api_version: &str, kind: &str, owner: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        name: owner.name.clone().unwrap_or_default(),
        uid: owner.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The phase of a pod ("" when unknown).
pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

/// Whether a pod finished (Succeeded or Failed).
pub fn is_terminal(pod: &Pod) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

/// Whether a pod is neither finished nor being deleted.
pub fn is_active(pod: &Pod) -> bool {
    !is_terminal(pod) && pod.metadata.deletion_timestamp.is_none()
}

/// The last transition time of the pod's `Ready` condition, if it is True.
pub fn ready_since(pod: &Pod) -> Option<Option<Timestamp>> {
    let condition = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?;
    (condition.status == "True").then(|| condition.last_transition_time.as_ref().map(|t| t.0))
}

/// Whether a pod is ready (and not being deleted).
pub fn is_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none() && ready_since(pod).is_some()
}

/// Whether a pod has been ready for `min_ready_seconds` at `now`.
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    if pod.metadata.deletion_timestamp.is_some() {
        return false;
    }
    match ready_since(pod) {
        None => false,
        Some(_) if min_ready_seconds <= 0 => true,
        Some(None) => false,
        Some(Some(since)) => since + SignedDuration::from_secs(i64::from(min_ready_seconds)) <= now,
    }
}

/// When a ready pod becomes available (None if not ready or already available).
pub fn available_at(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> Option<Timestamp> {
    let since = ready_since(pod)??;
    let at = since + SignedDuration::from_secs(i64::from(min_ready_seconds));
    (min_ready_seconds > 0 && at > now).then_some(at)
}

/// Scale an `IntOrString` against a total (`"25%"` of 10 is 3 rounding up, 2 rounding down).
pub fn scaled_value(value: &IntOrString, total: i32, round_up: bool) -> Option<i32> {
    match value {
        IntOrString::Int(i) => Some(*i),
        IntOrString::String(s) => {
            let percent: i64 = s.strip_suffix('%')?.trim().parse().ok()?;
            let product = percent * i64::from(total);
            let scaled = if round_up {
                (product + 99).div_euclid(100)
            } else {
                product.div_euclid(100)
            };
            i32::try_from(scaled).ok()
        }
    }
}

/// A `Time` for a timestamp.
pub fn time(at: Timestamp) -> Time {
    Time(at)
}

/// Seconds since the epoch of an optional time (0 when unset), for ordering.
pub fn seconds(time: Option<&Time>) -> i64 {
    time.map(|t| t.0.as_second()).unwrap_or(0)
}

/// Whether a Kubernetes object's name, labels and namespace match for adoption by a selector.
pub fn labels_of(meta: &ObjectMeta) -> std::collections::BTreeMap<String, String> {
    meta.labels.clone().unwrap_or_default()
}

/// A label selector (`metav1.LabelSelector`) compiled with skiff-core; an unparsable one
/// selects nothing.
pub fn selector(
    selector: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
) -> skiff_core::selector::LabelSelector {
    selector
        .and_then(|s| serde_json::to_value(s).ok())
        .and_then(|v| skiff_core::selector::LabelSelector::from_json(&v).ok())
        .unwrap_or_else(skiff_core::selector::LabelSelector::nothing)
}

#[cfg(test)]
mod tests;
