//! Tests for the nft transaction: listing parser, full and incremental syncs, stale objects, map element changes.

use serde_json::json;

use super::*;
use crate::model::NodeInfo;
use crate::rules::{Config, build_rules};
use crate::testing::{ep, service, slice};

fn rules(endpoints: &[&str]) -> RuleSet {
    let services = [service(
        "d",
        "web",
        json!({"clusterIP": "10.43.0.2", "ports": [{"port": 80}]}),
    )];
    let eps: Vec<_> = endpoints.iter().map(|ip| ep(ip, "n1")).collect();
    let slices = [slice("d", "web", "1", &[("", 8080, "TCP")], &eps)];
    build_rules(
        &services,
        &slices,
        &NodeInfo { name: "n1".into() },
        &Config::default(),
    )
}

#[test]
fn parses_a_terse_listing() {
    let listing = "table ip skiff {\n\tmap service-ips {\n\t\ttype ipv4_addr . inet_proto . inet_service : verdict\n\t}\n\tset aff-x-10-42-0-1 {\n\t\ttype ipv4_addr\n\t}\n\tchain nat-prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\t\tjump services\n\t}\n\tchain svc-abc-d-web-tcp {\n\t}\n}\n";
    let existing = parse_listing(listing);
    assert_eq!(existing.maps.iter().collect::<Vec<_>>(), ["service-ips"]);
    assert_eq!(
        existing.sets.iter().collect::<Vec<_>>(),
        ["aff-x-10-42-0-1"]
    );
    assert_eq!(
        existing.chains.iter().collect::<Vec<_>>(),
        ["nat-prerouting", "svc-abc-d-web-tcp"]
    );
}

#[test]
fn every_command_names_only_our_table() {
    let text = render(None, &rules(&["10.42.0.1"]), &Existing::default());
    for line in text.lines() {
        assert!(line.contains(" ip skiff"), "{line}");
    }
    assert!(cleanup().lines().all(|l| l.ends_with("ip skiff")));
}

#[test]
fn a_configured_table_is_the_only_one_named() {
    let before = rules(&["10.42.0.1"]);
    let full = render_in("skiff-n1", None, &before, &Existing::default());
    let incremental = render_in(
        "skiff-n1",
        Some(&before),
        &rules(&["10.42.0.2"]),
        &Existing::default(),
    );
    for line in full.lines().chain(incremental.lines()) {
        assert!(
            line.contains(" ip skiff-n1 ") || line.ends_with(" ip skiff-n1"),
            "{line}"
        );
    }
    assert_eq!(
        cleanup_in("skiff-n1"),
        "add table ip skiff-n1\ndelete table ip skiff-n1\n"
    );
    assert!(crate::config::valid_table_name("skiff-n1.example"));
    assert!(!crate::config::valid_table_name("1skiff"));
    assert!(!crate::config::valid_table_name("skiff;flush ruleset"));
}

#[test]
fn full_sync_removes_stale_objects_after_flushing_them() {
    let mut existing = Existing::default();
    existing.chains.insert("svc-old".into());
    existing.chains.insert("nat-prerouting".into());
    existing.maps.insert("old-map".into());
    existing.sets.insert("aff-old".into());
    let text = render(None, &rules(&["10.42.0.1"]), &existing);
    let flush = text.find("flush chain ip skiff svc-old").expect("flushed");
    let delete = text.find("delete chain ip skiff svc-old").expect("deleted");
    assert!(flush < delete);
    assert!(text.contains("delete map ip skiff old-map"));
    assert!(text.contains("delete set ip skiff aff-old"));
    assert!(!text.contains("delete chain ip skiff nat-prerouting"));
}

#[test]
fn incremental_sync_touches_only_what_changed() {
    let before = rules(&["10.42.0.1", "10.42.0.2"]);
    let after = rules(&["10.42.0.1", "10.42.0.3"]);
    assert_eq!(
        render(Some(&before), &before, &Existing::default()),
        "add table ip skiff\n"
    );
    let text = render(Some(&before), &after, &Existing::default());
    // The service chain changes (new numgen arm), the endpoint chain of .2 goes, .3 comes.
    assert!(text.contains("-10-42-0-3-8080\n"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("delete chain ip skiff ep-") && l.contains("10-42-0-2"))
    );
    assert!(!text.contains("nat-prerouting"));
    assert!(
        !text.contains("10-42-0-1-8080\n")
            || !text.contains("flush chain ip skiff ep-")
            || text
                .lines()
                .filter(|l| l.starts_with("flush chain") && l.contains("10-42-0-1"))
                .count()
                == 0
    );
    assert!(
        !text.contains("add element"),
        "map entries did not change: {text}"
    );
}

#[test]
fn map_changes_delete_old_keys_and_add_new_ones() {
    let before = rules(&["10.42.0.1"]);
    let after = rules(&[]);
    let text = render(Some(&before), &after, &Existing::default());
    assert!(
        text.contains("delete element ip skiff service-ips { 10.43.0.2 . tcp . 80 }"),
        "{text}"
    );
    assert!(
        text.contains(
            "add element ip skiff no-endpoint-services { 10.43.0.2 . tcp . 80 : goto reject-chain }"
        ),
        "{text}"
    );
}
