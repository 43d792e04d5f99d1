//! Service ClusterIP and NodePort allocation without double allocation.
//!
//! Each allocated address or port is a key (`/skiff/allocations/...`) created in the same
//! transaction as the Service, with a create-if-absent compare: two Services can never commit
//! the same IP, whatever member they were sent to. Choosing is random (retried on a clash);
//! releasing deletes the keys in the transaction that deletes or changes the Service.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use serde_json::{Value, json};
use skiff_core::status;

use crate::api::Api;

pub fn cluster_ip_key(ip: Ipv4Addr) -> String {
    format!("/skiff/allocations/clusterips/{ip}")
}

pub fn node_port_key(port: u16) -> String {
    format!("/skiff/allocations/nodeports/{port}")
}

fn owner(object: &Value) -> Vec<u8> {
    let ns = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    format!("{ns}/{name}").into_bytes()
}

fn invalid(service: &Value, field: &str, value: &str, why: &str) -> status::Error {
    invalid_named(
        service
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or(""),
        field,
        value,
        why,
    )
}

fn invalid_named(name: &str, field: &str, value: &str, why: &str) -> status::Error {
    let err =
        skiff_core::field::Error::invalid(&skiff_core::field::Path::new(field), json!(value), why);
    status::Error::invalid("", "Service", name, &[err])
}

/// Whether an address is inside the service CIDR and usable.
pub fn in_cidr(api: &Api, ip: Ipv4Addr) -> bool {
    let (base, bits) = api.config.service_cidr;
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    };
    let n = u32::from(ip);
    (n & mask) == (u32::from(base) & mask) && n != u32::from(base) && n != (u32::from(base) | !mask)
}

fn random_cluster_ip(api: &Api) -> Ipv4Addr {
    let (base, bits) = api.config.service_cidr;
    let size = 1u32 << (32 - bits);
    // Skip the network address, the kubernetes Service (.1) and cluster DNS (.10).
    loop {
        let offset = rand::random::<u32>() % size;
        if offset > 1 && offset != 10 && offset < size - 1 {
            return Ipv4Addr::from(u32::from(base) + offset);
        }
    }
}

fn needs_node_ports(service: &Value) -> bool {
    matches!(
        service.pointer("/spec/type").and_then(Value::as_str),
        Some("NodePort") | Some("LoadBalancer")
    )
}

/// Fills in the ClusterIP and NodePorts of a Service (keeping those of `old`, on update) and
/// returns the allocation keys this write must create.
pub fn allocate_service(
    api: &Api,
    service: &mut Value,
    old: Option<&Value>,
) -> Result<Vec<(String, Vec<u8>)>, status::Error> {
    let mut keys = Vec::new();
    let kind = service
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    if kind != "ExternalName" {
        let old_ip = old
            .and_then(|o| o.pointer("/spec/clusterIP"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let requested = service
            .pointer("/spec/clusterIP")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let ip = match (requested.or(old_ip.clone()), old_ip.as_deref()) {
            (Some(ip), _) if ip == "None" => Some("None".to_string()),
            (Some(ip), Some(old)) if ip == old => Some(ip),
            (Some(ip), _) => {
                let parsed: Ipv4Addr = ip.parse().map_err(|_| {
                    invalid(
                        service,
                        "spec.clusterIP",
                        &ip,
                        "must be a valid IPv4 address",
                    )
                })?;
                if !in_cidr(api, parsed) {
                    let (base, bits) = api.config.service_cidr;
                    return Err(invalid(
                        service,
                        "spec.clusterIP",
                        &ip,
                        &format!(
                            "provided IP is not in the valid range. The range of valid IPs is {base}/{bits}"
                        ),
                    ));
                }
                keys.push((cluster_ip_key(parsed), owner(service)));
                Some(ip)
            }
            (None, _) => {
                let chosen = random_cluster_ip(api);
                keys.push((cluster_ip_key(chosen), owner(service)));
                Some(chosen.to_string())
            }
        };
        if let (Some(ip), Some(spec)) = (ip, service.get_mut("spec").and_then(Value::as_object_mut))
        {
            spec.insert("clusterIP".into(), Value::String(ip.clone()));
            spec.insert("clusterIPs".into(), json!([ip]));
        }
    }
    if needs_node_ports(service) {
        let (lo, hi) = api.config.node_port_range;
        let old_ports: Vec<(i64, i64)> = old
            .and_then(|o| o.pointer("/spec/ports"))
            .and_then(Value::as_array)
            .map(|ps| {
                ps.iter()
                    .filter_map(|p| Some((p.get("port")?.as_i64()?, p.get("nodePort")?.as_i64()?)))
                    .collect()
            })
            .unwrap_or_default();
        let mut used: BTreeSet<i64> = BTreeSet::new();
        let name = service
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if let Some(ports) = service
            .pointer_mut("/spec/ports")
            .and_then(Value::as_array_mut)
        {
            for (i, port) in ports.iter_mut().enumerate() {
                let number = port.get("port").and_then(Value::as_i64).unwrap_or(0);
                let requested = port
                    .get("nodePort")
                    .and_then(Value::as_i64)
                    .filter(|p| *p != 0);
                let kept = old_ports
                    .iter()
                    .find(|(p, _)| *p == number)
                    .map(|(_, n)| *n);
                let node_port = match requested.or(kept) {
                    Some(n) => {
                        if n < i64::from(lo) || n > i64::from(hi) {
                            return Err(invalid_named(
                                &name,
                                &format!("spec.ports[{i}].nodePort"),
                                &n.to_string(),
                                &format!(
                                    "provided port is not in the valid range. The range of valid ports is {lo}-{hi}"
                                ),
                            ));
                        }
                        if !old_ports.iter().any(|(_, o)| *o == n) {
                            keys.push((node_port_key(n as u16), b"nodeport".to_vec()));
                        }
                        n
                    }
                    None => loop {
                        let n = i64::from(lo) + i64::from(rand::random::<u16>() % (hi - lo + 1));
                        if !used.contains(&n) && !old_ports.iter().any(|(_, o)| *o == n) {
                            keys.push((node_port_key(n as u16), b"nodeport".to_vec()));
                            break n;
                        }
                    },
                };
                if !used.insert(node_port) {
                    return Err(invalid_named(
                        &name,
                        &format!("spec.ports[{i}].nodePort"),
                        &node_port.to_string(),
                        "duplicate nodePort",
                    ));
                }
                port["nodePort"] = json!(node_port);
            }
        }
    } else if let Some(ports) = service
        .pointer_mut("/spec/ports")
        .and_then(Value::as_array_mut)
    {
        for port in ports {
            if let Some(p) = port.as_object_mut() {
                p.remove("nodePort");
            }
        }
    }
    Ok(keys)
}

/// Allocation keys a Service holds (released when it is deleted).
pub fn held_keys(service: &Value) -> Vec<String> {
    let mut keys = Vec::new();
    if let Some(ip) = service
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<Ipv4Addr>().ok())
    {
        keys.push(cluster_ip_key(ip));
    }
    if let Some(ports) = service.pointer("/spec/ports").and_then(Value::as_array) {
        for p in ports {
            if let Some(n) = p.get("nodePort").and_then(Value::as_u64) {
                keys.push(node_port_key(n as u16));
            }
        }
    }
    keys
}

/// Keys `old` held that `new` no longer does.
pub fn released_keys(old: &Value, new: &Value) -> Vec<String> {
    let now: BTreeSet<String> = held_keys(new).into_iter().collect();
    held_keys(old)
        .into_iter()
        .filter(|k| !now.contains(k))
        .collect()
}
