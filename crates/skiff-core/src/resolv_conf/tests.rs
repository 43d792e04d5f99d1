//! Tests for the pod resolv.conf per dnsPolicy and dnsConfig, and the node resolv.conf parser.

use k8s_openapi::api::core::v1::PodSpec;
use serde_json::json;

use super::*;

fn cluster() -> ClusterDns {
    ClusterDns {
        nameservers: vec!["10.43.0.10".parse().expect("ip")],
        domain: "cluster.local".into(),
    }
}

fn host() -> HostResolvConf {
    parse(
        "# generated\nnameserver 192.168.1.1\nnameserver fe80::1%eth0\nnameserver 1.1.1.1 ; second\nsearch corp.example lab.example\noptions edns0 timeout:2\n",
    )
}

fn spec(value: serde_json::Value) -> PodSpec {
    let mut v = value;
    v["containers"] = json!([]);
    serde_json::from_value(v).expect("pod spec")
}

#[test]
fn parses_the_host_resolv_conf() {
    let h = host();
    assert_eq!(
        h.nameservers,
        vec![
            "192.168.1.1".parse::<IpAddr>().expect("ip"),
            "1.1.1.1".parse().expect("ip")
        ]
    );
    assert_eq!(h.search, vec!["corp.example", "lab.example"]);
    assert_eq!(h.options, vec!["edns0", "timeout:2"]);
}

#[test]
fn cluster_first_is_the_default() {
    let text = pod_resolv_conf(&spec(json!({})), "shop", &cluster(), &host());
    assert_eq!(
        text,
        "nameserver 10.43.0.10\nsearch shop.svc.cluster.local svc.cluster.local cluster.local corp.example lab.example\noptions ndots:5\n"
    );
}

#[test]
fn default_policy_copies_the_host() {
    let text = pod_resolv_conf(
        &spec(json!({"dnsPolicy": "Default"})),
        "shop",
        &cluster(),
        &host(),
    );
    assert_eq!(
        text,
        "nameserver 192.168.1.1\nnameserver 1.1.1.1\nsearch corp.example lab.example\noptions edns0 timeout:2\n"
    );
}

#[test]
fn host_network_with_cluster_first_falls_back_to_default_unless_with_host_net() {
    let fallback = pod_resolv_conf(
        &spec(json!({"hostNetwork": true})),
        "a",
        &cluster(),
        &host(),
    );
    assert!(fallback.starts_with("nameserver 192.168.1.1\n"));
    let cluster_dns = pod_resolv_conf(
        &spec(json!({"hostNetwork": true, "dnsPolicy": "ClusterFirstWithHostNet"})),
        "a",
        &cluster(),
        &host(),
    );
    assert!(cluster_dns.starts_with("nameserver 10.43.0.10\nsearch a.svc.cluster.local"));
}

#[test]
fn none_policy_uses_only_dns_config() {
    let text = pod_resolv_conf(
        &spec(json!({"dnsPolicy": "None", "dnsConfig": {
            "nameservers": ["9.9.9.9"], "searches": ["x.example"],
            "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}})),
        "a",
        &cluster(),
        &host(),
    );
    assert_eq!(
        text,
        "nameserver 9.9.9.9\nsearch x.example\noptions ndots:2 edns0\n"
    );
    let empty = pod_resolv_conf(
        &spec(json!({"dnsPolicy": "None"})),
        "a",
        &cluster(),
        &host(),
    );
    assert_eq!(empty, "");
}

#[test]
fn dns_config_merges_into_cluster_first() {
    let text = pod_resolv_conf(
        &spec(json!({"dnsConfig": {
            "nameservers": ["10.43.0.10", "8.8.8.8", "8.8.4.4", "1.0.0.1"],
            "searches": ["svc.cluster.local", "extra.example"],
            "options": [{"name": "ndots", "value": "1"}, {"name": "single-request"}]}})),
        "a",
        &cluster(),
        &host(),
    );
    assert_eq!(
        text,
        "nameserver 10.43.0.10\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n\
         search a.svc.cluster.local svc.cluster.local cluster.local corp.example lab.example extra.example\n\
         options ndots:1 single-request\n"
    );
}

#[test]
fn loopback_nameservers_of_the_node_stay_on_the_host_network() {
    let node = parse("nameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch lan\n");
    let own_namespace = pod_resolv_conf(
        &spec(json!({"dnsPolicy": "Default"})),
        "a",
        &cluster(),
        &node,
    );
    assert_eq!(own_namespace, "nameserver 10.0.0.2\nsearch lan\n");
    let host_network = pod_resolv_conf(&spec(json!({"hostNetwork": true})), "a", &cluster(), &node);
    assert_eq!(
        host_network,
        "nameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch lan\n"
    );
}

#[test]
fn cluster_first_without_a_cluster_dns_falls_back_to_the_node() {
    let no_dns = ClusterDns {
        nameservers: vec![],
        domain: "cluster.local".into(),
    };
    let text = pod_resolv_conf(&spec(json!({})), "a", &no_dns, &host());
    assert_eq!(
        text,
        "nameserver 192.168.1.1\nnameserver 1.1.1.1\nsearch corp.example lab.example\noptions edns0 timeout:2\n"
    );
}

#[test]
fn several_cluster_nameservers_and_a_trailing_dot_in_the_domain() {
    let two = ClusterDns {
        nameservers: vec![
            "10.43.0.10".parse().expect("ip"),
            "10.43.0.11".parse().expect("ip"),
        ],
        domain: "corp.internal.".into(),
    };
    let text = pod_resolv_conf(&spec(json!({})), "web", &two, &HostResolvConf::default());
    assert_eq!(
        text,
        "nameserver 10.43.0.10\nnameserver 10.43.0.11\nsearch web.svc.corp.internal svc.corp.internal corp.internal\noptions ndots:5\n"
    );
}
