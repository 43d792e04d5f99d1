//! Printers of the other common resources: Service, Endpoints, EndpointSlice, Node, Namespace,
//! ConfigMap, Secret, ServiceAccount, Event (both groups), Ingress, PersistentVolumeClaim,
//! PersistentVolume and Lease.

use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use super::{
    AGE, Column, NAME, Printer, age, column, format_labels, int, join_capped, list, name_of,
    no_conditions, since, text, text_or_none,
};

fn printer_of(columns: &[Column], cells: fn(&Value, Timestamp) -> Vec<Value>) -> Option<Printer> {
    Some(Printer {
        columns: columns.to_vec(),
        cells,
        conditions: no_conditions,
    })
}

fn string(name: &'static str, description: &'static str) -> Column {
    column(name, "string", description, 0)
}

fn wide(name: &'static str, description: &'static str) -> Column {
    column(name, "string", description, 1)
}

pub(super) fn printer(group: &str, resource: &str) -> Option<Printer> {
    match (group, resource) {
        ("", "services") => printer_of(
            &[
                NAME,
                string("Type", "The type of the service."),
                string("Cluster-IP", "The virtual IP of the service."),
                string("External-IP", "The external addresses of the service."),
                string("Port(s)", "The ports the service exposes."),
                AGE,
                wide("Selector", "Pods the service routes to."),
            ],
            service,
        ),
        ("", "endpoints") => printer_of(
            &[NAME, string("Endpoints", "The ready endpoints."), AGE],
            endpoints,
        ),
        ("discovery.k8s.io", "endpointslices") => printer_of(
            &[
                NAME,
                string("AddressType", "The type of the addresses."),
                string("Ports", "The ports of the endpoints."),
                string("Endpoints", "The endpoints' addresses."),
                AGE,
            ],
            endpoint_slice,
        ),
        ("", "nodes") => printer_of(
            &[
                NAME,
                string("Status", "The readiness of the node."),
                string("Roles", "The roles of the node."),
                AGE,
                string("Version", "The kubelet version of the node."),
                wide("Internal-IP", "The internal IP of the node."),
                wide("External-IP", "The external IP of the node."),
                wide("OS-Image", "The OS image of the node."),
                wide("Kernel-Version", "The kernel version of the node."),
                wide("Container-Runtime", "The container runtime of the node."),
            ],
            node,
        ),
        ("", "namespaces") => printer_of(
            &[NAME, string("Status", "The phase of the namespace."), AGE],
            namespace,
        ),
        ("", "configmaps") => printer_of(
            &[NAME, column("Data", "integer", "Number of keys.", 0), AGE],
            config_map,
        ),
        ("", "secrets") => printer_of(
            &[
                NAME,
                string("Type", "The type of the secret."),
                column("Data", "integer", "Number of keys.", 0),
                AGE,
            ],
            secret,
        ),
        ("", "serviceaccounts") => printer_of(
            &[
                NAME,
                column("Secrets", "integer", "Number of secrets.", 0),
                AGE,
            ],
            service_account,
        ),
        ("", "events") | ("events.k8s.io", "events") => printer_of(
            &[
                string("Last Seen", "When the event was last seen."),
                string("Type", "The type of the event."),
                string("Reason", "Why the event happened."),
                string("Object", "The object the event is about."),
                wide("Subobject", "The part of the object the event is about."),
                wide("Source", "Who reported the event."),
                string("Message", "What happened."),
                wide("First Seen", "When the event was first seen."),
                column("Count", "integer", "How many times the event happened.", 1),
                column("Name", "string", "The name of the event.", 1),
            ],
            if group.is_empty() {
                core_event
            } else {
                new_event
            },
        ),
        ("networking.k8s.io", "ingresses") => printer_of(
            &[
                NAME,
                string("Class", "The ingress class."),
                string("Hosts", "The hosts the ingress serves."),
                string("Address", "The addresses of the ingress."),
                string("Ports", "The ports the ingress serves."),
                AGE,
            ],
            ingress,
        ),
        ("", "persistentvolumeclaims") => printer_of(
            &[
                NAME,
                string("Status", "The phase of the claim."),
                string("Volume", "The bound volume."),
                string("Capacity", "The capacity of the bound volume."),
                string("Access Modes", "The access modes of the claim."),
                string("StorageClass", "The storage class of the claim."),
                string(
                    "VolumeAttributesClass",
                    "The volume attributes class of the claim.",
                ),
                AGE,
                wide("VolumeMode", "The volume mode of the claim."),
            ],
            claim,
        ),
        ("", "persistentvolumes") => printer_of(
            &[
                NAME,
                string("Capacity", "The capacity of the volume."),
                string("Access Modes", "The access modes of the volume."),
                string(
                    "Reclaim Policy",
                    "What happens to the volume when released.",
                ),
                string("Status", "The phase of the volume."),
                string("Claim", "The claim bound to the volume."),
                string("StorageClass", "The storage class of the volume."),
                string(
                    "VolumeAttributesClass",
                    "The volume attributes class of the volume.",
                ),
                string("Reason", "Why the volume is in its phase."),
                AGE,
                wide("VolumeMode", "The volume mode of the volume."),
            ],
            volume,
        ),
        ("coordination.k8s.io", "leases") => printer_of(
            &[NAME, string("Holder", "Who holds the lease."), AGE],
            lease,
        ),
        _ => None,
    }
}

fn service(object: &Value, now: Timestamp) -> Vec<Value> {
    let service_type = text(object, "/spec/type");
    let external_ips: Vec<String> = list(object, "/spec/externalIPs")
        .iter()
        .filter_map(|ip| ip.as_str().map(String::from))
        .collect();
    let external = match service_type.as_str() {
        "ExternalName" => text(object, "/spec/externalName"),
        "LoadBalancer" => {
            let mut addresses: Vec<String> = list(object, "/status/loadBalancer/ingress")
                .iter()
                .map(|ingress| {
                    let ip = text(ingress, "/ip");
                    if ip.is_empty() {
                        text(ingress, "/hostname")
                    } else {
                        ip
                    }
                })
                .filter(|address| !address.is_empty())
                .collect();
            addresses.extend(external_ips);
            if addresses.is_empty() {
                "<pending>".to_string()
            } else {
                addresses.join(",")
            }
        }
        _ if external_ips.is_empty() => "<none>".to_string(),
        _ => external_ips.join(","),
    };
    let ports: Vec<String> = list(object, "/spec/ports")
        .iter()
        .map(|port| {
            let protocol = text(port, "/protocol");
            let protocol = if protocol.is_empty() {
                "TCP".to_string()
            } else {
                protocol
            };
            match int(port, "/nodePort") {
                0 => format!("{}/{protocol}", int(port, "/port")),
                node_port => format!("{}:{node_port}/{protocol}", int(port, "/port")),
            }
        })
        .collect();
    vec![
        json!(name_of(object)),
        json!(service_type),
        json!(text_or_none(object, "/spec/clusterIP")),
        json!(external),
        json!(if ports.is_empty() {
            "<none>".to_string()
        } else {
            ports.join(",")
        }),
        json!(age(object, now)),
        json!(format_labels(object.pointer("/spec/selector"))),
    ]
}

fn endpoints(object: &Value, now: Timestamp) -> Vec<Value> {
    let mut addresses = Vec::new();
    for subset in list(object, "/subsets") {
        let ports = list(subset, "/ports");
        for address in list(subset, "/addresses") {
            let ip = text(address, "/ip");
            if ports.is_empty() {
                addresses.push(ip.clone());
            }
            for port in ports {
                addresses.push(format!("{ip}:{}", int(port, "/port")));
            }
        }
    }
    let shown = if addresses.is_empty() {
        "<none>".to_string()
    } else {
        join_capped(&addresses, 3)
    };
    vec![
        json!(name_of(object)),
        json!(shown),
        json!(age(object, now)),
    ]
}

fn endpoint_slice(object: &Value, now: Timestamp) -> Vec<Value> {
    let ports: Vec<String> = list(object, "/ports")
        .iter()
        .map(|port| match port.get("port").and_then(Value::as_i64) {
            Some(number) => number.to_string(),
            None => "<unset>".to_string(),
        })
        .collect();
    let addresses: Vec<String> = list(object, "/endpoints")
        .iter()
        .flat_map(|endpoint| {
            list(endpoint, "/addresses")
                .iter()
                .filter_map(|a| a.as_str().map(String::from))
        })
        .collect();
    vec![
        json!(name_of(object)),
        json!(text(object, "/addressType")),
        json!(if ports.is_empty() {
            "<unset>".to_string()
        } else {
            ports.join(",")
        }),
        json!(if addresses.is_empty() {
            "<unset>".to_string()
        } else {
            join_capped(&addresses, 3)
        }),
        json!(age(object, now)),
    ]
}

fn node(object: &Value, now: Timestamp) -> Vec<Value> {
    let ready = list(object, "/status/conditions")
        .iter()
        .find(|condition| condition.get("type").and_then(Value::as_str) == Some("Ready"));
    let mut status = vec![match ready
        .and_then(|condition| condition.get("status"))
        .and_then(Value::as_str)
    {
        Some("True") => "Ready".to_string(),
        Some(_) => "NotReady".to_string(),
        None => "Unknown".to_string(),
    }];
    if object
        .pointer("/spec/unschedulable")
        .and_then(Value::as_bool)
        == Some(true)
    {
        status.push("SchedulingDisabled".to_string());
    }
    let mut roles: Vec<String> = crate::names::string_map(object.pointer("/metadata/labels"))
        .into_iter()
        .filter_map(
            |(key, value)| match key.strip_prefix("node-role.kubernetes.io/") {
                Some(role) if !role.is_empty() => Some(role.to_string()),
                _ if key == "kubernetes.io/role" && !value.is_empty() => Some(value),
                _ => None,
            },
        )
        .collect();
    roles.sort();
    roles.dedup();
    let address = |address_type: &str| {
        list(object, "/status/addresses")
            .iter()
            .find(|address| address.get("type").and_then(Value::as_str) == Some(address_type))
            .map(|address| text(address, "/address"))
            .filter(|address| !address.is_empty())
            .unwrap_or_else(|| "<none>".to_string())
    };
    vec![
        json!(name_of(object)),
        json!(status.join(",")),
        json!(if roles.is_empty() {
            "<none>".to_string()
        } else {
            roles.join(",")
        }),
        json!(age(object, now)),
        json!(text(object, "/status/nodeInfo/kubeletVersion")),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(text_or_none(object, "/status/nodeInfo/osImage")),
        json!(text_or_none(object, "/status/nodeInfo/kernelVersion")),
        json!(text_or_none(
            object,
            "/status/nodeInfo/containerRuntimeVersion"
        )),
    ]
}

fn namespace(object: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        json!(name_of(object)),
        json!(text(object, "/status/phase")),
        json!(age(object, now)),
    ]
}

fn map_len(object: &Value, pointer: &str) -> usize {
    object
        .pointer(pointer)
        .and_then(Value::as_object)
        .map_or(0, |map| map.len())
}

fn config_map(object: &Value, now: Timestamp) -> Vec<Value> {
    let keys = map_len(object, "/data") + map_len(object, "/binaryData");
    vec![json!(name_of(object)), json!(keys), json!(age(object, now))]
}

fn secret(object: &Value, now: Timestamp) -> Vec<Value> {
    let keys = map_len(object, "/data") + map_len(object, "/stringData");
    vec![
        json!(name_of(object)),
        json!(text(object, "/type")),
        json!(keys),
        json!(age(object, now)),
    ]
}

fn service_account(object: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        json!(name_of(object)),
        json!(list(object, "/secrets").len()),
        json!(age(object, now)),
    ]
}

/// Event columns from already-chosen field values (core and events.k8s.io differ in names).
struct EventFields {
    last_seen: String,
    first_seen: String,
    regarding: Value,
    source: String,
    message: String,
    count: i64,
}

fn event_cells(object: &Value, fields: EventFields, now: Timestamp) -> Vec<Value> {
    let kind = text(&fields.regarding, "/kind").to_ascii_lowercase();
    let since_or_unknown = |timestamp: &str| since(timestamp, now);
    vec![
        json!(since_or_unknown(&fields.last_seen)),
        json!(text(object, "/type")),
        json!(text(object, "/reason")),
        json!(format!("{kind}/{}", text(&fields.regarding, "/name"))),
        json!(text(&fields.regarding, "/fieldPath")),
        json!(fields.source),
        json!(fields.message),
        json!(since_or_unknown(&fields.first_seen)),
        json!(fields.count),
        json!(name_of(object)),
    ]
}

fn first_non_empty(candidates: &[String]) -> String {
    candidates
        .iter()
        .find(|candidate| !candidate.is_empty())
        .cloned()
        .unwrap_or_default()
}

fn event_source(component: String, host: String) -> String {
    match (component.is_empty(), host.is_empty()) {
        (_, true) => component,
        (true, false) => host,
        (false, false) => format!("{component}, {host}"),
    }
}

fn core_event(object: &Value, now: Timestamp) -> Vec<Value> {
    let series_count = int(object, "/series/count");
    let fields = EventFields {
        last_seen: first_non_empty(&[
            text(object, "/series/lastObservedTime"),
            text(object, "/lastTimestamp"),
            text(object, "/eventTime"),
        ]),
        first_seen: first_non_empty(&[text(object, "/firstTimestamp"), text(object, "/eventTime")]),
        regarding: object.get("involvedObject").cloned().unwrap_or(Value::Null),
        source: event_source(
            first_non_empty(&[
                text(object, "/source/component"),
                text(object, "/reportingComponent"),
            ]),
            first_non_empty(&[
                text(object, "/source/host"),
                text(object, "/reportingInstance"),
            ]),
        ),
        message: text(object, "/message"),
        count: if series_count > 0 {
            series_count
        } else {
            int(object, "/count")
        },
    };
    event_cells(object, fields, now)
}

fn new_event(object: &Value, now: Timestamp) -> Vec<Value> {
    let series_count = int(object, "/series/count");
    let fields = EventFields {
        last_seen: first_non_empty(&[
            text(object, "/series/lastObservedTime"),
            text(object, "/deprecatedLastTimestamp"),
            text(object, "/eventTime"),
        ]),
        first_seen: first_non_empty(&[
            text(object, "/deprecatedFirstTimestamp"),
            text(object, "/eventTime"),
        ]),
        regarding: object.get("regarding").cloned().unwrap_or(Value::Null),
        source: event_source(
            first_non_empty(&[
                text(object, "/deprecatedSource/component"),
                text(object, "/reportingController"),
            ]),
            first_non_empty(&[
                text(object, "/deprecatedSource/host"),
                text(object, "/reportingInstance"),
            ]),
        ),
        message: text(object, "/note"),
        count: if series_count > 0 {
            series_count
        } else {
            int(object, "/deprecatedCount")
        },
    };
    event_cells(object, fields, now)
}

fn ingress(object: &Value, now: Timestamp) -> Vec<Value> {
    let hosts: Vec<String> = list(object, "/spec/rules")
        .iter()
        .map(|rule| text(rule, "/host"))
        .filter(|h| !h.is_empty())
        .collect();
    let addresses: Vec<String> = list(object, "/status/loadBalancer/ingress")
        .iter()
        .map(|ingress| {
            let ip = text(ingress, "/ip");
            if ip.is_empty() {
                text(ingress, "/hostname")
            } else {
                ip
            }
        })
        .filter(|address| !address.is_empty())
        .collect();
    let ports = if list(object, "/spec/tls").is_empty() {
        "80"
    } else {
        "80, 443"
    };
    vec![
        json!(name_of(object)),
        json!(text_or_none(object, "/spec/ingressClassName")),
        json!(if hosts.is_empty() {
            "*".to_string()
        } else {
            join_capped(&hosts, 3)
        }),
        json!(addresses.join(",")),
        json!(ports),
        json!(age(object, now)),
    ]
}

fn access_modes(object: &Value, pointer: &str) -> String {
    let modes: Vec<&str> = list(object, pointer)
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let mut short = Vec::new();
    for (mode, abbreviation) in [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ] {
        if modes.contains(&mode) {
            short.push(abbreviation);
        }
    }
    short.join(",")
}

fn unset_if_empty(value: String) -> String {
    if value.is_empty() {
        "<unset>".to_string()
    } else {
        value
    }
}

fn claim(object: &Value, now: Timestamp) -> Vec<Value> {
    let deleting = object
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|value| !value.is_null());
    let phase = if deleting {
        "Terminating".to_string()
    } else {
        text(object, "/status/phase")
    };
    let bound = !text(object, "/spec/volumeName").is_empty();
    let (capacity, modes) = if bound {
        (
            text(object, "/status/capacity/storage"),
            access_modes(object, "/status/accessModes"),
        )
    } else {
        (String::new(), String::new())
    };
    vec![
        json!(name_of(object)),
        json!(phase),
        json!(text(object, "/spec/volumeName")),
        json!(capacity),
        json!(modes),
        json!(unset_if_empty(text(object, "/spec/storageClassName"))),
        json!(unset_if_empty(text(
            object,
            "/spec/volumeAttributesClassName"
        ))),
        json!(age(object, now)),
        json!(text(object, "/spec/volumeMode")),
    ]
}

fn volume(object: &Value, now: Timestamp) -> Vec<Value> {
    let deleting = object
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|value| !value.is_null());
    let phase = if deleting {
        "Terminating".to_string()
    } else {
        text(object, "/status/phase")
    };
    let claim_name = text(object, "/spec/claimRef/name");
    let claim = if claim_name.is_empty() {
        String::new()
    } else {
        format!("{}/{claim_name}", text(object, "/spec/claimRef/namespace"))
    };
    vec![
        json!(name_of(object)),
        json!(text(object, "/spec/capacity/storage")),
        json!(access_modes(object, "/spec/accessModes")),
        json!(text(object, "/spec/persistentVolumeReclaimPolicy")),
        json!(phase),
        json!(claim),
        json!(text(object, "/spec/storageClassName")),
        json!(unset_if_empty(text(
            object,
            "/spec/volumeAttributesClassName"
        ))),
        json!(text(object, "/status/reason")),
        json!(age(object, now)),
        json!(text(object, "/spec/volumeMode")),
    ]
}

fn lease(object: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        json!(name_of(object)),
        json!(text(object, "/spec/holderIdentity")),
        json!(age(object, now)),
    ]
}
