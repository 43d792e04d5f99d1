//! Tests for name rules, label and annotation checks, generated names and namespaces.

#![allow(clippy::unwrap_used, clippy::type_complexity)]

use std::collections::BTreeMap;

use super::*;

#[test]
fn name_rules_accept_and_reject() {
    let cases: &[(NameRule, &str, bool)] = &[
        (NameRule::Dns1123Subdomain, "web", true),
        (NameRule::Dns1123Subdomain, "web.example.com", true),
        (NameRule::Dns1123Subdomain, "0abc", true),
        (NameRule::Dns1123Subdomain, "Web", false),
        (NameRule::Dns1123Subdomain, "-web", false),
        (NameRule::Dns1123Subdomain, "web.", false),
        (NameRule::Dns1123Subdomain, "", false),
        (NameRule::Dns1123Subdomain, "a_b", false),
        (NameRule::Dns1123Label, "kube-system", true),
        (NameRule::Dns1123Label, "a.b", false),
        (NameRule::Dns1035Label, "web-1", true),
        (NameRule::Dns1035Label, "1web", false),
        (NameRule::PathSegment, "system:controller:foo", true),
        (NameRule::PathSegment, "..", false),
        (NameRule::PathSegment, "a/b", false),
        (NameRule::PathSegment, "a%b", false),
        (NameRule::Dns1123Subdomain, "ünïcode", false),
    ];
    for (rule, name, valid) in cases {
        assert_eq!(
            validate_name(*rule, name).is_empty(),
            *valid,
            "{rule:?} {name:?}"
        );
    }
    assert_eq!(
        dns1123_label(&"a".repeat(64)),
        vec!["must be no more than 63 characters".to_string()]
    );
    assert!(dns1123_subdomain(&"a".repeat(253)).is_empty());
    assert_eq!(dns1123_subdomain(&"a".repeat(254)).len(), 1);
}

#[test]
fn rules_per_resource() {
    assert_eq!(rule_for("", "namespaces"), NameRule::Dns1123Label);
    assert_eq!(rule_for("", "services"), NameRule::Dns1035Label);
    assert_eq!(
        rule_for("rbac.authorization.k8s.io", "clusterroles"),
        NameRule::PathSegment
    );
    assert_eq!(rule_for("apps", "deployments"), NameRule::Dns1123Subdomain);
}

#[test]
fn qualified_names_and_label_values() {
    let keys: &[(&str, usize)] = &[
        ("app", 0),
        ("app.kubernetes.io/name", 0),
        ("kubernetes.io/metadata.name", 0),
        ("My_Key.1", 0),
        ("/name", 1),
        ("example.com/", 1),
        ("a/b/c", 1),
        ("-bad", 1),
        ("Bad.Prefix/x", 1),
    ];
    for (key, n_reasons) in keys {
        assert_eq!(
            qualified_name(key).len(),
            *n_reasons,
            "{key:?}: {:?}",
            qualified_name(key)
        );
    }
    assert!(label_value("").is_empty());
    assert!(label_value("v1.2_3-x").is_empty());
    assert_eq!(label_value("a b").len(), 1);
    assert_eq!(label_value(&"v".repeat(64)).len(), 1);
}

#[test]
fn label_and_annotation_maps() {
    let path = field::Path::new("metadata").child("labels");
    let labels = BTreeMap::from([
        ("app".to_string(), "web".to_string()),
        ("bad key".to_string(), "x y".to_string()),
    ]);
    let errors: Vec<String> = validate_labels(&labels, &path)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(errors.len(), 2);
    assert!(
        errors[0]
            .starts_with("metadata.labels: Invalid value: \"bad key\": name part must consist")
    );
    assert!(
        errors[1].starts_with("metadata.labels[bad key]: Invalid value: \"x y\": a valid label")
    );

    let path = field::Path::new("metadata").child("annotations");
    let big = BTreeMap::from([("a".to_string(), "x".repeat(ANNOTATIONS_MAX_BYTES))]);
    let errors = validate_annotations(&big, &path);
    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors[0].to_string(),
        "metadata.annotations: Too long: may not be more than 262144 bytes"
    );
    let fine = BTreeMap::from([(
        "Example.com/Key".to_string(),
        "anything at all\n".to_string(),
    )]);
    assert!(validate_annotations(&fine, &path).is_empty());
}

#[test]
fn generated_names_fit() {
    assert_eq!(generate_name("web-", "x7k2p"), "web-x7k2p");
    let long = "a".repeat(70);
    let name = generate_name(&long, "x7k2p");
    assert_eq!(name.len(), 63);
    assert!(name.ends_with("x7k2p"));
    let multibyte = "é".repeat(40);
    assert!(generate_name(&multibyte, "abcde").len() <= 63);
}

#[test]
fn namespaces_resolve_from_path_and_body() {
    let cases: &[(bool, Option<&str>, Option<&str>, Result<&str, Error>)] = &[
        (true, Some("default"), None, Ok("default")),
        (true, Some("default"), Some("default"), Ok("default")),
        (true, None, Some("team"), Ok("team")),
        (
            true,
            Some("default"),
            Some("other"),
            Err(Error::NamespaceMismatch),
        ),
        (true, None, None, Err(Error::NamespaceRequired)),
        (true, Some(""), Some(""), Err(Error::NamespaceRequired)),
        (false, None, Some("x"), Ok("")),
    ];
    for (namespaced, path, object, expected) in cases {
        let got = resolve_namespace(*namespaced, *path, *object);
        assert_eq!(got, expected.clone().map(String::from));
    }
    assert_eq!(
        Error::NamespaceMismatch.to_string(),
        "the namespace of the provided object does not match the namespace sent on the request"
    );
}
