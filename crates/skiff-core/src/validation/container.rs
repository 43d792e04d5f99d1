//! Container validation: name, image, pull policy, ports, environment, volume mounts, probes,
//! lifecycle handlers and resources (requests never above limits).

use std::collections::BTreeSet;

use serde_json::Value;

use super::values::{
    iana_service_name, int, list, non_negative, one_of, port_number, port_or_name, positive,
    present, quantity, quantity_amount, text, text_or_empty,
};
use crate::field::{Error, Path};
use crate::names;

/// Which list a container is in: some rules differ for init containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ContainerKind {
    Init,
    Regular,
}

/// Validate one container. `volumes` are the pod's volume names; `host_network` the pod's.
pub(super) fn container(
    errors: &mut Vec<Error>,
    path: &Path,
    container: &Value,
    kind: ContainerKind,
    volumes: &BTreeSet<String>,
    host_network: bool,
) {
    let name = text_or_empty(container, "name");
    if name.is_empty() {
        errors.push(Error::required(&path.child("name"), ""));
    } else {
        for reason in names::dns1123_label(name) {
            errors.push(Error::invalid(&path.child("name"), name, &reason));
        }
    }
    if text(container, "image").is_none_or(|image| image.trim().is_empty()) {
        errors.push(Error::required(&path.child("image"), ""));
    }
    one_of(
        errors,
        &path.child("imagePullPolicy"),
        text(container, "imagePullPolicy"),
        &["Always", "IfNotPresent", "Never"],
    );
    one_of(
        errors,
        &path.child("terminationMessagePolicy"),
        text(container, "terminationMessagePolicy"),
        &["File", "FallbackToLogsOnError"],
    );
    match kind {
        ContainerKind::Init => one_of(
            errors,
            &path.child("restartPolicy"),
            text(container, "restartPolicy"),
            &["Always"],
        ),
        ContainerKind::Regular => {
            if present(container, "restartPolicy") {
                errors.push(Error::forbidden(
                    &path.child("restartPolicy"),
                    "may not be set for non-init containers",
                ));
            }
        }
    }
    ports(
        errors,
        &path.child("ports"),
        list(container, "ports"),
        host_network,
    );
    env(errors, &path.child("env"), list(container, "env"));
    mounts(
        errors,
        &path.child("volumeMounts"),
        list(container, "volumeMounts"),
        volumes,
    );
    let sidecar = text(container, "restartPolicy") == Some("Always");
    for probe_name in ["livenessProbe", "readinessProbe", "startupProbe"] {
        let Some(probe_value) = container.get(probe_name).filter(|value| !value.is_null()) else {
            continue;
        };
        if kind == ContainerKind::Init && !sidecar {
            errors.push(Error::forbidden(
                &path.child(probe_name),
                "may not be set for init containers without restartPolicy=Always",
            ));
            continue;
        }
        probe(
            errors,
            &path.child(probe_name),
            probe_value,
            probe_name != "readinessProbe",
        );
    }
    if let Some(lifecycle) = container.get("lifecycle") {
        for hook in ["postStart", "preStop"] {
            if let Some(handler_value) = lifecycle.get(hook).filter(|value| !value.is_null()) {
                handler(errors, &path.child("lifecycle").child(hook), handler_value);
            }
        }
    }
    if let Some(resources) = container.get("resources") {
        self::resources(errors, &path.child("resources"), resources);
    }
}

fn ports(errors: &mut Vec<Error>, path: &Path, ports: &[Value], host_network: bool) {
    let mut port_names = BTreeSet::new();
    for (index, port) in ports.iter().enumerate() {
        let at = path.index(index);
        if let Some(port_name) = text(port, "name").filter(|name| !name.is_empty()) {
            for reason in iana_service_name(port_name) {
                errors.push(Error::invalid(&at.child("name"), port_name, &reason));
            }
            if !port_names.insert(port_name.to_string()) {
                errors.push(Error::duplicate(&at.child("name"), port_name));
            }
        }
        match int(port, "containerPort") {
            None => errors.push(Error::required(&at.child("containerPort"), "")),
            Some(number) => port_number(errors, &at.child("containerPort"), number),
        }
        if let Some(host_port) = int(port, "hostPort").filter(|port| *port != 0) {
            port_number(errors, &at.child("hostPort"), host_port);
            if host_network && Some(host_port) != int(port, "containerPort") {
                errors.push(Error::invalid(
                    &at.child("hostPort"),
                    host_port,
                    "must match `containerPort` when `hostNetwork` is true",
                ));
            }
        }
        one_of(
            errors,
            &at.child("protocol"),
            text(port, "protocol"),
            &["TCP", "UDP", "SCTP"],
        );
    }
}

fn env(errors: &mut Vec<Error>, path: &Path, variables: &[Value]) {
    for (index, variable) in variables.iter().enumerate() {
        let at = path.index(index);
        let name = text_or_empty(variable, "name");
        if name.is_empty() {
            errors.push(Error::required(&at.child("name"), ""));
        } else if name.contains('=') || !name.bytes().all(|byte| (32..127).contains(&byte)) {
            errors.push(Error::invalid(&at.child("name"), name, "a valid environment variable name must consist only of printable ASCII characters other than '='"));
        }
        if let Some(source) = variable.get("valueFrom").filter(|value| !value.is_null()) {
            if text(variable, "value").is_some_and(|value| !value.is_empty()) {
                errors.push(Error::invalid(
                    &at.child("valueFrom"),
                    "",
                    "may not be specified when `value` is not empty",
                ));
            }
            let n_sources = [
                "fieldRef",
                "resourceFieldRef",
                "configMapKeyRef",
                "secretKeyRef",
            ]
            .iter()
            .filter(|key| present(source, key))
            .count();
            if n_sources != 1 {
                errors.push(Error::invalid(&at.child("valueFrom"), "", "must specify exactly one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"));
            }
            for reference in ["configMapKeyRef", "secretKeyRef"] {
                if let Some(key_ref) = source.get(reference).filter(|value| !value.is_null())
                    && text(key_ref, "key").is_none_or(str::is_empty)
                {
                    errors.push(Error::required(
                        &at.child("valueFrom").child(reference).child("key"),
                        "",
                    ));
                }
            }
            if let Some(field_ref) = source.get("fieldRef").filter(|value| !value.is_null())
                && text(field_ref, "fieldPath").is_none_or(str::is_empty)
            {
                errors.push(Error::required(
                    &at.child("valueFrom.fieldRef.fieldPath"),
                    "",
                ));
            }
        }
    }
}

fn mounts(errors: &mut Vec<Error>, path: &Path, mounts: &[Value], volumes: &BTreeSet<String>) {
    let mut mount_paths = BTreeSet::new();
    for (index, mount) in mounts.iter().enumerate() {
        let at = path.index(index);
        let name = text_or_empty(mount, "name");
        if name.is_empty() {
            errors.push(Error::required(&at.child("name"), ""));
        } else if !volumes.contains(name) {
            errors.push(Error::not_found(&at.child("name"), name));
        }
        let mount_path = text_or_empty(mount, "mountPath");
        if mount_path.is_empty() {
            errors.push(Error::required(&at.child("mountPath"), ""));
        } else if !mount_paths.insert(mount_path.to_string()) {
            errors.push(Error::invalid(
                &at.child("mountPath"),
                mount_path,
                "must be unique",
            ));
        }
        if text(mount, "subPath")
            .is_some_and(|sub| sub.starts_with('/') || sub.split('/').any(|part| part == ".."))
        {
            errors.push(Error::invalid(
                &at.child("subPath"),
                text_or_empty(mount, "subPath"),
                "must be a relative path without '..'",
            ));
        }
    }
}

fn handler(errors: &mut Vec<Error>, path: &Path, handler: &Value) {
    let kinds: Vec<&str> = ["exec", "httpGet", "tcpSocket", "grpc", "sleep"]
        .into_iter()
        .filter(|kind| present(handler, kind))
        .collect();
    match kinds.as_slice() {
        [] => errors.push(Error::required(path, "must specify a handler type")),
        [_] => {}
        [_, extra, ..] => errors.push(Error::forbidden(
            &path.child(extra),
            "may not specify more than 1 handler type",
        )),
    }
    if let Some(http_get) = handler.get("httpGet").filter(|value| !value.is_null()) {
        match http_get.get("port") {
            None | Some(Value::Null) => {
                errors.push(Error::required(&path.child("httpGet.port"), ""))
            }
            Some(port) => port_or_name(errors, &path.child("httpGet.port"), port),
        }
        one_of(
            errors,
            &path.child("httpGet.scheme"),
            text(http_get, "scheme"),
            &["HTTP", "HTTPS"],
        );
    }
    if let Some(tcp) = handler.get("tcpSocket").filter(|value| !value.is_null()) {
        match tcp.get("port") {
            None | Some(Value::Null) => {
                errors.push(Error::required(&path.child("tcpSocket.port"), ""))
            }
            Some(port) => port_or_name(errors, &path.child("tcpSocket.port"), port),
        }
    }
    if let Some(exec) = handler.get("exec").filter(|value| !value.is_null())
        && list(exec, "command").is_empty()
    {
        errors.push(Error::required(&path.child("exec.command"), ""));
    }
    if let Some(grpc) = handler.get("grpc").filter(|value| !value.is_null()) {
        match int(grpc, "port") {
            None => errors.push(Error::required(&path.child("grpc.port"), "")),
            Some(port) => port_number(errors, &path.child("grpc.port"), port),
        }
    }
}

fn probe(errors: &mut Vec<Error>, path: &Path, probe: &Value, success_must_be_one: bool) {
    handler(errors, path, probe);
    for field in [
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ] {
        non_negative(errors, &path.child(field), int(probe, field));
    }
    positive(
        errors,
        &path.child("terminationGracePeriodSeconds"),
        int(probe, "terminationGracePeriodSeconds"),
    );
    if success_must_be_one
        && let Some(threshold) = int(probe, "successThreshold").filter(|threshold| *threshold != 1)
    {
        errors.push(Error::invalid(
            &path.child("successThreshold"),
            threshold,
            "must be 1",
        ));
    }
}

fn resources(errors: &mut Vec<Error>, path: &Path, resources: &Value) {
    for section in ["limits", "requests"] {
        let Some(map) = resources.get(section).and_then(Value::as_object) else {
            continue;
        };
        for (resource, amount) in map {
            let at = path.child(section).key(resource);
            if !resource.contains('/') && !is_standard_resource(resource) {
                errors.push(Error::not_supported(
                    &at,
                    resource.as_str(),
                    &["cpu", "memory", "ephemeral-storage", "hugepages-<size>"],
                ));
                continue;
            }
            quantity(errors, &at, amount);
        }
    }
    let (Some(limits), Some(requests)) = (
        resources.get("limits").and_then(Value::as_object),
        resources.get("requests").and_then(Value::as_object),
    ) else {
        return;
    };
    for (resource, requested) in requests {
        let Some(limit) = limits.get(resource) else {
            continue;
        };
        if let (Some(request_amount), Some(limit_amount)) =
            (quantity_amount(requested), quantity_amount(limit))
            && request_amount > limit_amount
        {
            let limit_text = limit
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| limit.to_string());
            errors.push(Error::invalid(
                &path.child("requests").key(resource),
                requested.clone(),
                &format!("must be less than or equal to {resource} limit of {limit_text}"),
            ));
        }
    }
}

fn is_standard_resource(resource: &str) -> bool {
    matches!(resource, "cpu" | "memory" | "ephemeral-storage" | "storage")
        || resource.starts_with("hugepages-")
}
