//! The proxy's view of the cluster: Services and EndpointSlices reduced to what the data path
//! needs, one [`ServicePort`] per (Service, port). Pure; no I/O.
//!
//! Kubernetes semantics kept here: only slices labelled `kubernetes.io/service-name` with the
//! Service's name in its namespace count; slice ports match Service ports by name; an endpoint
//! whose `ready` condition is unset counts as ready; when a Service has no ready endpoint at all,
//! endpoints that are `serving` and `terminating` are used instead (as kube-proxy does), so a
//! rolling update never leaves a window with nothing to send to. Headless (`clusterIP: None`) and
//! `ExternalName` Services get no virtual IP. Only IPv4 is proxied (`table ip skiff`).

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Default `sessionAffinityConfig.clientIP.timeoutSeconds` (3 hours).
pub const DEFAULT_AFFINITY_TIMEOUT_SECONDS: u32 = 10_800;

/// A transport protocol the proxy programs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// Parses a Kubernetes protocol name (`TCP` when unset).
    pub fn parse(value: Option<&str>) -> Option<Protocol> {
        match value.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// The nftables name (`tcp`, `udp`, `sctp`).
    pub fn nft(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// The node this proxy runs on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeInfo {
    /// `metadata.name` of the Node: endpoints with this `nodeName` are local.
    pub name: String,
}

/// One ready (or serving-terminating) backend of a Service port.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    pub ip: Ipv4Addr,
    pub port: u16,
    /// The endpoint runs on this node.
    pub local: bool,
}

/// One port of one Service, with everything the rules need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    pub namespace: String,
    pub service: String,
    /// The Service port's name (empty for a single unnamed port).
    pub port_name: String,
    pub protocol: Protocol,
    /// IPv4 cluster IPs (empty for headless Services: they get no rules).
    pub cluster_ips: Vec<Ipv4Addr>,
    pub port: u16,
    pub node_port: Option<u16>,
    /// `sessionAffinity: ClientIP` with this timeout in seconds.
    pub affinity_timeout: Option<u32>,
    /// `externalTrafficPolicy: Local`: NodePort traffic goes to local endpoints only.
    pub external_local: bool,
    /// `internalTrafficPolicy: Local`: cluster-IP traffic goes to local endpoints only.
    pub internal_local: bool,
    /// Sorted, deduplicated.
    pub endpoints: Vec<Endpoint>,
}

impl ServicePort {
    /// A stable, human-readable key: `<ns>/<svc>/<proto>/<port name>`.
    pub fn key(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.namespace,
            self.service,
            self.protocol.nft(),
            self.port_name
        )
    }
}

/// Builds the proxy's view from every Service and EndpointSlice of the cluster. Objects that
/// cannot be proxied (bad IPs, unknown protocols, ports out of range) are skipped, never fatal:
/// the API server validates them, and one bad object must not stop the node's other Services.
pub fn service_ports<S: Borrow<Service>, E: Borrow<EndpointSlice>>(
    services: &[S],
    slices: &[E],
    node: &NodeInfo,
) -> Vec<ServicePort> {
    let by_service = slices_by_service(slices);
    let mut out = Vec::new();
    for service in services {
        let service: &Service = service.borrow();
        let (Some(namespace), Some(name)) = (
            service.metadata.namespace.as_deref(),
            service.metadata.name.as_deref(),
        ) else {
            continue;
        };
        let Some(spec) = service.spec.as_ref() else {
            continue;
        };
        if spec.type_.as_deref() == Some("ExternalName") {
            continue;
        }
        let cluster_ips = cluster_ipv4s(spec.cluster_ip.as_deref(), spec.cluster_ips.as_deref());
        if cluster_ips.is_empty() {
            // Headless (or not yet allocated): DNS only.
            continue;
        }
        let affinity_timeout = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
            spec.session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .and_then(|t| u32::try_from(t).ok())
                .filter(|t| *t > 0)
                .unwrap_or(DEFAULT_AFFINITY_TIMEOUT_SECONDS)
        });
        let node_ports_allowed = matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer"));
        let empty = Vec::new();
        let own_slices = by_service.get(&(namespace, name)).unwrap_or(&empty);
        for port in spec.ports.iter().flatten() {
            let Some(protocol) = Protocol::parse(port.protocol.as_deref()) else {
                continue;
            };
            let Ok(service_port) = u16::try_from(port.port) else {
                continue;
            };
            if service_port == 0 {
                continue;
            }
            let port_name = port.name.clone().unwrap_or_default();
            let node_port = port
                .node_port
                .filter(|_| node_ports_allowed)
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p > 0);
            out.push(ServicePort {
                namespace: namespace.to_string(),
                service: name.to_string(),
                protocol,
                cluster_ips: cluster_ips.clone(),
                port: service_port,
                node_port,
                affinity_timeout,
                external_local: spec.external_traffic_policy.as_deref() == Some("Local"),
                internal_local: spec.internal_traffic_policy.as_deref() == Some("Local"),
                endpoints: endpoints_for(own_slices, &port_name, protocol, node),
                port_name,
            });
        }
    }
    out.sort_by_key(|p| p.key());
    out
}

fn cluster_ipv4s(cluster_ip: Option<&str>, cluster_ips: Option<&[String]>) -> Vec<Ipv4Addr> {
    let mut ips = BTreeSet::new();
    for ip in cluster_ip
        .into_iter()
        .chain(cluster_ips.into_iter().flatten().map(String::as_str))
    {
        if let Ok(ip) = ip.parse::<Ipv4Addr>() {
            ips.insert(ip);
        }
    }
    ips.into_iter().collect()
}

/// Groups IPv4 slices by (namespace, Service name).
pub fn slices_by_service<E: Borrow<EndpointSlice>>(
    slices: &[E],
) -> BTreeMap<(&str, &str), Vec<&EndpointSlice>> {
    let mut map = slices_by_service_any_family(slices);
    for list in map.values_mut() {
        list.retain(|s| s.address_type == "IPv4");
    }
    map
}

/// Groups slices of every address family by (namespace, Service name).
pub fn slices_by_service_any_family<E: Borrow<EndpointSlice>>(
    slices: &[E],
) -> BTreeMap<(&str, &str), Vec<&EndpointSlice>> {
    let mut map: BTreeMap<(&str, &str), Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in slices {
        let slice: &EndpointSlice = slice.borrow();
        if slice.address_type == "FQDN" {
            continue;
        }
        let Some(namespace) = slice.metadata.namespace.as_deref() else {
            continue;
        };
        let Some(service) = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
        else {
            continue;
        };
        map.entry((namespace, service.as_str()))
            .or_default()
            .push(slice);
    }
    map
}

/// The endpoints of one Service port across its slices: ready ones, or else serving-terminating.
fn endpoints_for(
    slices: &[&EndpointSlice],
    port_name: &str,
    protocol: Protocol,
    node: &NodeInfo,
) -> Vec<Endpoint> {
    let mut ready = BTreeSet::new();
    let mut terminating = BTreeSet::new();
    for slice in slices {
        let Some(target_port) = slice.ports.iter().flatten().find_map(|p| {
            let same_name = p.name.as_deref().unwrap_or("") == port_name;
            let same_protocol = Protocol::parse(p.protocol.as_deref()) == Some(protocol);
            (same_name && same_protocol)
                .then_some(p.port)
                .flatten()
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p > 0)
        }) else {
            continue;
        };
        for endpoint in &slice.endpoints {
            let conditions = endpoint.conditions.as_ref();
            let is_ready = conditions.and_then(|c| c.ready).unwrap_or(true);
            let serving = conditions.and_then(|c| c.serving).unwrap_or(is_ready);
            let is_terminating = conditions.and_then(|c| c.terminating).unwrap_or(false);
            let local =
                endpoint.node_name.as_deref() == Some(node.name.as_str()) && !node.name.is_empty();
            for address in &endpoint.addresses {
                let Ok(ip) = address.parse::<Ipv4Addr>() else {
                    continue;
                };
                let entry = Endpoint {
                    ip,
                    port: target_port,
                    local,
                };
                if is_ready {
                    ready.insert(entry);
                } else if serving && is_terminating {
                    terminating.insert(entry);
                }
            }
        }
    }
    let chosen = if ready.is_empty() { terminating } else { ready };
    chosen.into_iter().collect()
}

#[cfg(test)]
mod tests;
