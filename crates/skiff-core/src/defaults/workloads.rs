//! Workload defaults: Deployment, ReplicaSet, StatefulSet, DaemonSet, Job and CronJob specs,
//! plus the pod template defaults inside each.
//!
//! Invariant: only absent or null fields are filled, so explicit values (`replicas: 0`,
//! `strategy: Recreate`) are never replaced; a Recreate Deployment gets no `rollingUpdate`.

use serde_json::{Value, json};

use super::{child, claim_spec, ensure, pod, set};

fn template_of(object: &mut Value, pointer: &str) {
    if let Some(template) = object.pointer_mut(pointer) {
        pod::template(template);
    }
}

pub(super) fn deployment(object: &mut Value) {
    template_of(object, "/spec/template");
    let Some(spec) = child(object, "spec") else {
        return;
    };
    set(spec, "replicas", json!(1));
    set(spec, "revisionHistoryLimit", json!(10));
    set(spec, "progressDeadlineSeconds", json!(600));
    let Some(strategy) = ensure(spec, "strategy") else {
        return;
    };
    set(strategy, "type", json!("RollingUpdate"));
    if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate")
        && let Some(rolling) = ensure(strategy, "rollingUpdate")
    {
        set(rolling, "maxUnavailable", json!("25%"));
        set(rolling, "maxSurge", json!("25%"));
    }
}

pub(super) fn replica_set(object: &mut Value) {
    template_of(object, "/spec/template");
    if let Some(spec) = child(object, "spec") {
        set(spec, "replicas", json!(1));
    }
}

pub(super) fn stateful_set(object: &mut Value) {
    template_of(object, "/spec/template");
    if let Some(templates) = object
        .pointer_mut("/spec/volumeClaimTemplates")
        .and_then(Value::as_array_mut)
    {
        templates.iter_mut().for_each(claim_spec);
    }
    let Some(spec) = child(object, "spec") else {
        return;
    };
    set(spec, "replicas", json!(1));
    set(spec, "podManagementPolicy", json!("OrderedReady"));
    set(spec, "revisionHistoryLimit", json!(10));
    if let Some(policy) = ensure(spec, "persistentVolumeClaimRetentionPolicy") {
        set(policy, "whenDeleted", json!("Retain"));
        set(policy, "whenScaled", json!("Retain"));
    }
    let Some(strategy) = ensure(spec, "updateStrategy") else {
        return;
    };
    set(strategy, "type", json!("RollingUpdate"));
    if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate")
        && let Some(rolling) = ensure(strategy, "rollingUpdate")
    {
        set(rolling, "partition", json!(0));
    }
}

pub(super) fn daemon_set(object: &mut Value) {
    template_of(object, "/spec/template");
    let Some(spec) = child(object, "spec") else {
        return;
    };
    set(spec, "revisionHistoryLimit", json!(10));
    let Some(strategy) = ensure(spec, "updateStrategy") else {
        return;
    };
    set(strategy, "type", json!("RollingUpdate"));
    if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate")
        && let Some(rolling) = ensure(strategy, "rollingUpdate")
    {
        set(rolling, "maxUnavailable", json!(1));
        set(rolling, "maxSurge", json!(0));
    }
}

/// Defaults of a Job spec (also the `jobTemplate.spec` of a CronJob gets only its template's).
pub(super) fn job(object: &mut Value) {
    template_of(object, "/spec/template");
    let Some(spec) = child(object, "spec") else {
        return;
    };
    let absent = |value: Option<&Value>| value.is_none_or(Value::is_null);
    if absent(spec.get("completions")) && absent(spec.get("parallelism")) {
        spec.insert("completions".into(), json!(1));
    }
    set(spec, "parallelism", json!(1));
    let per_index = !absent(spec.get("backoffLimitPerIndex"));
    set(
        spec,
        "backoffLimit",
        json!(if per_index { i32::MAX } else { 6 }),
    );
    set(spec, "completionMode", json!("NonIndexed"));
    set(spec, "suspend", json!(false));
    let has_failure_policy = !absent(spec.get("podFailurePolicy"));
    let replacement = if has_failure_policy {
        "Failed"
    } else {
        "TerminatingOrFailed"
    };
    set(spec, "podReplacementPolicy", json!(replacement));
    if let Some(rules) = spec
        .get_mut("podFailurePolicy")
        .and_then(|policy| policy.get_mut("rules"))
        .and_then(Value::as_array_mut)
    {
        for rule in rules {
            let conditions = rule
                .get_mut("onPodConditions")
                .and_then(Value::as_array_mut);
            for condition in conditions
                .into_iter()
                .flatten()
                .filter_map(Value::as_object_mut)
            {
                set(condition, "status", json!("True"));
            }
        }
    }
}

pub(super) fn cron_job(object: &mut Value) {
    template_of(object, "/spec/jobTemplate/spec/template");
    let Some(spec) = child(object, "spec") else {
        return;
    };
    set(spec, "concurrencyPolicy", json!("Allow"));
    set(spec, "suspend", json!(false));
    set(spec, "successfulJobsHistoryLimit", json!(3));
    set(spec, "failedJobsHistoryLimit", json!(1));
}
