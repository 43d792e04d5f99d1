//! Validation of the configuration and policy kinds: ConfigMap and Secret (keys, size, the
//! keys each Secret type needs), PersistentVolumeClaim, HorizontalPodAutoscaler,
//! PodDisruptionBudget, RBAC roles and bindings, PriorityClass.

use serde_json::Value;

use super::values::{
    int, list, non_negative, one_of, present, quantity_amount, text, text_or_empty,
};
use crate::field::{Error, Path};
use crate::names;

/// The most data a ConfigMap or Secret may hold, in bytes.
pub const MAX_DATA_BYTES: usize = 1024 * 1024;

/// Reasons `key` is not a valid ConfigMap/Secret key.
fn config_key(key: &str) -> Vec<String> {
    let mut reasons = Vec::new();
    if key.len() > names::DNS1123_SUBDOMAIN_MAX_LENGTH {
        reasons.push("must be no more than 253 characters".to_string());
    }
    if key.is_empty()
        || !key
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'))
    {
        reasons.push("a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name', 'KEY_NAME' or 'key-name')".into());
    }
    if key == "." || key == ".." {
        reasons.push(format!("must not be '{key}'"));
    }
    reasons
}

/// Check the keys of `data` maps (and that no key is in two of them) and the total size.
fn data_maps(errors: &mut Vec<Error>, object: &Value, maps: &[&str]) {
    let mut seen = std::collections::BTreeSet::new();
    let mut total = 0usize;
    for map_name in maps {
        let Some(map) = object.get(*map_name).and_then(Value::as_object) else {
            continue;
        };
        for (key, value) in map {
            let at = Path::new(map_name).key(key);
            for reason in config_key(key) {
                errors.push(Error::invalid(&at, key.as_str(), &reason));
            }
            if !seen.insert(key.clone()) {
                errors.push(Error::invalid(
                    &at,
                    key.as_str(),
                    "duplicate of key present in another data map",
                ));
            }
            total = total.saturating_add(value.as_str().map_or(0, str::len));
        }
    }
    if total > MAX_DATA_BYTES {
        errors.push(Error::too_long(&Path::root(), MAX_DATA_BYTES));
    }
}

pub(super) fn config_map(errors: &mut Vec<Error>, object: &Value) {
    data_maps(errors, object, &["data", "binaryData"]);
}

pub(super) fn secret(errors: &mut Vec<Error>, object: &Value) {
    data_maps(errors, object, &["data", "stringData"]);
    let secret_type = text_or_empty(object, "type");
    let has_key = |key: &str| {
        ["data", "stringData"]
            .iter()
            .any(|map| object.get(*map).and_then(|m| m.get(key)).is_some())
    };
    let required: &[&str] = match secret_type {
        "kubernetes.io/tls" => &["tls.crt", "tls.key"],
        "kubernetes.io/dockerconfigjson" => &[".dockerconfigjson"],
        "kubernetes.io/dockercfg" => &[".dockercfg"],
        "kubernetes.io/ssh-auth" => &["ssh-privatekey"],
        _ => &[],
    };
    for key in required {
        if !has_key(key) {
            errors.push(Error::required(&Path::new("data").key(key), ""));
        }
    }
    if secret_type == "kubernetes.io/basic-auth" && !has_key("username") && !has_key("password") {
        errors.push(Error::required(&Path::new("data").key("username"), ""));
    }
    if secret_type == "kubernetes.io/service-account-token"
        && object
            .pointer("/metadata/annotations/kubernetes.io~1service-account.name")
            .is_none()
    {
        errors.push(Error::required(
            &Path::new("metadata.annotations").key("kubernetes.io/service-account.name"),
            "",
        ));
    }
}

const ACCESS_MODES: &[&str] = &[
    "ReadWriteOnce",
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOncePod",
];

pub(super) fn persistent_volume_claim(errors: &mut Vec<Error>, object: &Value) {
    let spec = object.get("spec").unwrap_or(&Value::Null);
    let path = Path::new("spec");
    let modes = list(spec, "accessModes");
    if modes.is_empty() {
        errors.push(Error::required(
            &path.child("accessModes"),
            "at least 1 access mode is required",
        ));
    }
    for (index, mode) in modes.iter().enumerate() {
        one_of(
            errors,
            &path.child("accessModes").index(index),
            mode.as_str(),
            ACCESS_MODES,
        );
    }
    match spec.pointer("/resources/requests/storage") {
        None | Some(Value::Null) => {
            errors.push(Error::required(&path.child("resources").key("storage"), ""))
        }
        Some(amount) => match quantity_amount(amount) {
            Some(bytes) if bytes > 0.0 => {}
            _ => errors.push(Error::invalid(
                &path.child("resources.requests").key("storage"),
                amount.clone(),
                "must be greater than zero",
            )),
        },
    }
    one_of(
        errors,
        &path.child("volumeMode"),
        text(spec, "volumeMode"),
        &["Block", "Filesystem"],
    );
}

pub(super) fn horizontal_pod_autoscaler(errors: &mut Vec<Error>, object: &Value) {
    let spec = object.get("spec").unwrap_or(&Value::Null);
    let path = Path::new("spec");
    let min = int(spec, "minReplicas");
    if let Some(min) = min.filter(|min| *min < 1) {
        errors.push(Error::invalid(
            &path.child("minReplicas"),
            min,
            "must be greater than or equal to 1",
        ));
    }
    match int(spec, "maxReplicas") {
        None => errors.push(Error::required(&path.child("maxReplicas"), "")),
        Some(max) if max < min.unwrap_or(1) => {
            errors.push(Error::invalid(
                &path.child("maxReplicas"),
                max,
                "must be greater than or equal to `minReplicas`",
            ));
        }
        Some(_) => {}
    }
    let target = spec.get("scaleTargetRef").unwrap_or(&Value::Null);
    for field in ["kind", "name"] {
        if text(target, field).is_none_or(str::is_empty) {
            errors.push(Error::required(
                &path.child("scaleTargetRef").child(field),
                "",
            ));
        }
    }
}

pub(super) fn pod_disruption_budget(errors: &mut Vec<Error>, object: &Value) {
    let spec = object.get("spec").unwrap_or(&Value::Null);
    let path = Path::new("spec");
    if present(spec, "minAvailable") && present(spec, "maxUnavailable") {
        errors.push(Error::invalid(
            &path,
            spec.clone(),
            "minAvailable and maxUnavailable cannot be both set",
        ));
    }
    for field in ["minAvailable", "maxUnavailable"] {
        match spec.get(field) {
            Some(Value::Number(number)) => {
                non_negative(errors, &path.child(field), number.as_i64())
            }
            Some(Value::String(percent)) => {
                let valid = percent
                    .strip_suffix('%')
                    .and_then(|n| n.parse::<u32>().ok())
                    .is_some_and(|n| n <= 100);
                if !valid {
                    errors.push(Error::invalid(
                        &path.child(field),
                        percent.as_str(),
                        "must be an integer or a percentage between 0% and 100%",
                    ));
                }
            }
            _ => {}
        }
    }
    one_of(
        errors,
        &path.child("unhealthyPodEvictionPolicy"),
        text(spec, "unhealthyPodEvictionPolicy"),
        &["IfHealthyBudget", "AlwaysAllow"],
    );
}

pub(super) fn role(errors: &mut Vec<Error>, object: &Value) {
    for (index, rule) in list(object, "rules").iter().enumerate() {
        let at = Path::new("rules").index(index);
        if list(rule, "verbs").is_empty() {
            errors.push(Error::required(
                &at.child("verbs"),
                "verbs must contain at least one value",
            ));
        }
        let has_urls = !list(rule, "nonResourceURLs").is_empty();
        if !has_urls && list(rule, "apiGroups").is_empty() {
            errors.push(Error::required(
                &at.child("apiGroups"),
                "resource rules must supply at least one api group",
            ));
        }
        if !has_urls && list(rule, "resources").is_empty() {
            errors.push(Error::required(
                &at.child("resources"),
                "resource rules must supply at least one resource",
            ));
        }
    }
}

pub(super) fn binding(errors: &mut Vec<Error>, object: &Value, cluster_scoped: bool) {
    let role_ref = object.get("roleRef").unwrap_or(&Value::Null);
    let path = Path::new("roleRef");
    let allowed: &[&str] = if cluster_scoped {
        &["ClusterRole"]
    } else {
        &["Role", "ClusterRole"]
    };
    match text(role_ref, "kind") {
        None | Some("") => errors.push(Error::required(&path.child("kind"), "")),
        kind => one_of(errors, &path.child("kind"), kind, allowed),
    }
    if text(role_ref, "name").is_none_or(str::is_empty) {
        errors.push(Error::required(&path.child("name"), ""));
    }
    one_of(
        errors,
        &path.child("apiGroup"),
        text(role_ref, "apiGroup"),
        &["rbac.authorization.k8s.io"],
    );
    for (index, subject) in list(object, "subjects").iter().enumerate() {
        let at = Path::new("subjects").index(index);
        let kind = text_or_empty(subject, "kind");
        one_of(
            errors,
            &at.child("kind"),
            Some(kind),
            &["ServiceAccount", "User", "Group"],
        );
        if text(subject, "name").is_none_or(str::is_empty) {
            errors.push(Error::required(&at.child("name"), ""));
        }
        if kind == "ServiceAccount"
            && cluster_scoped
            && text(subject, "namespace").is_none_or(str::is_empty)
        {
            errors.push(Error::required(&at.child("namespace"), ""));
        }
    }
}

/// The highest priority a user-defined PriorityClass may have.
pub const HIGHEST_USER_PRIORITY: i64 = 1_000_000_000;

pub(super) fn priority_class(errors: &mut Vec<Error>, object: &Value) {
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match int(object, "value") {
        None => errors.push(Error::required(&Path::new("value"), "")),
        Some(value) if value > HIGHEST_USER_PRIORITY && !name.starts_with("system-") => {
            errors.push(Error::forbidden(
                &Path::new("value"),
                "maximum allowed value of a user defined priority is 1000000000",
            ));
        }
        Some(_) => {}
    }
    one_of(
        errors,
        &Path::new("preemptionPolicy"),
        text(object, "preemptionPolicy"),
        &["PreemptLowerPriority", "Never"],
    );
}
