//! Tests for configuration validation and pod CIDR helpers.

use super::*;

#[test]
fn validation_reports_every_problem() {
    let config = Config {
        server: "http://x".into(),
        token: "nope".into(),
        node_name: "Bad_Name".into(),
        pod_cidr: Some("10.42.0.0/33".into()),
        ..Config::default()
    };
    let problems = config.validate().expect_err("invalid");
    assert_eq!(problems.len(), 4, "{problems:?}");
}

#[test]
fn cidrs() {
    assert_eq!(
        parse_cidr("10.42.7.9/24"),
        Some((Ipv4Addr::new(10, 42, 7, 0), 24))
    );
    assert_eq!(gateway("10.42.7.0/24").as_deref(), Some("10.42.7.1"));
    let derived = derived_pod_cidr("node-a");
    assert!(parse_cidr(&derived).is_some());
    assert_eq!(derived, derived_pod_cidr("node-a"));
    assert_ne!(derived, derived_pod_cidr("node-b"));
}
