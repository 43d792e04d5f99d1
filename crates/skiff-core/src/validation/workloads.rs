//! Workload validation: Deployment, ReplicaSet, StatefulSet, DaemonSet, Job and CronJob specs —
//! counts, selectors that are non-empty and match the template's labels, update strategies, the
//! template's restart policy per controller, and the pod template itself.

use serde_json::Value;

use super::cron;
use super::meta::template_meta;
use super::pod::{pod_spec_with_claims, restart_policy};
use super::values::{int, list, non_negative, one_of, present, text, text_or_empty};
use crate::field::{Error, Path};
use crate::names;
use crate::selector::LabelSelector;

fn spec_of(object: &Value) -> &Value {
    object.get("spec").unwrap_or(&Value::Null)
}

/// The selector must be present, valid, non-empty and match the template's labels.
fn selector_matches_template(errors: &mut Vec<Error>, spec: &Value, path: &Path, kind_word: &str) {
    let selector_path = path.child("selector");
    let Some(selector_value) = spec.get("selector").filter(|value| !value.is_null()) else {
        errors.push(Error::required(&selector_path, ""));
        return;
    };
    let selector = match LabelSelector::from_json(selector_value) {
        Ok(selector) => selector,
        Err(error) => {
            errors.push(Error::invalid(
                &selector_path,
                selector_value.clone(),
                &error.to_string(),
            ));
            return;
        }
    };
    if selector.is_everything() {
        errors.push(Error::invalid(
            &selector_path,
            selector_value.clone(),
            &format!("empty selector is invalid for {kind_word}"),
        ));
        return;
    }
    let labels_value = spec.pointer("/template/metadata/labels");
    let labels = names::string_map(labels_value);
    if !selector.matches(&labels) {
        errors.push(Error::invalid(
            &path.child("template.metadata.labels"),
            labels_value.cloned().unwrap_or(Value::Null),
            "`selector` does not match template `labels`",
        ));
    }
}

fn template(errors: &mut Vec<Error>, spec: &Value, path: &Path, restart: &[&str]) {
    let template_path = path.child("template");
    let Some(template) = spec.get("template").filter(|value| !value.is_null()) else {
        errors.push(Error::required(&template_path, ""));
        return;
    };
    template_meta(errors, &template_path.child("metadata"), template);
    let template_spec = template.get("spec").unwrap_or(&Value::Null);
    let spec_path = template_path.child("spec");
    let claims: Vec<String> = list(spec, "volumeClaimTemplates")
        .iter()
        .filter_map(|c| c.pointer("/metadata/name").and_then(Value::as_str))
        .map(str::to_string)
        .collect();
    pod_spec_with_claims(errors, &spec_path, template_spec, &claims);
    restart_policy(errors, &spec_path, template_spec, restart);
}

/// `maxUnavailable`/`maxSurge`: a non-negative integer or a percentage.
fn int_or_percent(
    errors: &mut Vec<Error>,
    path: &Path,
    value: Option<&Value>,
    at_most_100: bool,
) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::Number(number)) => {
            let amount = number.as_i64().unwrap_or(-1);
            non_negative(errors, path, Some(amount));
            amount == 0
        }
        Some(Value::String(text)) => {
            match text.strip_suffix('%').and_then(|n| n.parse::<i64>().ok()) {
                Some(percent) if percent < 0 => {
                    errors.push(Error::invalid(
                        path,
                        text.as_str(),
                        "must be greater than or equal to 0",
                    ));
                    false
                }
                Some(percent) if at_most_100 && percent > 100 => {
                    errors.push(Error::invalid(
                        path,
                        text.as_str(),
                        "must not be greater than 100%",
                    ));
                    false
                }
                Some(percent) => percent == 0,
                None => {
                    errors.push(Error::invalid(path, text.as_str(), "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%')"));
                    false
                }
            }
        }
        Some(other) => {
            errors.push(Error::invalid(
                path,
                other.clone(),
                "must be an integer or percentage (e.g. '5%')",
            ));
            false
        }
    }
}

fn rolling_update(errors: &mut Vec<Error>, path: &Path, rolling: &Value) {
    let unavailable_zero = int_or_percent(
        errors,
        &path.child("maxUnavailable"),
        rolling.get("maxUnavailable"),
        true,
    );
    let surge_zero = int_or_percent(
        errors,
        &path.child("maxSurge"),
        rolling.get("maxSurge"),
        false,
    );
    if unavailable_zero && surge_zero {
        errors.push(Error::invalid(
            &path.child("maxUnavailable"),
            rolling
                .get("maxUnavailable")
                .cloned()
                .unwrap_or(Value::Null),
            "may not be 0 when `maxSurge` is 0",
        ));
    }
}

pub(super) fn deployment(errors: &mut Vec<Error>, object: &Value) {
    let spec = spec_of(object);
    let path = Path::new("spec");
    for field in ["replicas", "minReadySeconds", "revisionHistoryLimit"] {
        non_negative(errors, &path.child(field), int(spec, field));
    }
    selector_matches_template(errors, spec, &path, "deployment");
    template(errors, spec, &path, &["Always"]);
    if let Some(strategy) = spec.get("strategy").filter(|value| !value.is_null()) {
        let strategy_path = path.child("strategy");
        let strategy_type = text(strategy, "type");
        one_of(
            errors,
            &strategy_path.child("type"),
            strategy_type,
            &["Recreate", "RollingUpdate"],
        );
        match (
            strategy_type,
            strategy
                .get("rollingUpdate")
                .filter(|value| !value.is_null()),
        ) {
            (Some("Recreate"), Some(_)) => errors.push(Error::forbidden(
                &strategy_path.child("rollingUpdate"),
                "may not be specified when strategy `type` is 'Recreate'",
            )),
            (_, Some(rolling)) => {
                rolling_update(errors, &strategy_path.child("rollingUpdate"), rolling)
            }
            _ => {}
        }
    }
    if let Some(deadline) = int(spec, "progressDeadlineSeconds") {
        non_negative(
            errors,
            &path.child("progressDeadlineSeconds"),
            Some(deadline),
        );
        if deadline <= int(spec, "minReadySeconds").unwrap_or(0) {
            errors.push(Error::invalid(
                &path.child("progressDeadlineSeconds"),
                deadline,
                "must be greater than minReadySeconds",
            ));
        }
    }
}

pub(super) fn replica_set(errors: &mut Vec<Error>, object: &Value) {
    let spec = spec_of(object);
    let path = Path::new("spec");
    for field in ["replicas", "minReadySeconds"] {
        non_negative(errors, &path.child(field), int(spec, field));
    }
    selector_matches_template(errors, spec, &path, "replicaset");
    template(errors, spec, &path, &["Always"]);
}

pub(super) fn stateful_set(errors: &mut Vec<Error>, object: &Value) {
    let spec = spec_of(object);
    let path = Path::new("spec");
    for field in ["replicas", "minReadySeconds", "revisionHistoryLimit"] {
        non_negative(errors, &path.child(field), int(spec, field));
    }
    one_of(
        errors,
        &path.child("podManagementPolicy"),
        text(spec, "podManagementPolicy"),
        &["OrderedReady", "Parallel"],
    );
    if let Some(strategy) = spec.get("updateStrategy").filter(|value| !value.is_null()) {
        let strategy_type = text(strategy, "type");
        one_of(
            errors,
            &path.child("updateStrategy.type"),
            strategy_type,
            &["RollingUpdate", "OnDelete"],
        );
        if strategy_type == Some("OnDelete") && present(strategy, "rollingUpdate") {
            errors.push(Error::invalid(
                &path.child("updateStrategy.rollingUpdate"),
                "",
                "only allowed for updateStrategy 'RollingUpdate'",
            ));
        }
        if let Some(rolling) = strategy.get("rollingUpdate") {
            non_negative(
                errors,
                &path.child("updateStrategy.rollingUpdate.partition"),
                int(rolling, "partition"),
            );
        }
    }
    if let Some(service_name) = text(spec, "serviceName").filter(|name| !name.is_empty()) {
        for reason in names::dns1123_label(service_name) {
            errors.push(Error::invalid(
                &path.child("serviceName"),
                service_name,
                &reason,
            ));
        }
    }
    for (index, claim) in list(spec, "volumeClaimTemplates").iter().enumerate() {
        let name = claim
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let at = path
            .child("volumeClaimTemplates")
            .index(index)
            .child("metadata.name");
        if name.is_empty() {
            errors.push(Error::required(&at, ""));
        } else {
            for reason in names::dns1123_subdomain(name) {
                errors.push(Error::invalid(&at, name, &reason));
            }
        }
    }
    selector_matches_template(errors, spec, &path, "statefulset");
    template(errors, &with_claim_volumes(spec), &path, &["Always"]);
}

/// The StatefulSet spec with each `volumeClaimTemplates` name added to the template's volumes
/// (as the PVC volume the controller gives each pod), so volume mounts that name a claim
/// template validate, as they do in Kubernetes.
fn with_claim_volumes(spec: &Value) -> std::borrow::Cow<'_, Value> {
    let claims: Vec<&str> = list(spec, "volumeClaimTemplates")
        .iter()
        .filter_map(|claim| claim.pointer("/metadata/name").and_then(Value::as_str))
        .filter(|name| !name.is_empty())
        .collect();
    if claims.is_empty() {
        return std::borrow::Cow::Borrowed(spec);
    }
    let mut spec = spec.clone();
    if let Some(template_spec) = spec
        .pointer_mut("/template/spec")
        .and_then(Value::as_object_mut)
    {
        let volumes = template_spec
            .entry("volumes")
            .or_insert_with(|| Value::Array(Vec::new()));
        if volumes.is_null() {
            *volumes = Value::Array(Vec::new());
        }
        if let Some(volumes) = volumes.as_array_mut() {
            for claim in claims {
                let taken = volumes
                    .iter()
                    .any(|v| v.get("name").and_then(Value::as_str) == Some(claim));
                if !taken {
                    volumes.push(serde_json::json!({
                        "name": claim,
                        "persistentVolumeClaim": {"claimName": claim},
                    }));
                }
            }
        }
    }
    std::borrow::Cow::Owned(spec)
}

pub(super) fn daemon_set(errors: &mut Vec<Error>, object: &Value) {
    let spec = spec_of(object);
    let path = Path::new("spec");
    for field in ["minReadySeconds", "revisionHistoryLimit"] {
        non_negative(errors, &path.child(field), int(spec, field));
    }
    selector_matches_template(errors, spec, &path, "daemonset");
    template(errors, spec, &path, &["Always"]);
    if let Some(strategy) = spec.get("updateStrategy").filter(|value| !value.is_null()) {
        let strategy_type = text(strategy, "type");
        one_of(
            errors,
            &path.child("updateStrategy.type"),
            strategy_type,
            &["RollingUpdate", "OnDelete"],
        );
        if let Some(rolling) = strategy
            .get("rollingUpdate")
            .filter(|value| !value.is_null())
        {
            rolling_update(errors, &path.child("updateStrategy.rollingUpdate"), rolling);
        }
    }
}

/// A Job spec at `path`; `needs_selector` is false inside a CronJob's jobTemplate.
fn job_spec(errors: &mut Vec<Error>, spec: &Value, path: &Path, needs_selector: bool) {
    for field in [
        "parallelism",
        "completions",
        "backoffLimit",
        "ttlSecondsAfterFinished",
        "backoffLimitPerIndex",
    ] {
        non_negative(errors, &path.child(field), int(spec, field));
    }
    if let Some(deadline) = int(spec, "activeDeadlineSeconds").filter(|seconds| *seconds < 1) {
        errors.push(Error::invalid(
            &path.child("activeDeadlineSeconds"),
            deadline,
            "must be greater than or equal to 1",
        ));
    }
    let mode = text(spec, "completionMode");
    one_of(
        errors,
        &path.child("completionMode"),
        mode,
        &["NonIndexed", "Indexed"],
    );
    if mode == Some("Indexed") && int(spec, "completions").is_none() {
        errors.push(Error::required(
            &path.child("completions"),
            "when completion mode is Indexed",
        ));
    }
    if present(spec, "backoffLimitPerIndex") && mode != Some("Indexed") {
        errors.push(Error::invalid(
            &path.child("backoffLimitPerIndex"),
            spec.get("backoffLimitPerIndex")
                .cloned()
                .unwrap_or(Value::Null),
            "requires indexed completion mode",
        ));
    }
    one_of(
        errors,
        &path.child("podReplacementPolicy"),
        text(spec, "podReplacementPolicy"),
        &["TerminatingOrFailed", "Failed"],
    );
    if needs_selector {
        selector_matches_template(errors, spec, path, "job");
    }
    template(errors, spec, path, &["OnFailure", "Never"]);
}

pub(super) fn job(errors: &mut Vec<Error>, object: &Value) {
    job_spec(errors, spec_of(object), &Path::new("spec"), true);
}

pub(super) fn cron_job(errors: &mut Vec<Error>, object: &Value) {
    let spec = spec_of(object);
    let path = Path::new("spec");
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if name.len() > 52 {
        errors.push(Error::invalid(
            &Path::new("metadata.name"),
            name,
            "must be no more than 52 characters",
        ));
    }
    let schedule = text_or_empty(spec, "schedule");
    if schedule.is_empty() {
        errors.push(Error::required(&path.child("schedule"), ""));
    } else if let Err(reason) = cron::check_schedule(schedule) {
        errors.push(Error::invalid(&path.child("schedule"), schedule, &reason));
    }
    if let Some(zone) = text(spec, "timeZone")
        && (zone.is_empty() || zone.contains(' ') || zone.starts_with('/') || zone.contains(".."))
    {
        errors.push(Error::invalid(
            &path.child("timeZone"),
            zone,
            "unknown time zone",
        ));
    }
    one_of(
        errors,
        &path.child("concurrencyPolicy"),
        text(spec, "concurrencyPolicy"),
        &["Allow", "Forbid", "Replace"],
    );
    for field in [
        "startingDeadlineSeconds",
        "successfulJobsHistoryLimit",
        "failedJobsHistoryLimit",
    ] {
        non_negative(errors, &path.child(field), int(spec, field));
    }
    let job_path = path.child("jobTemplate.spec");
    match spec.pointer("/jobTemplate/spec") {
        Some(job_template) => job_spec(errors, job_template, &job_path, false),
        None => errors.push(Error::required(&job_path, "")),
    }
}
