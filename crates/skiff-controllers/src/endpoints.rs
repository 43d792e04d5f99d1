//! Endpoints and EndpointSlices from a Service's selector and its pods: ready pods (or all pods
//! with `publishNotReadyAddresses`) with an IP, every service port resolved against the pod
//! (a named `targetPort` looks the container port up by name, pods without it are left out of
//! that port's group), grouped by identical port sets.
//!
//! Invariants: Services without a selector are left alone (their Endpoints are the user's);
//! slices carry `kubernetes.io/service-name` and `endpointslice.kubernetes.io/managed-by`, are
//! owned by the Service and hold at most 100 endpoints; the output is deterministic (sorted), so
//! an unchanged world plans no writes.

pub mod shell;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
};
use k8s_openapi::api::discovery::v1::{
    Endpoint, EndpointConditions, EndpointPort as SlicePort, EndpointSlice,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::workload::{is_ready, is_terminal, owner_reference};

/// The label naming a slice's Service.
pub const SERVICE_NAME: &str = "kubernetes.io/service-name";
/// The label naming a slice's manager.
pub const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
/// Our value of `MANAGED_BY` (kube-controller-manager's).
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
const MAX_ENDPOINTS_PER_SLICE: usize = 100;

/// One write the shell performs.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Create or replace the Endpoints object.
    ApplyEndpoints(Box<Endpoints>),
    CreateSlice(Box<EndpointSlice>),
    /// Replace a slice (same name).
    UpdateSlice(Box<EndpointSlice>),
    DeleteSlice {
        name: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct PortKey {
    name: String,
    port: i32,
    protocol: String,
    app_protocol: Option<String>,
}

struct PodEndpoint<'a> {
    pod: &'a Pod,
    ip: String,
    ready: bool,
    serving: bool,
    terminating: bool,
}

fn resolve_port(pod: &Pod, target: &IntOrString, protocol: &str) -> Option<i32> {
    match target {
        IntOrString::Int(port) => Some(*port),
        IntOrString::String(name) => {
            if let Ok(port) = name.parse::<i32>() {
                return Some(port);
            }
            pod.spec
                .as_ref()?
                .containers
                .iter()
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| {
                    p.name.as_deref() == Some(name.as_str())
                        && p.protocol.as_deref().unwrap_or("TCP") == protocol
                })
                .map(|p| p.container_port)
        }
    }
}

/// Plan the Endpoints and EndpointSlices of one Service.
pub fn plan(
    service: &Service,
    pods: &[Pod],
    endpoints: Option<&Endpoints>,
    slices: &[EndpointSlice],
) -> Vec<Change> {
    let spec = service.spec.clone().unwrap_or_default();
    let Some(selector) = spec.selector.clone().filter(|s| !s.is_empty()) else {
        return Vec::new();
    };
    if spec.type_.as_deref() == Some("ExternalName") {
        return Vec::new();
    }
    let name = service.metadata.name.clone().unwrap_or_default();
    let namespace = service.metadata.namespace.clone();
    let publish_not_ready = spec.publish_not_ready_addresses.unwrap_or(false);
    let mut chosen: Vec<PodEndpoint> = Vec::new();
    for pod in pods.iter().filter(|p| p.metadata.namespace == namespace) {
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        if !selector.iter().all(|(k, v)| labels.get(k) == Some(v)) || is_terminal(pod) {
            continue;
        }
        let Some(ip) = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .filter(|ip| !ip.is_empty())
        else {
            continue;
        };
        let terminating = pod.metadata.deletion_timestamp.is_some();
        let serving = publish_not_ready || crate::workload::ready_since(pod).is_some();
        chosen.push(PodEndpoint {
            pod,
            ip,
            ready: serving && !terminating,
            serving,
            terminating,
        });
    }
    chosen.sort_by(|a, b| {
        a.ip.cmp(&b.ip)
            .then_with(|| a.pod.metadata.name.cmp(&b.pod.metadata.name))
    });
    // Group pods by their resolved port set.
    let mut groups: BTreeMap<Vec<PortKey>, Vec<&PodEndpoint>> = BTreeMap::new();
    for endpoint in &chosen {
        let mut ports = Vec::new();
        for port in spec.ports.iter().flatten() {
            let protocol = port.protocol.clone().unwrap_or_else(|| "TCP".into());
            let target = port
                .target_port
                .clone()
                .unwrap_or(IntOrString::Int(port.port));
            if let Some(resolved) = resolve_port(endpoint.pod, &target, &protocol) {
                ports.push(PortKey {
                    name: port.name.clone().unwrap_or_default(),
                    port: resolved,
                    protocol,
                    app_protocol: port.app_protocol.clone(),
                });
            }
        }
        groups.entry(ports).or_default().push(endpoint);
    }
    let mut changes = Vec::new();
    // Endpoints (legacy): terminating pods are left out.
    let subsets: Vec<EndpointSubset> = groups
        .iter()
        .filter_map(|(ports, members)| {
            let address = |e: &&PodEndpoint| EndpointAddress {
                ip: e.ip.clone(),
                hostname: e.pod.spec.as_ref().and_then(|s| s.hostname.clone()),
                node_name: e.pod.spec.as_ref().and_then(|s| s.node_name.clone()),
                target_ref: Some(target_ref(e.pod)),
            };
            let ready: Vec<EndpointAddress> =
                members.iter().filter(|e| e.ready).map(address).collect();
            let not_ready: Vec<EndpointAddress> = members
                .iter()
                .filter(|e| !e.ready && !e.terminating)
                .map(address)
                .collect();
            if ready.is_empty() && not_ready.is_empty() {
                return None;
            }
            Some(EndpointSubset {
                addresses: Some(ready).filter(|a| !a.is_empty()),
                not_ready_addresses: Some(not_ready).filter(|a| !a.is_empty()),
                ports: Some(
                    ports
                        .iter()
                        .map(|p| EndpointPort {
                            name: Some(p.name.clone()).filter(|n| !n.is_empty()),
                            port: p.port,
                            protocol: Some(p.protocol.clone()),
                            app_protocol: p.app_protocol.clone(),
                        })
                        .collect(),
                )
                .filter(|p: &Vec<EndpointPort>| !p.is_empty()),
            })
        })
        .collect();
    let mut labels = service.metadata.labels.clone().unwrap_or_default();
    if spec.cluster_ip.as_deref() == Some("None") {
        labels.insert("service.kubernetes.io/headless".into(), String::new());
    }
    let desired_endpoints = Endpoints {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: namespace.clone(),
            labels: Some(labels.clone()).filter(|l| !l.is_empty()),
            ..Default::default()
        },
        subsets: Some(subsets).filter(|s| !s.is_empty()),
    };
    let current = endpoints.map(|e| {
        (
            e.metadata.labels.clone().filter(|l| !l.is_empty()),
            e.subsets.clone(),
        )
    });
    if current
        != Some((
            desired_endpoints.metadata.labels.clone(),
            desired_endpoints.subsets.clone(),
        ))
    {
        changes.push(Change::ApplyEndpoints(Box::new(desired_endpoints)));
    }
    // EndpointSlices.
    let mut slice_labels = labels;
    slice_labels.insert(SERVICE_NAME.into(), name.clone());
    slice_labels.insert(MANAGED_BY.into(), CONTROLLER_NAME.into());
    let mut desired: Vec<EndpointSlice> = Vec::new();
    for (ports, members) in &groups {
        for chunk in members.chunks(MAX_ENDPOINTS_PER_SLICE) {
            desired.push(EndpointSlice {
                metadata: ObjectMeta {
                    generate_name: Some(format!("{name}-")),
                    namespace: namespace.clone(),
                    labels: Some(slice_labels.clone()),
                    owner_references: Some(vec![owner_reference(
                        "v1",
                        "Service",
                        &service.metadata,
                    )]),
                    ..Default::default()
                },
                address_type: "IPv4".into(),
                endpoints: chunk
                    .iter()
                    .map(|e| Endpoint {
                        addresses: vec![e.ip.clone()],
                        conditions: Some(EndpointConditions {
                            ready: Some(e.ready),
                            serving: Some(e.serving),
                            terminating: Some(e.terminating),
                        }),
                        hostname: e.pod.spec.as_ref().and_then(|s| s.hostname.clone()),
                        node_name: e.pod.spec.as_ref().and_then(|s| s.node_name.clone()),
                        target_ref: Some(target_ref(e.pod)),
                        ..Default::default()
                    })
                    .collect(),
                ports: Some(
                    ports
                        .iter()
                        .map(|p| SlicePort {
                            name: Some(p.name.clone()),
                            port: Some(p.port),
                            protocol: Some(p.protocol.clone()),
                            app_protocol: p.app_protocol.clone(),
                        })
                        .collect(),
                ),
            });
        }
    }
    if desired.is_empty() {
        // Kubernetes keeps one empty placeholder slice for a Service without endpoints.
        desired.push(EndpointSlice {
            metadata: ObjectMeta {
                generate_name: Some(format!("{name}-")),
                namespace: namespace.clone(),
                labels: Some(slice_labels.clone()),
                owner_references: Some(vec![owner_reference("v1", "Service", &service.metadata)]),
                ..Default::default()
            },
            address_type: "IPv4".into(),
            endpoints: Vec::new(),
            ports: None,
        });
    }
    let uid = service.metadata.uid.clone().unwrap_or_default();
    let mut existing: Vec<&EndpointSlice> = slices
        .iter()
        .filter(|s| s.metadata.namespace == namespace)
        .filter(|s| {
            let l = s.metadata.labels.clone().unwrap_or_default();
            l.get(SERVICE_NAME) == Some(&name)
                && l.get(MANAGED_BY).map(String::as_str) == Some(CONTROLLER_NAME)
        })
        .filter(|s| uid.is_empty() || crate::workload::is_controlled_by(&s.metadata, &uid))
        .collect();
    existing.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    // Reuse slices in order; leftovers are deleted.
    let mut existing = existing.into_iter();
    for mut slice in desired {
        match existing.next() {
            Some(current) => {
                if current.endpoints != slice.endpoints
                    || current.ports != slice.ports
                    || current.metadata.labels != slice.metadata.labels
                {
                    slice.metadata.name = current.metadata.name.clone();
                    slice.metadata.generate_name = None;
                    slice.metadata.resource_version = current.metadata.resource_version.clone();
                    changes.push(Change::UpdateSlice(Box::new(slice)));
                }
            }
            None => changes.push(Change::CreateSlice(Box::new(slice))),
        }
    }
    for leftover in existing {
        changes.push(Change::DeleteSlice {
            name: leftover.metadata.name.clone().unwrap_or_default(),
        });
    }
    changes
}

fn target_ref(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        name: pod.metadata.name.clone(),
        namespace: pod.metadata.namespace.clone(),
        uid: pod.metadata.uid.clone(),
        ..Default::default()
    }
}

/// Whether a pod counts as ready for endpoints.
pub fn pod_ready(pod: &Pod) -> bool {
    is_ready(pod)
}

#[cfg(test)]
mod tests;
