//! IPAM never hands out a range twice.

use serde_json::json;

use super::*;

fn node(name: &str, cidr: Option<&str>) -> Node {
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"podCIDR": cidr}}))
        .unwrap_or_default()
}

fn cluster() -> Cidr {
    Cidr::parse("10.42.0.0/16").unwrap_or(Cidr {
        base: 0,
        prefix: 16,
    })
}

#[test]
fn lowest_free_ranges_and_never_twice() {
    let nodes = vec![
        node("a", Some("10.42.0.0/24")),
        node("b", None),
        node("c", Some("10.42.2.0/24")),
        node("d", None),
        node("e", None),
    ];
    let changes = plan(cluster(), &nodes, &BTreeSet::new());
    assert_eq!(
        changes,
        vec![
            Change::Assign {
                node: "b".into(),
                cidr: "10.42.1.0/24".into()
            },
            Change::Assign {
                node: "d".into(),
                cidr: "10.42.3.0/24".into()
            },
            Change::Assign {
                node: "e".into(),
                cidr: "10.42.4.0/24".into()
            },
        ]
    );
}

#[test]
fn many_nodes_get_distinct_ranges_and_exhaustion_is_reported() {
    let small = Cidr::parse("10.42.0.0/22").unwrap_or(Cidr {
        base: 0,
        prefix: 22,
    });
    let nodes: Vec<Node> = (0..6).map(|i| node(&format!("n{i}"), None)).collect();
    let changes = plan(small, &nodes, &BTreeSet::new());
    let cidrs: std::collections::BTreeSet<String> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Assign { cidr, .. } => Some(cidr.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(cidrs.len(), 4);
    assert_eq!(
        changes
            .iter()
            .filter(|c| matches!(c, Change::Event { .. }))
            .count(),
        2
    );
    // Applying the assignments and planning again assigns nothing new.
    let assigned: Vec<Node> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Assign { node: n, cidr } => Some(node(n, Some(cidr))),
            _ => None,
        })
        .collect();
    assert!(plan(small, &assigned, &BTreeSet::new()).is_empty());
}

#[test]
fn cidr_parsing() {
    assert!(Cidr::parse("10.42.0.0/16").is_ok());
    assert!(Cidr::parse("10.42.0.0/25").is_err());
    assert!(Cidr::parse("nonsense").is_err());
    // Ranges outside the cluster CIDR are ignored, not counted.
    let nodes = vec![node("a", Some("192.168.0.0/24")), node("b", None)];
    assert_eq!(
        plan(cluster(), &nodes, &BTreeSet::new()),
        vec![Change::Assign {
            node: "b".into(),
            cidr: "10.42.0.0/24".into()
        }]
    );
}

#[test]
fn exhaustion_is_reported_once_per_node() {
    let small = Cidr::parse("10.42.0.0/24").unwrap_or(Cidr {
        base: 0,
        prefix: 24,
    });
    let nodes: Vec<Node> = (0..3).map(|i| node(&format!("n{i}"), None)).collect();
    let reported: BTreeSet<String> = ["n1".to_string()].into_iter().collect();
    let events: Vec<String> = plan(small, &nodes, &reported)
        .into_iter()
        .filter_map(|c| match c {
            Change::Event { node, .. } => Some(node),
            _ => None,
        })
        .collect();
    assert_eq!(events, vec!["n2".to_string()]);
}
