//! Tests for the cluster DNS records: A/AAAA, headless endpoints, StatefulSet hostnames, SRV, CNAME, pods, NXDOMAIN and NODATA.

use std::net::{Ipv4Addr, Ipv6Addr};

use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;

use super::*;
use crate::testing::{Ep, ep, service, slice};

fn model() -> DnsModel {
    let services = [
        service(
            "default",
            "web",
            json!({"clusterIP": "10.43.0.20", "clusterIPs": ["10.43.0.20", "fd00::20"],
            "ports": [{"name": "http", "port": 80}, {"port": 81}]}),
        ),
        service(
            "default",
            "db",
            json!({"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}),
        ),
        service(
            "default",
            "ext",
            json!({"type": "ExternalName", "externalName": "Example.COM."}),
        ),
        service("other", "pending", json!({"ports": [{"port": 80}]})),
    ];
    let not_ready = Ep {
        ip: "10.42.0.9",
        ready: false,
        node: "n1",
        hostname: Some("db-2"),
    };
    let slices = [
        slice(
            "default",
            "db",
            "a",
            &[("pg", 5432, "TCP")],
            &[
                Ep {
                    ip: "10.42.0.7",
                    ready: true,
                    node: "n1",
                    hostname: Some("db-0"),
                },
                ep("10.42.1.8", "n2"),
                not_ready,
            ],
        ),
        slice(
            "default",
            "web",
            "a",
            &[("http", 8080, "TCP")],
            &[ep("10.42.0.5", "n1")],
        ),
    ];
    DnsModel::build("cluster.local", &services, &slices)
}

fn a(ip: [u8; 4]) -> RecordData {
    RecordData::A(Ipv4Addr::from(ip))
}

#[test]
fn cluster_ip_service_answers_its_cluster_ips() {
    let m = model();
    assert_eq!(
        m.answer("web.default.svc.cluster.local.", QueryKind::A),
        Answer::Records(vec![a([10, 43, 0, 20])])
    );
    assert_eq!(
        m.answer("WEB.Default.svc.cluster.local", QueryKind::Aaaa),
        Answer::Records(vec![RecordData::Aaaa(
            "fd00::20".parse::<Ipv6Addr>().expect("v6")
        )])
    );
    // The name exists: no TXT records is NOERROR without data, not NXDOMAIN.
    assert_eq!(
        m.answer("web.default.svc.cluster.local", QueryKind::Other),
        Answer::Records(vec![])
    );
}

#[test]
fn headless_service_answers_every_ready_endpoint_and_names_them() {
    let m = model();
    assert_eq!(
        m.answer("db.default.svc.cluster.local", QueryKind::A),
        Answer::Records(vec![a([10, 42, 0, 7]), a([10, 42, 1, 8])])
    );
    // StatefulSet pods by hostname; others by dashed address.
    assert_eq!(
        m.answer("db-0.db.default.svc.cluster.local", QueryKind::A),
        Answer::Records(vec![a([10, 42, 0, 7])])
    );
    assert_eq!(
        m.answer("10-42-1-8.db.default.svc.cluster.local", QueryKind::A),
        Answer::Records(vec![a([10, 42, 1, 8])])
    );
    // Not ready: not published.
    assert_eq!(
        m.answer("db-2.db.default.svc.cluster.local", QueryKind::A),
        Answer::NxDomain
    );
}

#[test]
fn srv_records_for_named_ports() {
    let m = model();
    assert_eq!(
        m.answer("_http._tcp.web.default.svc.cluster.local", QueryKind::Srv),
        Answer::Records(vec![RecordData::Srv {
            priority: 0,
            weight: 100,
            port: 80,
            target: "web.default.svc.cluster.local".into()
        }])
    );
    assert_eq!(
        m.answer("_pg._tcp.db.default.svc.cluster.local", QueryKind::Srv),
        Answer::Records(vec![
            RecordData::Srv {
                priority: 0,
                weight: 50,
                port: 5432,
                target: "10-42-1-8.db.default.svc.cluster.local".into()
            },
            RecordData::Srv {
                priority: 0,
                weight: 50,
                port: 5432,
                target: "db-0.db.default.svc.cluster.local".into()
            },
        ])
    );
    // Unnamed ports have no SRV record.
    assert_eq!(
        m.answer("_81._tcp.web.default.svc.cluster.local", QueryKind::Srv),
        Answer::NxDomain
    );
}

#[test]
fn external_name_is_a_cname_for_every_type() {
    let m = model();
    let cname = Answer::Records(vec![RecordData::Cname("example.com".into())]);
    assert_eq!(
        m.answer("ext.default.svc.cluster.local", QueryKind::A),
        cname
    );
    assert_eq!(
        m.answer("ext.default.svc.cluster.local", QueryKind::Cname),
        cname
    );
}

#[test]
fn unknown_names_in_the_zone_are_nxdomain_and_interior_names_exist() {
    let m = model();
    assert_eq!(
        m.answer("nope.default.svc.cluster.local", QueryKind::A),
        Answer::NxDomain
    );
    assert_eq!(
        m.answer("pending.other.svc.cluster.local", QueryKind::A),
        Answer::NxDomain
    );
    assert_eq!(
        m.answer("default.svc.cluster.local", QueryKind::A),
        Answer::Records(vec![])
    );
    assert_eq!(
        m.answer("svc.cluster.local", QueryKind::A),
        Answer::Records(vec![])
    );
    assert_eq!(
        m.answer("cluster.local", QueryKind::A),
        Answer::Records(vec![])
    );
    assert_eq!(
        m.answer("nothing.cluster.local", QueryKind::A),
        Answer::NxDomain
    );
}

#[test]
fn names_outside_the_zone_are_not_ours() {
    let m = model();
    assert_eq!(m.answer("example.com", QueryKind::A), Answer::NotOurs);
    // A suffix match that is not a label boundary is not ours either.
    assert_eq!(m.answer("notcluster.local", QueryKind::A), Answer::NotOurs);
}

#[test]
fn pod_names_resolve_to_the_address_they_spell() {
    let m = model();
    assert_eq!(
        m.answer("10-42-0-5.default.pod.cluster.local", QueryKind::A),
        Answer::Records(vec![a([10, 42, 0, 5])])
    );
    assert_eq!(
        m.answer("10-42-0-5.default.pod.cluster.local", QueryKind::Aaaa),
        Answer::Records(vec![])
    );
    assert_eq!(
        m.answer("bogus.default.pod.cluster.local", QueryKind::A),
        Answer::NxDomain
    );
}

#[test]
fn an_empty_cluster_still_owns_its_domain() {
    let m = DnsModel::build::<Service, EndpointSlice>("cluster.local", &[], &[]);
    assert_eq!(
        m.answer("x.default.svc.cluster.local", QueryKind::A),
        Answer::NxDomain
    );
    assert_eq!(
        m.answer("cluster.local", QueryKind::Srv),
        Answer::Records(vec![])
    );
}
