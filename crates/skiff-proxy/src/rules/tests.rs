//! Golden tests of the rule set for every Service shape: ClusterIP, single endpoint, NodePort, traffic policies, affinity, no endpoints, headless, UDP, node-port addresses.

use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;

use super::*;
use crate::testing::{ep, service, slice};

fn node() -> NodeInfo {
    NodeInfo { name: "n1".into() }
}

fn build(spec: serde_json::Value, endpoints: &[(&str, &str)]) -> RuleSet {
    let services = [service("default", "web", spec)];
    let eps: Vec<_> = endpoints.iter().map(|(ip, node)| ep(ip, node)).collect();
    let slices = [slice("default", "web", "1", &[("http", 8080, "TCP")], &eps)];
    build_rules(&services, &slices, &node(), &Config::default())
}

fn chain_text(set: &RuleSet, prefix: &str) -> String {
    let mut out = String::new();
    for (name, chain) in set.chains.iter().filter(|(n, _)| n.starts_with(prefix)) {
        out.push_str(name);
        out.push_str(":\n");
        for rule in &chain.rules {
            out.push_str("  ");
            out.push_str(rule);
            out.push('\n');
        }
    }
    out
}

fn elements(set: &RuleSet, map: &str) -> Vec<String> {
    set.maps[map]
        .elements
        .iter()
        .map(|(k, v)| format!("{k} : {v}"))
        .collect()
}

const SVC: &str = "svc-uarqtuax-default-web-tcp-http";
const SVL: &str = "svl-uarqtuax-default-web-tcp-http";
const EXT: &str = "ext-uarqtuax-default-web-tcp-http";
const EP_LOCAL: &str = "ep-hjeaxlhk-default-web-tcp-http-10-42-0-5-8080";
const EP_REMOTE: &str = "ep-6ijx3la2-default-web-tcp-http-10-42-1-5-8080";

fn both() -> [(&'static str, &'static str); 2] {
    [("10.42.0.5", "n1"), ("10.42.1.5", "n2")]
}

#[test]
fn golden_full_script_for_a_node_port_service_with_affinity() {
    let set = build(
        json!({"type": "NodePort", "clusterIP": "10.43.0.20", "sessionAffinity": "ClientIP",
               "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
               "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}),
        &both(),
    );
    let script = crate::script::render(None, &set, &Default::default());
    assert_eq!(script, include_str!("golden_nodeport_affinity.nft"));
}

#[test]
fn cluster_ip_balances_over_every_ready_endpoint() {
    let set = build(
        json!({"clusterIP": "10.43.0.20", "ports": [{"name": "http", "port": 80}]}),
        &both(),
    );
    assert_eq!(
        chain_text(&set, "svc-"),
        format!(
            "{SVC}:\n  ip daddr 10.43.0.20 ip saddr != 10.42.0.0/16 jump mark-for-masquerade\n  \
             numgen random mod 2 vmap {{ 0 : goto {EP_LOCAL}, 1 : goto {EP_REMOTE} }}\n"
        )
    );
    assert_eq!(
        chain_text(&set, "ep-h"),
        format!(
            "{EP_LOCAL}:\n  ip saddr 10.42.0.5 jump mark-for-masquerade\n  meta l4proto tcp dnat to 10.42.0.5:8080\n"
        )
    );
    assert_eq!(
        elements(&set, "service-ips"),
        [format!("10.43.0.20 . tcp . 80 : goto {SVC}")]
    );
    assert!(elements(&set, "service-nodeports").is_empty());
    assert!(elements(&set, "no-endpoint-services").is_empty());
    assert!(
        !set.chains
            .keys()
            .any(|c| c.starts_with("ext-") || c.starts_with("svl-"))
    );
    assert!(set.sets.is_empty());
}

#[test]
fn a_single_endpoint_is_a_plain_goto() {
    let set = build(
        json!({"clusterIP": "10.43.0.20", "ports": [{"name": "http", "port": 80}]}),
        &[("10.42.0.5", "n1")],
    );
    assert_eq!(
        set.chains[SVC].rules.last().map(String::as_str),
        Some(format!("goto {EP_LOCAL}").as_str())
    );
}

#[test]
fn node_port_with_cluster_policy_masquerades_and_uses_every_endpoint() {
    let set = build(
        json!({"type": "NodePort", "clusterIP": "10.43.0.20", "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}),
        &both(),
    );
    assert_eq!(
        chain_text(&set, "ext-"),
        format!("{EXT}:\n  jump mark-for-masquerade\n  goto {SVC}\n")
    );
    assert_eq!(
        elements(&set, "service-nodeports"),
        [format!("tcp . 30080 : goto {EXT}")]
    );
}

#[test]
fn external_traffic_policy_local_keeps_the_client_address_and_local_endpoints() {
    let spec = json!({"type": "NodePort", "clusterIP": "10.43.0.20", "externalTrafficPolicy": "Local",
                      "ports": [{"name": "http", "port": 80, "nodePort": 30080}]});
    let set = build(spec.clone(), &both());
    assert_eq!(
        chain_text(&set, "ext-"),
        format!(
            "{EXT}:\n  ip saddr 10.42.0.0/16 goto {SVC}\n  fib saddr type local jump mark-for-masquerade\n  \
             fib saddr type local goto {SVC}\n  goto {SVL}\n"
        )
    );
    assert_eq!(
        chain_text(&set, "svl-"),
        format!(
            "{SVL}:\n  ip daddr 10.43.0.20 ip saddr != 10.42.0.0/16 jump mark-for-masquerade\n  goto {EP_LOCAL}\n"
        )
    );
    // No local endpoint: external traffic is dropped, cluster-IP traffic still balanced.
    let set = build(spec, &[("10.42.1.5", "n2")]);
    assert_eq!(
        elements(&set, "no-endpoint-nodeports"),
        ["tcp . 30080 : drop"]
    );
    assert!(elements(&set, "service-nodeports").is_empty());
    assert_eq!(
        elements(&set, "service-ips"),
        [format!("10.43.0.20 . tcp . 80 : goto {SVC}")]
    );
}

#[test]
fn internal_traffic_policy_local_routes_cluster_ips_to_local_endpoints_only() {
    let spec = json!({"clusterIP": "10.43.0.20", "internalTrafficPolicy": "Local", "ports": [{"name": "http", "port": 80}]});
    let set = build(spec.clone(), &both());
    assert_eq!(
        elements(&set, "service-ips"),
        [format!("10.43.0.20 . tcp . 80 : goto {SVL}")]
    );
    assert!(!set.chains.contains_key(SVC));
    assert!(!set.chains.contains_key(EP_REMOTE));
    let set = build(spec, &[("10.42.1.5", "n2")]);
    assert_eq!(
        elements(&set, "no-endpoint-services"),
        ["10.43.0.20 . tcp . 80 : drop"]
    );
}

#[test]
fn services_without_endpoints_are_rejected() {
    let set = build(
        json!({"type": "LoadBalancer", "clusterIP": "10.43.0.20", "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}),
        &[],
    );
    assert_eq!(
        elements(&set, "no-endpoint-services"),
        ["10.43.0.20 . tcp . 80 : goto reject-chain"]
    );
    assert_eq!(
        elements(&set, "no-endpoint-nodeports"),
        ["tcp . 30080 : goto reject-chain"]
    );
    assert!(elements(&set, "service-ips").is_empty());
    assert!(
        !set.chains
            .keys()
            .any(|c| c.starts_with("svc-") || c.starts_with("ep-") || c.starts_with("ext-"))
    );
    assert_eq!(
        set.chains["reject-chain"].rules,
        ["meta l4proto tcp reject with tcp reset", "reject"]
    );
}

#[test]
fn headless_services_get_no_rules() {
    let set = build(
        json!({"clusterIP": "None", "ports": [{"name": "http", "port": 80}]}),
        &both(),
    );
    let empty = build_from_ports(&[], &Config::default());
    assert_eq!(set, empty);
}

#[test]
fn udp_ports_dnat_udp_and_stale_udp_endpoints_are_detected() {
    let services = [service(
        "kube-system",
        "dns",
        json!({"clusterIP": "10.43.0.53", "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]}),
    )];
    let with = |ips: &[&str]| {
        let eps: Vec<_> = ips.iter().map(|ip| ep(ip, "n1")).collect();
        build_rules(
            &services,
            &[slice(
                "kube-system",
                "dns",
                "1",
                &[("dns", 1053, "UDP")],
                &eps,
            )],
            &node(),
            &Config::default(),
        )
    };
    let before = with(&["10.42.0.2", "10.42.0.3"]);
    assert!(
        before
            .chains
            .values()
            .flat_map(|c| &c.rules)
            .any(|r| r == "meta l4proto udp dnat to 10.42.0.2:1053")
    );
    assert_eq!(
        elements(&before, "service-ips")[0].split(" : ").next(),
        Some("10.43.0.53 . udp . 53")
    );
    let after = with(&["10.42.0.3"]);
    let stale: Vec<String> = crate::nft::stale_udp_endpoints(&before, &after)
        .into_iter()
        .collect();
    assert_eq!(stale, ["10.42.0.2"]);
    assert!(crate::nft::stale_udp_endpoints(&after, &before).is_empty());
}

#[test]
fn node_port_addresses_restrict_where_node_ports_answer() {
    let config = Config {
        nodeport_addresses: vec![
            "192.168.0.2".parse().expect("ip"),
            "192.168.0.3".parse().expect("ip"),
        ],
        ..Config::default()
    };
    let set = build_from_ports(&[], &config);
    assert_eq!(
        set.chains["services"].rules[1],
        "ip daddr { 192.168.0.2, 192.168.0.3 } meta l4proto . th dport vmap @service-nodeports"
    );
}

#[test]
fn affinity_timeout_is_part_of_the_set_identity() {
    let spec = |t: u32| {
        json!({"clusterIP": "10.43.0.20", "sessionAffinity": "ClientIP",
               "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": t}}, "ports": [{"name": "http", "port": 80}]})
    };
    let a = build(spec(60), &both());
    let b = build(spec(120), &both());
    assert_eq!(a.sets.len(), 2);
    assert!(a.sets.keys().all(|k| !b.sets.contains_key(k)));
    assert!(b.sets.values().all(|d| d.contains("timeout 120s")));
}

#[test]
fn names_are_stable_and_distinct() {
    assert_eq!(
        short_hash("default/web/tcp/http"),
        short_hash("default/web/tcp/http")
    );
    assert_ne!(short_hash("a-b/c/tcp/"), short_hash("a/b-c/tcp/"));
    assert_eq!(short_hash("x").len(), 8);
}

#[test]
fn the_node_local_dns_address_is_never_claimed_by_a_service() {
    let services = [service(
        "kube-system",
        "kube-dns",
        json!({"clusterIP": "10.43.0.10", "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]}),
    )];
    let config = Config {
        node_local_ips: vec!["10.43.0.10".parse().expect("ip")],
        ..Config::default()
    };
    let set = build_rules(&services, &[] as &[EndpointSlice], &node(), &config);
    assert_eq!(set, build_from_ports(&[], &config));
    let without = build_rules(
        &services,
        &[] as &[EndpointSlice],
        &node(),
        &Config::default(),
    );
    assert_eq!(
        elements(&without, "no-endpoint-services"),
        ["10.43.0.10 . udp . 53 : goto reject-chain"]
    );
}
