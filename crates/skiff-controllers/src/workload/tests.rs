//! Percentages with Kubernetes' rounding, readiness and availability.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;

use super::*;

#[test]
fn percentages_round_like_kubernetes() {
    let p = |s: &str| IntOrString::String(s.into());
    assert_eq!(scaled_value(&p("25%"), 10, true), Some(3));
    assert_eq!(scaled_value(&p("25%"), 10, false), Some(2));
    assert_eq!(scaled_value(&p("25%"), 1, true), Some(1));
    assert_eq!(scaled_value(&p("25%"), 1, false), Some(0));
    assert_eq!(scaled_value(&p("100%"), 7, false), Some(7));
    assert_eq!(scaled_value(&IntOrString::Int(2), 10, true), Some(2));
    assert_eq!(scaled_value(&p("x"), 10, true), None);
}

#[test]
fn availability_honours_min_ready_seconds() {
    let pod: Pod = serde_json::from_value(json!({"status": {"conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": "2024-01-01T00:00:00Z"}
    ]}}))
    .unwrap_or_default();
    let at = |s: &str| s.parse::<Timestamp>().unwrap_or_default();
    assert!(is_ready(&pod));
    assert!(is_available(&pod, 0, at("2024-01-01T00:00:00Z")));
    assert!(!is_available(&pod, 10, at("2024-01-01T00:00:09Z")));
    assert!(is_available(&pod, 10, at("2024-01-01T00:00:10Z")));
    assert_eq!(
        available_at(&pod, 10, at("2024-01-01T00:00:05Z")),
        Some(at("2024-01-01T00:00:10Z"))
    );
}
