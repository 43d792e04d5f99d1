//! Tests for label and field selectors: parsing, errors, matching and printing.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use serde_json::json;

use super::*;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn label_selectors_parse_and_print_canonically() {
    let cases = [
        ("", ""),
        ("app=web", "app=web"),
        ("app==web", "app==web"),
        ("app != web", "app!=web"),
        ("tier in (front, back),app", "app,tier in (back,front)"),
        ("env notin (prod)", "env notin (prod)"),
        ("!canary", "!canary"),
        ("b=1,a=2", "a=2,b=1"),
        ("app=", "app="),
        ("example.com/role=db", "example.com/role=db"),
        ("x in (a,a)", "x in (a)"),
        ("n>3", "n>3"),
    ];
    for (input, printed) in cases {
        let selector = LabelSelector::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(selector.to_string(), printed, "{input}");
    }
}

#[test]
fn label_selector_errors_say_what_was_wrong() {
    let cases = [
        (
            "app=web,",
            "unable to parse requirement: found '', expected: identifier",
        ),
        (
            "=web",
            "unable to parse requirement: found '=', expected: identifier",
        ),
        (
            "app web",
            "unable to parse requirement: found 'web', expected: '=', '!=', '==', 'in', 'notin'",
        ),
        (
            "app in web",
            "unable to parse requirement: found 'web', expected: '('",
        ),
        (
            "app in (a b)",
            "unable to parse requirement: found 'b', expected: ',', ')' or identifier",
        ),
        (
            "app=a=b",
            "unable to parse requirement: found '=', expected: ','",
        ),
        (
            "n>x",
            "unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer, not \"x\"",
        ),
    ];
    for (input, message) in cases {
        let error = LabelSelector::parse(input)
            .err()
            .unwrap_or_else(|| panic!("{input} parsed"));
        assert_eq!(error.to_string(), message, "{input}");
    }
    assert!(matches!(
        LabelSelector::parse("-bad=x"),
        Err(Error::InvalidKey { .. })
    ));
    assert!(matches!(
        LabelSelector::parse("app=a$b"),
        Err(Error::InvalidValue { .. })
    ));
}

#[test]
fn label_selectors_match() {
    let web = labels(&[("app", "web"), ("tier", "front"), ("n", "5")]);
    let cases = [
        ("", true),
        ("app=web", true),
        ("app=db", false),
        ("app!=db", true),
        ("missing!=x", true),
        ("tier in (front,back)", true),
        ("tier notin (front)", false),
        ("missing notin (front)", true),
        ("app", true),
        ("!app", false),
        ("!missing", true),
        ("n>4", true),
        ("n<5", false),
        ("app=web,tier=back", false),
    ];
    for (input, expected) in cases {
        let selector = LabelSelector::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(selector.matches(&web), expected, "{input}");
    }
    let object = json!({"metadata": {"labels": {"app": "web"}}});
    assert!(
        LabelSelector::parse("app=web")
            .unwrap()
            .matches_object(&object)
    );
    assert!(
        !LabelSelector::parse("app")
            .unwrap()
            .matches_object(&json!({}))
    );
}

#[test]
fn label_selector_objects() {
    let selector = LabelSelector::from_json(&json!({
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["front", "back"]},
            {"key": "canary", "operator": "DoesNotExist"}
        ]
    }))
    .unwrap();
    assert_eq!(selector.to_string(), "app=web,!canary,tier in (back,front)");
    assert_eq!(selector.requirements().len(), 3);
    assert!(selector.matches(&labels(&[("app", "web"), ("tier", "back")])));
    assert!(!selector.matches(&labels(&[
        ("app", "web"),
        ("tier", "back"),
        ("canary", "1")
    ])));

    let nothing = LabelSelector::from_json(&json!(null)).unwrap();
    assert!(!nothing.matches(&labels(&[])));
    let everything = LabelSelector::from_json(&json!({})).unwrap();
    assert!(everything.is_everything() && everything.matches(&labels(&[])));

    let errors = [
        (
            json!({"matchExpressions": [{"key": "a", "operator": "Near"}]}),
            "\"Near\" is not a valid label selector operator",
        ),
        (
            json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}),
            "unable to parse requirement: values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty",
        ),
        (
            json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}),
            "unable to parse requirement: values: Invalid value: [\"x\"]: values set must be empty for exists and does not exist",
        ),
        (
            json!({"matchLabels": {"a": 1}}),
            "invalid label selector: matchLabels[a] must be a string",
        ),
        (
            json!("app=web"),
            "invalid label selector: a label selector must be an object",
        ),
    ];
    for (input, message) in errors {
        assert_eq!(
            LabelSelector::from_json(&input).unwrap_err().to_string(),
            message
        );
    }
}

#[test]
fn field_selectors_parse_with_escapes() {
    let selector =
        FieldSelector::parse("metadata.name=a\\,b,status.phase!=Failed,spec.nodeName==n1").unwrap();
    let terms: Vec<(&str, FieldOperator, &str)> = selector
        .requirements()
        .iter()
        .map(|t| (t.field.as_str(), t.operator, t.value.as_str()))
        .collect();
    assert_eq!(
        terms,
        vec![
            ("metadata.name", FieldOperator::Equals, "a,b"),
            ("status.phase", FieldOperator::NotEquals, "Failed"),
            ("spec.nodeName", FieldOperator::Equals, "n1"),
        ]
    );
    assert_eq!(selector.exact_value("metadata.name"), Some("a,b"));
    assert!(FieldSelector::parse("").unwrap().is_everything());
    assert_eq!(
        FieldSelector::parse("metadata.name")
            .unwrap_err()
            .to_string(),
        "invalid selector: 'metadata.name'; can't understand 'metadata.name'"
    );
    assert!(matches!(
        FieldSelector::parse("a=b\\x"),
        Err(Error::InvalidEscape { .. })
    ));
}

#[test]
fn field_selectors_check_supported_fields() {
    let ok = [
        ("", "pods", "spec.nodeName=n1,status.phase!=Succeeded"),
        (
            "",
            "events",
            "involvedObject.kind=Deployment,involvedObject.uid=u,reason=Started",
        ),
        ("", "secrets", "type=Opaque"),
        ("", "nodes", "spec.unschedulable=true"),
        ("", "configmaps", "metadata.namespace=default"),
        ("batch", "jobs", "status.successful=1"),
    ];
    for (group, resource, input) in ok {
        FieldSelector::parse(input)
            .unwrap()
            .check_supported(group, resource)
            .unwrap();
    }
    let error = FieldSelector::parse("spec.foo=x")
        .unwrap()
        .check_supported("", "pods")
        .unwrap_err();
    assert_eq!(error.to_string(), "field label not supported: spec.foo");
    assert!(
        FieldSelector::parse("type=x")
            .unwrap()
            .check_supported("", "configmaps")
            .is_err()
    );
}

#[test]
fn field_values_are_read_like_kubernetes() {
    let pod = json!({"metadata": {"name": "p", "namespace": "default"},
                     "spec": {"nodeName": "n1"}, "status": {"phase": "Running", "podIPs": [{"ip": "10.42.0.5"}]}});
    let cases = [
        ("", "pods", &pod, "spec.nodeName", "n1"),
        ("", "pods", &pod, "status.podIP", "10.42.0.5"),
        ("", "pods", &pod, "spec.schedulerName", ""),
        ("", "pods", &pod, "spec.hostNetwork", "false"),
        ("", "pods", &pod, "metadata.namespace", "default"),
    ];
    for (group, resource, object, field, expected) in cases {
        assert_eq!(
            field_value(group, resource, object, field).as_deref(),
            Some(expected),
            "{field}"
        );
    }
    let node = json!({"spec": {"unschedulable": true}});
    assert_eq!(
        field_value("", "nodes", &node, "spec.unschedulable").as_deref(),
        Some("true")
    );
    let job = json!({"status": {"succeeded": 2}});
    assert_eq!(
        field_value("batch", "jobs", &job, "status.successful").as_deref(),
        Some("2")
    );
    assert_eq!(
        field_value("apps", "replicasets", &json!({}), "status.replicas").as_deref(),
        Some("0")
    );
    let event =
        json!({"involvedObject": {"kind": "Pod", "name": "p"}, "source": {"component": "kubelet"}});
    assert_eq!(
        field_value("", "events", &event, "source").as_deref(),
        Some("kubelet")
    );
    assert_eq!(
        field_value("", "events", &event, "involvedObject.kind").as_deref(),
        Some("Pod")
    );
    let new_event = json!({"regarding": {"kind": "Pod"}, "reportingController": "skiff"});
    assert_eq!(
        field_value("events.k8s.io", "events", &new_event, "involvedObject.kind").as_deref(),
        Some("Pod")
    );
    assert_eq!(
        field_value("events.k8s.io", "events", &new_event, "reportingComponent").as_deref(),
        Some("skiff")
    );
    assert_eq!(field_value("", "pods", &pod, "spec.foo"), None);

    let selector = FieldSelector::parse("spec.nodeName=n1,status.phase!=Failed").unwrap();
    assert!(selector.matches("", "pods", &pod));
    assert!(
        !FieldSelector::parse("status.phase!=Running")
            .unwrap()
            .matches("", "pods", &pod)
    );
}
