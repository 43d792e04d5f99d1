//! Tests for the pod network rules and routes.

use super::*;

#[test]
fn rules_accept_and_skip_nat_for_pod_traffic() {
    let rules = cluster_rules("10.42.0.0/16");
    assert_eq!(rules.len(), 2);
    assert_eq!((rules[0].table, rules[0].chain), ("filter", "DOCKER-USER"));
    assert_eq!(rules[0].args.last().map(String::as_str), Some("ACCEPT"));
    assert_eq!((rules[1].table, rules[1].chain), ("nat", "POSTROUTING"));
    assert_eq!(rules[1].args.last().map(String::as_str), Some("RETURN"));
    assert_eq!(
        rule_args(&rules[0], "-I")[..6],
        ["-w", "-t", "filter", "-I", "DOCKER-USER", "1"].map(String::from)
    );
}

#[test]
fn routes_go_to_other_machines_only() {
    let node = |name: &str, cidr: Option<&str>, ip: Option<&str>| NodeRoute {
        name: name.into(),
        pod_cidr: cidr.map(String::from),
        internal_ip: ip.map(String::from),
    };
    let nodes = vec![
        node("me", Some("10.42.1.0/24"), Some("192.0.2.2")),
        node("neighbour", Some("10.42.2.0/24"), Some("192.0.2.2")),
        node("far", Some("10.42.3.0/24"), Some("192.0.2.9")),
        node("new", None, Some("192.0.2.10")),
    ];
    assert_eq!(
        routes("me", "192.0.2.2", &nodes),
        vec![("10.42.3.0/24".to_string(), "192.0.2.9".to_string())]
    );
}
