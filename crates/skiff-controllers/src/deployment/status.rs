//! Deployment status and conditions: counts from the ReplicaSets, `Available` (minimum
//! availability), `Progressing` (NewReplicaSetCreated, FoundNewReplicaSet, ReplicaSetUpdated,
//! NewReplicaSetAvailable, ProgressDeadlineExceeded, DeploymentPaused, DeploymentResumed).
//!
//! Invariants: a condition whose status does not change keeps its `lastTransitionTime`; a
//! condition with the same status and reason is left alone entirely (except Progressing's
//! update time when progress is seen); a timed-out Deployment is never reported as paused.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::rolling::{Pass, Working};
use super::{max_unavailable, replicas};
use crate::workload::time;

/// The Progressing reason for a Deployment that missed its progress deadline.
pub const TIMED_OUT_REASON: &str = "ProgressDeadlineExceeded";
const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
const PAUSED: &str = "DeploymentPaused";

/// A condition with both times set to `now`.
pub(super) fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: Timestamp,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(time(now)),
        last_transition_time: Some(time(now)),
    }
}

pub(super) fn has_progress_deadline(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .is_some_and(|s| s != i32::MAX)
}

pub(super) fn condition<'a>(
    status: &'a DeploymentStatus,
    type_: &str,
) -> Option<&'a DeploymentCondition> {
    status
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// kube's `SetDeploymentCondition`.
pub(super) fn set(status: &mut DeploymentStatus, mut condition: DeploymentCondition) {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    if let Some(current) = conditions.iter().find(|c| c.type_ == condition.type_) {
        if current.status == condition.status && current.reason == condition.reason {
            return;
        }
        if current.status == condition.status {
            condition.last_transition_time = current.last_transition_time.clone();
        }
    }
    conditions.retain(|c| c.type_ != condition.type_);
    conditions.push(condition);
}

fn remove(status: &mut DeploymentStatus, type_: &str) {
    if let Some(conditions) = status.conditions.as_mut() {
        conditions.retain(|c| c.type_ != type_);
        if conditions.is_empty() {
            status.conditions = None;
        }
    }
}

/// Whether the status shows a finished rollout of the current generation.
pub fn deployment_complete(d: &Deployment, status: &DeploymentStatus) -> bool {
    let desired = replicas(d);
    status.updated_replicas.unwrap_or(0) == desired
        && status.replicas.unwrap_or(0) == desired
        && status.available_replicas.unwrap_or(0) == desired
        && status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// kube's `calculateStatus`.
pub(super) fn calculate(pass: &Pass<'_>) -> DeploymentStatus {
    let all = &pass.rss;
    let available: i32 = all.iter().map(Working::available).sum();
    let total: i32 = all.iter().map(Working::spec_replicas).sum();
    let mut status = DeploymentStatus {
        observed_generation: pass.d.metadata.generation,
        replicas: Some(all.iter().map(Working::status_replicas).sum()),
        updated_replicas: Some(pass.new.map(|i| all[i].status_replicas()).unwrap_or(0)),
        ready_replicas: Some(all.iter().map(Working::ready).sum()),
        available_replicas: Some(available),
        unavailable_replicas: Some((total - available).max(0)),
        collision_count: pass.status.collision_count,
        conditions: pass.status.conditions.clone(),
        terminating_replicas: None,
    };
    if available >= replicas(pass.d) - max_unavailable(pass.d) {
        set(
            &mut status,
            new_condition(
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.".into(),
                pass.now,
            ),
        );
    } else {
        set(
            &mut status,
            new_condition(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.".into(),
                pass.now,
            ),
        );
    }
    status
}

/// Paused/resumed Progressing conditions (kube's `checkPausedConditions`).
pub(super) fn paused_conditions(pass: &mut Pass<'_>) {
    if !has_progress_deadline(pass.d) {
        return;
    }
    let current = condition(&pass.status, "Progressing");
    if current.is_some_and(|c| c.reason.as_deref() == Some(TIMED_OUT_REASON)) {
        return;
    }
    let paused_exists = current.is_some_and(|c| c.reason.as_deref() == Some(PAUSED));
    let paused = pass.d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
    if paused && !paused_exists {
        set(
            &mut pass.status,
            new_condition(
                "Progressing",
                "Unknown",
                PAUSED,
                "Deployment is paused".into(),
                pass.now,
            ),
        );
    } else if !paused && paused_exists {
        set(
            &mut pass.status,
            new_condition(
                "Progressing",
                "Unknown",
                "DeploymentResumed",
                "Deployment is resumed".into(),
                pass.now,
            ),
        );
    }
}

/// Status after a pass: plain (`rollout` false: paused, scaling, deleting) or with progress
/// estimation (kube's `syncRolloutStatus`).
pub(super) fn sync(pass: &mut Pass<'_>, rollout: bool) {
    let mut next = calculate(pass);
    if !rollout {
        pass.status = next;
        return;
    }
    let d = pass.d;
    if !has_progress_deadline(d) {
        remove(&mut next, "Progressing");
    }
    let old = d.status.clone().unwrap_or_default();
    let current = condition(&pass.status, "Progressing").cloned();
    let complete_before = next.replicas == next.updated_replicas
        && current
            .as_ref()
            .is_some_and(|c| c.reason.as_deref() == Some(NEW_RS_AVAILABLE));
    let new_name = pass.new.map(|i| pass.rss[i].name().to_string());
    let subject = |what: &str| match &new_name {
        Some(name) => format!("ReplicaSet \"{name}\" {what}"),
        None => format!(
            "Deployment \"{}\" {what}",
            d.metadata.name.as_deref().unwrap_or_default()
        ),
    };
    if has_progress_deadline(d) && !complete_before {
        if deployment_complete(d, &next) {
            set(
                &mut next,
                new_condition(
                    "Progressing",
                    "True",
                    NEW_RS_AVAILABLE,
                    subject("has successfully progressed."),
                    pass.now,
                ),
            );
        } else if progressing(&old, &next) {
            let mut condition = new_condition(
                "Progressing",
                "True",
                "ReplicaSetUpdated",
                subject("is progressing."),
                pass.now,
            );
            if let Some(current) = &current
                && current.status == "True"
            {
                condition.last_transition_time = current.last_transition_time.clone();
            }
            remove(&mut next, "Progressing");
            set(&mut next, condition);
        } else if timed_out(d, &next, pass.now) {
            set(
                &mut next,
                new_condition(
                    "Progressing",
                    "False",
                    TIMED_OUT_REASON,
                    subject("has timed out progressing."),
                    pass.now,
                ),
            );
        }
    }
    // Requeue to notice the deadline passing.
    if has_progress_deadline(d)
        && !deployment_complete(d, &next)
        && let Some(c) = condition(&next, "Progressing")
        && c.reason.as_deref() != Some(TIMED_OUT_REASON)
        && let Some(updated) = c.last_update_time.as_ref()
    {
        let deadline = i64::from(
            d.spec
                .as_ref()
                .and_then(|s| s.progress_deadline_seconds)
                .unwrap_or(600),
        );
        let due = updated.0 + SignedDuration::from_secs(deadline);
        let after = due.duration_since(pass.now).as_secs().max(0) + 1;
        pass.requeue = Some(pass.requeue.map_or(after, |r| r.min(after)));
    }
    // Pods becoming available after minReadySeconds need another look.
    let min_ready = d
        .spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0);
    if min_ready > 0 && next.ready_replicas != next.available_replicas {
        let after = i64::from(min_ready);
        pass.requeue = Some(pass.requeue.map_or(after, |r| r.min(after)));
    }
    pass.status = next;
}

fn progressing(old: &DeploymentStatus, new: &DeploymentStatus) -> bool {
    let old_old = old.replicas.unwrap_or(0) - old.updated_replicas.unwrap_or(0);
    let new_old = new.replicas.unwrap_or(0) - new.updated_replicas.unwrap_or(0);
    new.updated_replicas.unwrap_or(0) > old.updated_replicas.unwrap_or(0)
        || new_old < old_old
        || new.ready_replicas.unwrap_or(0) > old.ready_replicas.unwrap_or(0)
        || new.available_replicas.unwrap_or(0) > old.available_replicas.unwrap_or(0)
}

fn timed_out(d: &Deployment, status: &DeploymentStatus, now: Timestamp) -> bool {
    let Some(c) = condition(status, "Progressing") else {
        return false;
    };
    match c.reason.as_deref() {
        Some(NEW_RS_AVAILABLE) => return false,
        Some(TIMED_OUT_REASON) => return true,
        _ => {}
    }
    let Some(from) = c.last_update_time.as_ref() else {
        return false;
    };
    let deadline = i64::from(
        d.spec
            .as_ref()
            .and_then(|s| s.progress_deadline_seconds)
            .unwrap_or(600),
    );
    from.0 + SignedDuration::from_secs(deadline) < now
}
