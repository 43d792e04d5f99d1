//! FNV-32a test vectors, safe encoding, and hash properties.

use super::*;

#[test]
fn fnv32a_vectors() {
    // Published FNV-1a 32-bit test vectors.
    assert_eq!(fnv32a(FNV_OFFSET, b""), 0x811c9dc5);
    assert_eq!(fnv32a(FNV_OFFSET, b"a"), 0xe40c292c);
    assert_eq!(fnv32a(FNV_OFFSET, b"foobar"), 0xbf9cf968);
}

#[test]
fn safe_encoding_matches_kubernetes() {
    // '0' is 48 -> 48 % 27 = 21 -> '4'; '1' -> 22 -> '5'; '9' -> 57 % 27 = 3 -> 'f'.
    assert_eq!(safe_encode("0"), "4");
    assert_eq!(safe_encode("19"), "5f");
    assert_eq!(safe_encode("3226419146").len(), 10);
}

#[test]
fn collision_count_changes_the_hash_and_output_is_a_label_value() {
    let template: PodTemplateSpec = serde_json::from_value(serde_json::json!({
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "nginx"}]}
    }))
    .unwrap_or_default();
    let a = pod_template_hash(&template, None);
    assert_eq!(a, pod_template_hash(&template.clone(), None));
    assert_ne!(a, pod_template_hash(&template, Some(1)));
    assert!(skiff_core::names::label_value(&a).is_empty());
    assert!(a.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
}
