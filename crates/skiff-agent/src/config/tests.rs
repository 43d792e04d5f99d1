//! Tests for configuration validation and pod CIDR helpers.

use super::*;

#[test]
fn validation_reports_every_problem() {
    let config = Config {
        servers: vec!["http://x".into()],
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

#[test]
fn every_server_is_checked() {
    let valid = Config {
        servers: vec![
            "https://10.0.0.1:6443".into(),
            "https://10.0.0.2:6443".into(),
        ],
        token: format!("skiffnode1.{}.{}", "ab".repeat(32), "0123456789abcdef"),
        node_name: "node-1".into(),
        ..Config::default()
    };
    assert_eq!(valid.validate(), Ok(()));
    let cases: [(Vec<&str>, &str); 4] = [
        (vec![], "no API server given"),
        (
            vec!["https://a:6443", "http://b:6443"],
            "\"http://b:6443\" must be an https:// URL",
        ),
        (vec!["https://a:6443", "https://"], "is not a valid URL"),
        (vec!["https://a:6443", "https://a:6443"], "named twice"),
    ];
    for (servers, problem) in cases {
        let config = Config {
            servers: servers.iter().map(|s| s.to_string()).collect(),
            ..valid.clone()
        };
        let problems = config.validate().expect_err("invalid");
        assert_eq!(problems.len(), 1, "{servers:?}: {problems:?}");
        assert!(problems[0].contains(problem), "{servers:?}: {problems:?}");
    }
}
