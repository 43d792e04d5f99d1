//! Quantity parsing and effective pod requests.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde_json::json;

use super::*;

#[test]
fn quantities() {
    let q = |s: &str| Quantity(s.into());
    let milli = [
        ("1", 1000),
        ("100m", 100),
        ("0.5", 500),
        ("1.5", 1500),
        ("2k", 2_000_000),
        ("1e3", 1_000_000),
        ("1n", 1),
        ("", 0),
        ("bogus", 0),
    ];
    for (text, want) in milli {
        assert_eq!(milli_value(&q(text)), want, "{text}");
    }
    let whole = [
        ("1Gi", 1 << 30),
        ("512Mi", 512 << 20),
        ("1G", 1_000_000_000),
        ("1.5Gi", 3 << 29),
        ("100m", 1),
        ("128974848", 128_974_848),
        ("129e6", 129_000_000),
        ("1Ki", 1024),
    ];
    for (text, want) in whole {
        assert_eq!(value(&q(text)), want, "{text}");
    }
}

#[test]
fn pod_requests_take_init_containers_sidecars_and_overhead_into_account() {
    let pod: Pod = serde_json::from_value(json!({
        "spec": {
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "100Mi"}}},
                {"name": "b", "resources": {"limits": {"cpu": "200m"}}}
            ],
            "initContainers": [
                {"name": "big", "resources": {"requests": {"cpu": "1", "memory": "10Mi"}}},
                {"name": "side", "restartPolicy": "Always", "resources": {"requests": {"cpu": "50m", "memory": "1Mi"}}}
            ],
            "overhead": {"cpu": "10m", "memory": "1Mi"}
        }
    }))
    .unwrap_or_default();
    let requests = pod_requests(&pod);
    // cpu: max(100+200+50 sidecar, 1000 init) + 10 overhead
    assert_eq!(requests.requests.milli_cpu, 1010);
    // memory: max(100Mi + 0 + 1Mi, 10Mi) + 1Mi
    assert_eq!(requests.requests.memory, (102) << 20);
    // Scoring counts b's missing memory as 200Mi.
    assert_eq!(requests.non_zero_memory, (100 + 200 + 1 + 1) << 20);
}
