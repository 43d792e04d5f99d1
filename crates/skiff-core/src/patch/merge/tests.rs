//! Tests for JSON Merge Patch: the RFC 7386 appendix table and the bodies kubectl sends.

use serde_json::{Value, json};

use super::{Error, apply};

#[test]
fn applies_the_rfc_7386_examples() {
    let cases = [
        (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
        (
            json!({"a": "b"}),
            json!({"b": "c"}),
            json!({"a": "b", "b": "c"}),
        ),
        (json!({"a": "b"}), json!({"a": null}), json!({})),
        (
            json!({"a": "b", "b": "c"}),
            json!({"a": null}),
            json!({"b": "c"}),
        ),
        (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
        (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
        (
            json!({"a": {"b": "c"}}),
            json!({"a": {"b": "d", "c": null}}),
            json!({"a": {"b": "d"}}),
        ),
        (
            json!({"a": [{"b": "c"}]}),
            json!({"a": [1]}),
            json!({"a": [1]}),
        ),
        (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
        (json!({"a": "b"}), json!(["c"]), json!(["c"])),
        (json!({"a": "foo"}), json!(null), json!(null)),
        (json!({"a": "foo"}), json!("bar"), json!("bar")),
        (
            json!({"e": null}),
            json!({"a": 1}),
            json!({"e": null, "a": 1}),
        ),
        (
            json!([1, 2]),
            json!({"a": "b", "c": null}),
            json!({"a": "b"}),
        ),
        (
            json!({}),
            json!({"a": {"bb": {"ccc": null}}}),
            json!({"a": {"bb": {}}}),
        ),
    ];
    for (target, patch, expected) in cases {
        assert_eq!(
            apply(&target, &patch),
            Ok(expected),
            "target {target} patch {patch}"
        );
    }
}

#[test]
fn applies_kubectl_label_and_scale_bodies() {
    let pod = json!({"metadata": {"name": "p", "labels": {"app": "web", "tier": "x"}}, "spec": {"replicas": 1}});
    let labelled = apply(
        &pod,
        &json!({"metadata": {"labels": {"k": "v", "tier": null}}}),
    )
    .expect("label");
    assert_eq!(
        labelled["metadata"]["labels"],
        json!({"app": "web", "k": "v"})
    );
    let scaled = apply(&pod, &json!({"spec": {"replicas": 3}})).expect("scale");
    assert_eq!(scaled["spec"]["replicas"], json!(3));
    assert_eq!(scaled["metadata"], pod["metadata"]);
}

#[test]
fn refuses_patches_nested_too_deep() {
    let mut patch = json!(1);
    for _ in 0..(super::MAX_DEPTH + 2) {
        let mut wrapper = serde_json::Map::new();
        wrapper.insert("a".into(), patch);
        patch = Value::Object(wrapper);
    }
    assert_eq!(apply(&json!({}), &patch), Err(Error::TooDeep));
}
