//! `status.loadBalancer.ingress` of the Ingresses this node serves: the node's address is added
//! when missing (other nodes' addresses are kept). Pure: returns the merge patch to send, if any.

use std::net::IpAddr;

use k8s_openapi::api::networking::v1::Ingress;
use serde_json::{Value, json};

/// The status merge patch that adds `address`, or `None` when it is already there.
pub fn status_patch(ingress: &Ingress, address: IpAddr) -> Option<Value> {
    let current: Vec<String> = ingress
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|list| list.iter().filter_map(|i| i.ip.clone()).collect())
        .unwrap_or_default();
    let address = address.to_string();
    if current.contains(&address) {
        return None;
    }
    let mut ips = current;
    ips.push(address);
    ips.sort();
    let entries: Vec<Value> = ips.into_iter().map(|ip| json!({"ip": ip})).collect();
    Some(json!({"status": {"loadBalancer": {"ingress": entries}}}))
}

#[cfg(test)]
mod tests;
