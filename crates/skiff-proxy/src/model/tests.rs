//! Tests for the reduction of Services and EndpointSlices to Service ports: readiness, terminating fallback, port matching, policies, malformed objects.

use serde_json::json;

use super::*;
use crate::testing::{Ep, ep, service, slice};

fn node() -> NodeInfo {
    NodeInfo { name: "n1".into() }
}

#[test]
fn cluster_ip_service_with_ready_endpoints() {
    let services = [service(
        "default",
        "web",
        json!({"clusterIP": "10.43.0.20", "ports": [{"name": "http", "port": 80}]}),
    )];
    let slices = [slice(
        "default",
        "web",
        "a",
        &[("http", 8080, "TCP")],
        &[ep("10.42.0.5", "n1"), ep("10.42.1.5", "n2")],
    )];
    let ports = service_ports(&services, &slices, &node());
    assert_eq!(ports.len(), 1);
    let p = &ports[0];
    assert_eq!(p.key(), "default/web/tcp/http");
    assert_eq!(p.cluster_ips, vec![Ipv4Addr::new(10, 43, 0, 20)]);
    assert_eq!(p.port, 80);
    assert_eq!(p.node_port, None);
    assert_eq!(
        p.endpoints,
        vec![
            Endpoint {
                ip: Ipv4Addr::new(10, 42, 0, 5),
                port: 8080,
                local: true
            },
            Endpoint {
                ip: Ipv4Addr::new(10, 42, 1, 5),
                port: 8080,
                local: false
            },
        ]
    );
}

#[test]
fn headless_and_external_name_services_get_no_ports() {
    let services = [
        service(
            "default",
            "db",
            json!({"clusterIP": "None", "ports": [{"port": 5432}]}),
        ),
        service(
            "default",
            "ext",
            json!({"type": "ExternalName", "externalName": "example.com"}),
        ),
    ];
    assert!(service_ports(&services, &[] as &[EndpointSlice], &node()).is_empty());
}

#[test]
fn not_ready_endpoints_are_skipped_unless_only_terminating_ones_serve() {
    let services = [service(
        "a",
        "s",
        json!({"clusterIP": "10.43.0.1", "ports": [{"port": 80}]}),
    )];
    let not_ready = Ep {
        ip: "10.42.0.9",
        ready: false,
        node: "n1",
        hostname: None,
    };
    let slices = [slice(
        "a",
        "s",
        "x",
        &[("", 80, "TCP")],
        &[ep("10.42.0.8", "n1"), not_ready],
    )];
    let ports = service_ports(&services, &slices, &node());
    assert_eq!(ports[0].endpoints.len(), 1);
    assert_eq!(ports[0].endpoints[0].ip, Ipv4Addr::new(10, 42, 0, 8));

    // Only a serving, terminating endpoint left: it is used.
    let terminating: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"name": "s-y", "namespace": "a", "labels": {"kubernetes.io/service-name": "s"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.42.0.7"], "conditions": {"ready": false, "serving": true, "terminating": true}}],
        "ports": [{"port": 80}]
    }))
    .expect("slice");
    let ports = service_ports(&services, &[terminating], &node());
    assert_eq!(ports[0].endpoints.len(), 1);
}

#[test]
fn ports_match_by_name_and_protocol_and_slices_by_label_and_namespace() {
    let services = [service(
        "a",
        "dns",
        json!({"clusterIP": "10.43.0.10", "ports": [
            {"name": "dns", "port": 53, "protocol": "UDP"},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]}),
    )];
    let slices = [
        slice(
            "a",
            "dns",
            "1",
            &[("dns", 1053, "UDP"), ("dns-tcp", 2053, "TCP")],
            &[ep("10.42.0.2", "n1")],
        ),
        // Other namespace, same service name: ignored.
        slice(
            "b",
            "dns",
            "1",
            &[("dns", 9, "UDP")],
            &[ep("10.42.9.9", "n1")],
        ),
    ];
    let ports = service_ports(&services, &slices, &node());
    let udp = ports
        .iter()
        .find(|p| p.protocol == Protocol::Udp)
        .expect("udp port");
    let tcp = ports
        .iter()
        .find(|p| p.protocol == Protocol::Tcp)
        .expect("tcp port");
    assert_eq!(
        udp.endpoints,
        vec![Endpoint {
            ip: Ipv4Addr::new(10, 42, 0, 2),
            port: 1053,
            local: true
        }]
    );
    assert_eq!(tcp.endpoints[0].port, 2053);
}

#[test]
fn node_port_affinity_and_policies() {
    let services = [service(
        "a",
        "np",
        json!({"type": "NodePort", "clusterIP": "10.43.0.3",
               "externalTrafficPolicy": "Local", "internalTrafficPolicy": "Local",
               "sessionAffinity": "ClientIP",
               "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
               "ports": [{"port": 80, "nodePort": 30080}]}),
    )];
    let p = &service_ports(&services, &[] as &[EndpointSlice], &node())[0];
    assert_eq!(p.node_port, Some(30080));
    assert_eq!(p.affinity_timeout, Some(60));
    assert!(p.external_local && p.internal_local);

    // A ClusterIP service never gets a node port, even if the field is set; default timeout.
    let services = [service(
        "a",
        "c",
        json!({"clusterIP": "10.43.0.4", "sessionAffinity": "ClientIP",
               "ports": [{"port": 80, "nodePort": 30081}]}),
    )];
    let p = &service_ports(&services, &[] as &[EndpointSlice], &node())[0];
    assert_eq!(p.node_port, None);
    assert_eq!(p.affinity_timeout, Some(DEFAULT_AFFINITY_TIMEOUT_SECONDS));
}

#[test]
fn malformed_objects_are_skipped_not_fatal() {
    let services = [
        service(
            "a",
            "bad-ip",
            json!({"clusterIP": "not-an-ip", "ports": [{"port": 80}]}),
        ),
        service(
            "a",
            "bad-proto",
            json!({"clusterIP": "10.43.0.5", "ports": [{"port": 80, "protocol": "ICMP"}]}),
        ),
        service(
            "a",
            "bad-port",
            json!({"clusterIP": "10.43.0.6", "ports": [{"port": 70000}]}),
        ),
        service(
            "a",
            "ok",
            json!({"clusterIP": "10.43.0.7", "ports": [{"port": 80}]}),
        ),
    ];
    let slices = [slice(
        "a",
        "ok",
        "1",
        &[("", 80, "TCP")],
        &[ep("bogus", "n1"), ep("10.42.0.1", "n1")],
    )];
    let ports = service_ports(&services, &slices, &node());
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0].service, "ok");
    assert_eq!(ports[0].endpoints.len(), 1);
}

#[test]
fn duplicate_endpoints_across_slices_count_once() {
    let services = [service(
        "a",
        "s",
        json!({"clusterIP": "10.43.0.1", "ports": [{"port": 80}]}),
    )];
    let slices = [
        slice("a", "s", "1", &[("", 80, "TCP")], &[ep("10.42.0.1", "n1")]),
        slice(
            "a",
            "s",
            "2",
            &[("", 80, "TCP")],
            &[ep("10.42.0.1", "n1"), ep("10.42.0.2", "n2")],
        ),
    ];
    assert_eq!(
        service_ports(&services, &slices, &node())[0]
            .endpoints
            .len(),
        2
    );
}
