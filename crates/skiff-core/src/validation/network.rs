//! Service, Ingress and NetworkPolicy validation: types, ports (names, numbers, protocols,
//! uniqueness, the NodePort range), cluster IPs, traffic policies, session affinity; Ingress
//! rules (hosts, path types, absolute paths, backends); NetworkPolicy ports and peers.

use std::collections::BTreeSet;

use serde_json::Value;

use super::values::{
    cidr, int, ip_address, list, one_of, port_number, port_or_name, present, text, text_or_empty,
};
use crate::field::{Error, Path};
use crate::names;

/// The NodePort range Skiff allocates from (Kubernetes' default).
pub const NODE_PORT_RANGE: std::ops::RangeInclusive<i64> = 30000..=32767;

const PROTOCOLS: &[&str] = &["TCP", "UDP", "SCTP"];

pub(super) fn service(errors: &mut Vec<Error>, object: &Value) {
    let spec = object.get("spec").unwrap_or(&Value::Null);
    let path = Path::new("spec");
    let service_type = text(spec, "type").unwrap_or("ClusterIP");
    one_of(
        errors,
        &path.child("type"),
        Some(service_type),
        &["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"],
    );
    let cluster_ip = text_or_empty(spec, "clusterIP");
    let headless = cluster_ip == "None";
    if service_type == "ExternalName" {
        let external_name = text_or_empty(spec, "externalName");
        if external_name.is_empty() {
            errors.push(Error::required(&path.child("externalName"), ""));
        } else {
            for reason in names::dns1123_subdomain(external_name.trim_end_matches('.')) {
                errors.push(Error::invalid(
                    &path.child("externalName"),
                    external_name,
                    &reason,
                ));
            }
        }
    } else if !cluster_ip.is_empty() && !headless {
        ip_address(errors, &path.child("clusterIP"), cluster_ip);
    }
    if headless && (service_type == "NodePort" || service_type == "LoadBalancer") {
        errors.push(Error::invalid(
            &path.child("clusterIP"),
            cluster_ip,
            &format!("may not be set to 'None' for {service_type} services"),
        ));
    }
    let ports = list(spec, "ports");
    if ports.is_empty() && service_type != "ExternalName" && !headless {
        errors.push(Error::required(&path.child("ports"), ""));
    }
    service_ports(errors, &path.child("ports"), ports, service_type);
    one_of(
        errors,
        &path.child("sessionAffinity"),
        text(spec, "sessionAffinity"),
        &["None", "ClientIP"],
    );
    if let Some(timeout) = spec
        .pointer("/sessionAffinityConfig/clientIP/timeoutSeconds")
        .and_then(Value::as_i64)
        && !(1..=86400).contains(&timeout)
    {
        errors.push(Error::invalid(
            &path.child("sessionAffinityConfig.clientIP.timeoutSeconds"),
            timeout,
            "must be greater than 0 and less than 86400",
        ));
    }
    let external_policy = text(spec, "externalTrafficPolicy").filter(|policy| !policy.is_empty());
    one_of(
        errors,
        &path.child("externalTrafficPolicy"),
        external_policy,
        &["Cluster", "Local"],
    );
    if external_policy.is_some() && service_type != "NodePort" && service_type != "LoadBalancer" {
        errors.push(Error::invalid(
            &path.child("externalTrafficPolicy"),
            external_policy.unwrap_or_default(),
            "may only be set when `type` is 'NodePort' or 'LoadBalancer'",
        ));
    }
    one_of(
        errors,
        &path.child("internalTrafficPolicy"),
        text(spec, "internalTrafficPolicy"),
        &["Cluster", "Local"],
    );
    one_of(
        errors,
        &path.child("ipFamilyPolicy"),
        text(spec, "ipFamilyPolicy"),
        &["SingleStack", "PreferDualStack", "RequireDualStack"],
    );
    for (index, family) in list(spec, "ipFamilies").iter().enumerate() {
        one_of(
            errors,
            &path.child("ipFamilies").index(index),
            family.as_str(),
            &["IPv4", "IPv6"],
        );
    }
    for (index, address) in list(spec, "externalIPs").iter().enumerate() {
        ip_address(
            errors,
            &path.child("externalIPs").index(index),
            address.as_str().unwrap_or_default(),
        );
    }
    for (index, range) in list(spec, "loadBalancerSourceRanges").iter().enumerate() {
        cidr(
            errors,
            &path.child("loadBalancerSourceRanges").index(index),
            range.as_str().unwrap_or_default(),
        );
    }
    let selector = names::string_map(spec.get("selector"));
    errors.extend(names::validate_labels(&selector, &path.child("selector")));
}

fn service_ports(errors: &mut Vec<Error>, path: &Path, ports: &[Value], service_type: &str) {
    let mut port_names = BTreeSet::new();
    let mut port_protocols = BTreeSet::new();
    let mut node_ports = BTreeSet::new();
    for (index, port) in ports.iter().enumerate() {
        let at = path.index(index);
        let name = text_or_empty(port, "name");
        if name.is_empty() {
            if ports.len() > 1 {
                errors.push(Error::required(&at.child("name"), ""));
            }
        } else {
            for reason in names::dns1123_label(name) {
                errors.push(Error::invalid(&at.child("name"), name, &reason));
            }
            if !port_names.insert(name.to_string()) {
                errors.push(Error::duplicate(&at.child("name"), name));
            }
        }
        let protocol = text(port, "protocol").unwrap_or("TCP");
        one_of(errors, &at.child("protocol"), Some(protocol), PROTOCOLS);
        match int(port, "port") {
            None => errors.push(Error::required(&at.child("port"), "")),
            Some(number) => {
                port_number(errors, &at.child("port"), number);
                if !port_protocols.insert((number, protocol.to_string())) {
                    errors.push(Error::duplicate(&at, format!("{number}/{protocol}")));
                }
            }
        }
        if let Some(target) = port.get("targetPort").filter(|value| !value.is_null()) {
            port_or_name(errors, &at.child("targetPort"), target);
        }
        if let Some(node_port) = int(port, "nodePort").filter(|port| *port != 0) {
            if service_type != "NodePort" && service_type != "LoadBalancer" {
                errors.push(Error::forbidden(
                    &at.child("nodePort"),
                    &format!("may not be used when `type` is '{service_type}'"),
                ));
            } else if !NODE_PORT_RANGE.contains(&node_port) {
                errors.push(Error::invalid(&at.child("nodePort"), node_port, "provided port is not in the valid range. The range of valid ports is 30000-32767"));
            } else if !node_ports.insert((node_port, protocol.to_string())) {
                errors.push(Error::duplicate(&at.child("nodePort"), node_port));
            }
        }
    }
}

pub(super) fn ingress(errors: &mut Vec<Error>, object: &Value) {
    let spec = object.get("spec").unwrap_or(&Value::Null);
    let path = Path::new("spec");
    let rules = list(spec, "rules");
    let default_backend = spec.get("defaultBackend").filter(|value| !value.is_null());
    if rules.is_empty() && default_backend.is_none() {
        errors.push(Error::invalid(
            &path,
            spec.clone(),
            "either `defaultBackend` or `rules` must be specified",
        ));
    }
    if let Some(backend) = default_backend {
        ingress_backend(errors, &path.child("defaultBackend"), backend);
    }
    if let Some(class) = text(spec, "ingressClassName") {
        for reason in names::dns1123_subdomain(class) {
            errors.push(Error::invalid(
                &path.child("ingressClassName"),
                class,
                &reason,
            ));
        }
    }
    for (index, rule) in rules.iter().enumerate() {
        let at = path.child("rules").index(index);
        if let Some(host) = text(rule, "host").filter(|host| !host.is_empty()) {
            ingress_host(errors, &at.child("host"), host);
        }
        let Some(http) = rule.get("http").filter(|value| !value.is_null()) else {
            continue;
        };
        let paths = list(http, "paths");
        if paths.is_empty() {
            errors.push(Error::required(&at.child("http.paths"), ""));
        }
        for (path_index, http_path) in paths.iter().enumerate() {
            let path_at = at.child("http.paths").index(path_index);
            ingress_path(errors, &path_at, http_path);
            match http_path.get("backend").filter(|value| !value.is_null()) {
                Some(backend) => ingress_backend(errors, &path_at.child("backend"), backend),
                None => errors.push(Error::required(&path_at.child("backend"), "")),
            }
        }
    }
    for (index, tls) in list(spec, "tls").iter().enumerate() {
        for (host_index, host) in list(tls, "hosts").iter().enumerate() {
            let host_path = path
                .child("tls")
                .index(index)
                .child("hosts")
                .index(host_index);
            ingress_host(errors, &host_path, host.as_str().unwrap_or_default());
        }
    }
}

fn ingress_host(errors: &mut Vec<Error>, path: &Path, host: &str) {
    if host.parse::<std::net::IpAddr>().is_ok() {
        errors.push(Error::invalid(
            path,
            host,
            "must be a DNS name, not an IP address",
        ));
        return;
    }
    let checked = host.strip_prefix("*.").unwrap_or(host);
    for reason in names::dns1123_subdomain(checked) {
        errors.push(Error::invalid(path, host, &reason));
    }
}

fn ingress_path(errors: &mut Vec<Error>, path: &Path, http_path: &Value) {
    let path_type = text(http_path, "pathType");
    let value = text_or_empty(http_path, "path");
    match path_type {
        None | Some("") => errors.push(Error::required(
            &path.child("pathType"),
            "pathType must be specified",
        )),
        Some("Exact" | "Prefix") => {
            if !value.starts_with('/') {
                errors.push(Error::invalid(
                    &path.child("path"),
                    value,
                    "must be an absolute path",
                ));
            }
            for sequence in ["//", "/./", "/../", "%2f", "%2F"] {
                if value.contains(sequence) {
                    errors.push(Error::invalid(
                        &path.child("path"),
                        value,
                        &format!("must not contain '{sequence}'"),
                    ));
                }
            }
            if value.ends_with("/..") || value.ends_with("/.") {
                errors.push(Error::invalid(
                    &path.child("path"),
                    value,
                    "must not end with '/..' or '/.'",
                ));
            }
        }
        Some("ImplementationSpecific") => {
            if !value.is_empty() && !value.starts_with('/') {
                errors.push(Error::invalid(
                    &path.child("path"),
                    value,
                    "must be an absolute path",
                ));
            }
        }
        Some(other) => errors.push(Error::not_supported(
            &path.child("pathType"),
            other,
            &["Exact", "ImplementationSpecific", "Prefix"],
        )),
    }
}

fn ingress_backend(errors: &mut Vec<Error>, path: &Path, backend: &Value) {
    let service = backend.get("service").filter(|value| !value.is_null());
    let resource = backend.get("resource").filter(|value| !value.is_null());
    match (service, resource) {
        (Some(_), Some(_)) => errors.push(Error::invalid(
            path,
            "",
            "cannot set both resource and service backends",
        )),
        (None, None) => errors.push(Error::invalid(
            path,
            "",
            "resource or service backend is required",
        )),
        (None, Some(resource)) => {
            for field in ["kind", "name"] {
                if text(resource, field).is_none_or(str::is_empty) {
                    errors.push(Error::required(&path.child("resource").child(field), ""));
                }
            }
        }
        (Some(service), None) => {
            let service_path = path.child("service");
            let name = text_or_empty(service, "name");
            if name.is_empty() {
                errors.push(Error::required(&service_path.child("name"), ""));
            } else {
                for reason in names::dns1035_label(name) {
                    errors.push(Error::invalid(&service_path.child("name"), name, &reason));
                }
            }
            let port = service.get("port").unwrap_or(&Value::Null);
            let port_path = service_path.child("port");
            let port_name = text(port, "name").filter(|name| !name.is_empty());
            let number = int(port, "number").filter(|number| *number != 0);
            match (port_name, number) {
                (Some(_), Some(_)) => errors.push(Error::invalid(
                    &port_path,
                    "",
                    "cannot set both port name & port number",
                )),
                (None, None) => errors.push(Error::invalid(
                    &port_path,
                    "",
                    "port name or number is required",
                )),
                (Some(port_name), None) => {
                    for reason in super::values::iana_service_name(port_name) {
                        errors.push(Error::invalid(&port_path.child("name"), port_name, &reason));
                    }
                }
                (None, Some(number)) => port_number(errors, &port_path.child("number"), number),
            }
        }
    }
}

pub(super) fn network_policy(errors: &mut Vec<Error>, object: &Value) {
    let spec = object.get("spec").unwrap_or(&Value::Null);
    let path = Path::new("spec");
    if !present(spec, "podSelector") {
        errors.push(Error::required(&path.child("podSelector"), ""));
    }
    for (index, policy_type) in list(spec, "policyTypes").iter().enumerate() {
        one_of(
            errors,
            &path.child("policyTypes").index(index),
            policy_type.as_str(),
            &["Ingress", "Egress"],
        );
    }
    for (direction, peers) in [("ingress", "from"), ("egress", "to")] {
        for (index, rule) in list(spec, direction).iter().enumerate() {
            let at = path.child(direction).index(index);
            for (port_index, port) in list(rule, "ports").iter().enumerate() {
                let port_path = at.child("ports").index(port_index);
                one_of(
                    errors,
                    &port_path.child("protocol"),
                    text(port, "protocol"),
                    PROTOCOLS,
                );
                if let Some(number) = port.get("port").filter(|value| !value.is_null()) {
                    port_or_name(errors, &port_path.child("port"), number);
                }
            }
            for (peer_index, peer) in list(rule, peers).iter().enumerate() {
                if let Some(block) = peer.get("ipBlock").filter(|value| !value.is_null()) {
                    let block_path = at.child(peers).index(peer_index).child("ipBlock");
                    cidr(
                        errors,
                        &block_path.child("cidr"),
                        text_or_empty(block, "cidr"),
                    );
                    for (except_index, except) in list(block, "except").iter().enumerate() {
                        cidr(
                            errors,
                            &block_path.child("except").index(except_index),
                            except.as_str().unwrap_or_default(),
                        );
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
