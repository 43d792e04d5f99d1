//! Tests for the pod network plan: routes to other nodes, DOCKER-USER rules, listing parsers.

use k8s_openapi::api::core::v1::Node;
use serde_json::json;

use super::*;

fn node(name: &str, ip: &str, cidr: Option<&str>) -> Node {
    let mut spec = json!({});
    if let Some(c) = cidr {
        spec["podCIDR"] = json!(c);
    }
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": spec,
        "status": {"addresses": [{"type": "Hostname", "address": name}, {"type": "InternalIP", "address": ip}]}
    }))
    .expect("node")
}

fn cidr(s: &str) -> Ipv4Net {
    s.parse().expect("cidr")
}

#[test]
fn routes_to_every_other_node_with_a_pod_cidr() {
    let nodes = [
        node("n1", "192.168.0.1", Some("10.42.0.0/24")),
        node("n2", "192.168.0.2", Some("10.42.1.0/24")),
        node("n3", "192.168.0.3", None),
        node("n4", "192.168.0.1", Some("10.42.3.0/24")),
        node("n5", "192.168.0.5", Some("10.42.5.0/24")),
    ];
    let plan = plan(&nodes, "n1", cidr("10.42.0.0/16"));
    assert_eq!(plan.own_cidr, Some(cidr("10.42.0.0/24")));
    assert_eq!(
        plan.routes,
        vec![
            Route {
                destination: cidr("10.42.1.0/24"),
                via: "192.168.0.2".parse().expect("ip")
            },
            Route {
                destination: cidr("10.42.5.0/24"),
                via: "192.168.0.5".parse().expect("ip")
            },
        ]
    );
    assert_eq!(plan.docker_user_rules.len(), 2);
    assert_eq!(
        plan.docker_user_rules[0][..2],
        ["-s".to_string(), "10.42.0.0/16".to_string()]
    );
    assert_eq!(
        plan.docker_user_rules[1][..2],
        ["-d".to_string(), "10.42.0.0/16".to_string()]
    );
}

#[test]
fn an_unknown_node_still_routes_to_the_others() {
    let nodes = [node("n2", "192.168.0.2", Some("10.42.1.0/24"))];
    let plan = plan(&nodes, "n1", cidr("10.42.0.0/16"));
    assert_eq!(plan.own_cidr, None);
    assert_eq!(plan.routes.len(), 1);
}

#[test]
fn parses_our_routes() {
    let text = "10.42.1.0/24 via 192.168.0.2 dev eth0 proto 44 \n10.42.5.0/24 via 192.168.0.5 dev eth0 proto 44\n";
    assert_eq!(
        parse_routes(text),
        vec![cidr("10.42.1.0/24"), cidr("10.42.5.0/24")]
    );
}

#[test]
fn parses_bridge_port_names() {
    let text = "3: p1@if2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue master br0 state UP\n4: vethab12: <BROADCAST> mtu 1500 master br0\n";
    assert_eq!(parse_link_names(text), ["p1", "vethab12"]);
}
