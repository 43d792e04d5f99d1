//! Pod spec validation (pods and the templates of every workload): containers, init containers,
//! volumes, restart and DNS policy, tolerations, node selector, grace periods, and the pod
//! update rule (only images, activeDeadlineSeconds and added tolerations may change).

use std::collections::BTreeSet;

use serde_json::Value;

use super::container::{ContainerKind, container};
use super::values::{int, list, non_negative, one_of, present, text, text_or_empty};
use crate::field::{Error, Path};
use crate::names;

const VOLUME_SOURCES: &[&str] = &[
    "hostPath",
    "emptyDir",
    "secret",
    "configMap",
    "persistentVolumeClaim",
    "downwardAPI",
    "projected",
    "nfs",
    "iscsi",
    "csi",
    "ephemeral",
    "image",
    "gitRepo",
    "cephfs",
    "rbd",
    "fc",
    "azureFile",
    "azureDisk",
    "cinder",
    "flexVolume",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "glusterfs",
    "vsphereVolume",
    "quobyte",
    "portworxVolume",
    "scaleIO",
    "storageos",
    "flocker",
    "photonPersistentDisk",
];

/// Validate a pod spec at `path` (`spec` or `spec.template.spec`).
pub(super) fn pod_spec(errors: &mut Vec<Error>, path: &Path, spec: &Value) {
    pod_spec_with_claims(errors, path, spec, &[]);
}

/// Like [`pod_spec`], with volume names a StatefulSet's `volumeClaimTemplates` provide (its
/// pods get those volumes when the controller creates them).
pub(super) fn pod_spec_with_claims(
    errors: &mut Vec<Error>,
    path: &Path,
    spec: &Value,
    claims: &[String],
) {
    let mut volume_names = volumes(errors, &path.child("volumes"), list(spec, "volumes"));
    volume_names.extend(claims.iter().cloned());
    let host_network = spec.get("hostNetwork").and_then(Value::as_bool) == Some(true);
    let containers = list(spec, "containers");
    if containers.is_empty() {
        errors.push(Error::required(&path.child("containers"), ""));
    }
    let mut container_names = BTreeSet::new();
    for (list_name, kind) in [
        ("initContainers", ContainerKind::Init),
        ("containers", ContainerKind::Regular),
    ] {
        for (index, item) in list(spec, list_name).iter().enumerate() {
            let at = path.child(list_name).index(index);
            container(errors, &at, item, kind, &volume_names, host_network);
            let name = text_or_empty(item, "name");
            if !name.is_empty() && !container_names.insert(name.to_string()) {
                errors.push(Error::duplicate(&at.child("name"), name));
            }
        }
    }
    one_of(
        errors,
        &path.child("restartPolicy"),
        text(spec, "restartPolicy"),
        &["Always", "OnFailure", "Never"],
    );
    let dns_policy = text(spec, "dnsPolicy");
    one_of(
        errors,
        &path.child("dnsPolicy"),
        dns_policy,
        &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
    );
    if dns_policy == Some("None") && !present(spec, "dnsConfig") {
        errors.push(Error::required(
            &path.child("dnsConfig"),
            "must provide `dnsConfig` when `dnsPolicy` is None",
        ));
    }
    non_negative(
        errors,
        &path.child("terminationGracePeriodSeconds"),
        int(spec, "terminationGracePeriodSeconds"),
    );
    if let Some(deadline) = int(spec, "activeDeadlineSeconds").filter(|seconds| *seconds < 1) {
        errors.push(Error::invalid(
            &path.child("activeDeadlineSeconds"),
            deadline,
            "must be between 1 and 2147483647, inclusive",
        ));
    }
    for field in ["serviceAccountName", "nodeName", "priorityClassName"] {
        if let Some(value) = text(spec, field).filter(|value| !value.is_empty()) {
            for reason in names::dns1123_subdomain(value) {
                errors.push(Error::invalid(&path.child(field), value, &reason));
            }
        }
    }
    for field in ["hostname", "subdomain"] {
        if let Some(value) = text(spec, field).filter(|value| !value.is_empty()) {
            for reason in names::dns1123_label(value) {
                errors.push(Error::invalid(&path.child(field), value, &reason));
            }
        }
    }
    let selector = names::string_map(spec.get("nodeSelector"));
    errors.extend(names::validate_labels(
        &selector,
        &path.child("nodeSelector"),
    ));
    tolerations(
        errors,
        &path.child("tolerations"),
        list(spec, "tolerations"),
    );
}

fn volumes(errors: &mut Vec<Error>, path: &Path, volumes: &[Value]) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for (index, volume) in volumes.iter().enumerate() {
        let at = path.index(index);
        let name = text_or_empty(volume, "name");
        if name.is_empty() {
            errors.push(Error::required(&at.child("name"), ""));
        } else {
            for reason in names::dns1123_label(name) {
                errors.push(Error::invalid(&at.child("name"), name, &reason));
            }
            if !seen.insert(name.to_string()) {
                errors.push(Error::duplicate(&at.child("name"), name));
            }
        }
        let sources: Vec<&&str> = VOLUME_SOURCES
            .iter()
            .filter(|source| present(volume, source))
            .collect();
        match sources.as_slice() {
            [] => errors.push(Error::required(&at, "must specify a volume type")),
            [_] => {}
            [_, extra, ..] => errors.push(Error::forbidden(
                &at.child(extra),
                "may not specify more than 1 volume type",
            )),
        }
        let required_names = [
            ("secret", "secretName"),
            ("persistentVolumeClaim", "claimName"),
            ("hostPath", "path"),
            ("nfs", "server"),
            ("nfs", "path"),
        ];
        for (source, field) in required_names {
            if let Some(source_value) = volume.get(source).filter(|value| !value.is_null())
                && text(source_value, field).is_none_or(str::is_empty)
            {
                errors.push(Error::required(&at.child(source).child(field), ""));
            }
        }
        for source in ["secret", "configMap", "downwardAPI", "projected"] {
            if let Some(mode) = volume
                .get(source)
                .and_then(|source| int(source, "defaultMode"))
                && !(0..=0o777).contains(&mode)
            {
                errors.push(Error::invalid(
                    &at.child(source).child("defaultMode"),
                    mode,
                    "must be a number between 0 and 0777 (octal), both inclusive",
                ));
            }
        }
        if let Some(host_path) = volume.get("hostPath") {
            one_of(
                errors,
                &at.child("hostPath.type"),
                text(host_path, "type"),
                &[
                    "",
                    "DirectoryOrCreate",
                    "Directory",
                    "FileOrCreate",
                    "File",
                    "Socket",
                    "CharDevice",
                    "BlockDevice",
                ],
            );
        }
    }
    seen
}

fn tolerations(errors: &mut Vec<Error>, path: &Path, tolerations: &[Value]) {
    for (index, toleration) in tolerations.iter().enumerate() {
        let at = path.index(index);
        let key = text_or_empty(toleration, "key");
        let operator = text(toleration, "operator").unwrap_or("Equal");
        if !key.is_empty() {
            for reason in names::qualified_name(key) {
                errors.push(Error::invalid(&at.child("key"), key, &reason));
            }
        } else if operator != "Exists" {
            errors.push(Error::invalid(&at.child("operator"), operator, "operator must be Exists when `key` is empty, which means \"match all values and all keys\""));
        }
        match operator {
            "Equal" | "" => {}
            "Exists" => {
                if text(toleration, "value").is_some_and(|value| !value.is_empty()) {
                    errors.push(Error::invalid(
                        &at.child("operator"),
                        operator,
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            other => errors.push(Error::not_supported(
                &at.child("operator"),
                other,
                &["Equal", "Exists"],
            )),
        }
        let effect = text(toleration, "effect").filter(|effect| !effect.is_empty());
        one_of(
            errors,
            &at.child("effect"),
            effect,
            &["NoSchedule", "PreferNoSchedule", "NoExecute"],
        );
        if present(toleration, "tolerationSeconds") && effect != Some("NoExecute") {
            errors.push(Error::invalid(
                &at.child("effect"),
                effect.unwrap_or_default(),
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
    }
}

/// Require the template's restart policy to be one of `allowed` (controllers restrict it).
pub(super) fn restart_policy(
    errors: &mut Vec<Error>,
    spec_path: &Path,
    spec: &Value,
    allowed: &[&str],
) {
    let policy = text_or_empty(spec, "restartPolicy");
    if !allowed.contains(&policy) {
        errors.push(Error::not_supported(
            &spec_path.child("restartPolicy"),
            policy,
            allowed,
        ));
    }
}

/// The pod update rule: the spec may change only in container images, `activeDeadlineSeconds`
/// (set, or lowered) and tolerations (additions only).
pub(super) fn pod_update(errors: &mut Vec<Error>, new_spec: &Value, old_spec: &Value) {
    let path = Path::new("spec");
    let mut new_masked = new_spec.clone();
    let mut old_masked = old_spec.clone();
    for list_name in ["containers", "initContainers"] {
        let old_items = list(old_spec, list_name);
        if let Some(items) = new_masked.get_mut(list_name).and_then(Value::as_array_mut) {
            for (index, item) in items.iter_mut().enumerate() {
                let old_image = old_items
                    .get(index)
                    .and_then(|old| old.get("image"))
                    .cloned();
                if let (Some(object), Some(image)) = (item.as_object_mut(), old_image) {
                    object.insert("image".into(), image);
                }
            }
        }
    }
    let new_deadline = int(new_spec, "activeDeadlineSeconds");
    let old_deadline = int(old_spec, "activeDeadlineSeconds");
    let deadline_ok = match (old_deadline, new_deadline) {
        (None, _) => true,
        (Some(old), Some(new)) => new <= old,
        (Some(_), None) => false,
    };
    if deadline_ok {
        for masked in [&mut new_masked, &mut old_masked] {
            if let Some(object) = masked.as_object_mut() {
                object.remove("activeDeadlineSeconds");
            }
        }
    }
    let old_tolerations = list(old_spec, "tolerations");
    let new_tolerations = list(new_spec, "tolerations");
    let only_added = old_tolerations
        .iter()
        .all(|old| new_tolerations.contains(old));
    if only_added {
        for masked in [&mut new_masked, &mut old_masked] {
            if let Some(object) = masked.as_object_mut() {
                object.remove("tolerations");
            }
        }
    }
    if new_masked != old_masked {
        errors.push(Error::forbidden(
            &path,
            "pod updates may not change fields other than `spec.containers[*].image`, \
             `spec.initContainers[*].image`, `spec.activeDeadlineSeconds` (only to set or lower it) \
             and `spec.tolerations` (only additions to existing tolerations)",
        ));
    }
}
