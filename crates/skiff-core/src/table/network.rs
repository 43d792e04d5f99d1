//! Printers of the network resources: Service, Endpoints, EndpointSlice and Ingress.

use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use super::{
    AGE, NAME, Printer, age, format_labels, int, join_capped, list, name_of, printer_of, string,
    text, text_or_none, wide,
};

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
