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

#[test]
fn hairpin_is_switched_on_for_every_port_of_the_bridge_once() {
    let sys = tempfile::tempdir().expect("tempdir");
    let brif = sys.path().join("br-0123456789ab/brif");
    for (port, mode) in [("veth1", "0\n"), ("veth2", "1\n"), ("veth3", "0\n")] {
        std::fs::create_dir_all(brif.join(port)).expect("mkdir");
        std::fs::write(brif.join(port).join("hairpin_mode"), mode).expect("write");
    }
    assert_eq!(
        ensure_hairpin(sys.path(), "br-0123456789ab").expect("hairpin"),
        2
    );
    for port in ["veth1", "veth2", "veth3"] {
        let mode = std::fs::read_to_string(brif.join(port).join("hairpin_mode")).expect("read");
        assert_eq!(mode.trim(), "1", "{port}");
    }
    assert_eq!(
        ensure_hairpin(sys.path(), "br-0123456789ab").expect("again"),
        0
    );
}

#[test]
fn hairpin_on_a_missing_or_odd_bridge_says_what_failed() {
    let sys = tempfile::tempdir().expect("tempdir");
    let missing = ensure_hairpin(sys.path(), "br-gone").expect_err("no such bridge");
    let text = missing.to_string();
    assert!(
        text.contains("br-gone") && text.contains("writable /sys"),
        "{text}"
    );
    assert!(ensure_hairpin(sys.path(), "../etc").is_err());
    assert!(ensure_hairpin(sys.path(), "").is_err());
}
