//! Tests for the pure parts of the Docker runtime: the Linux bridge behind a network.

use std::collections::HashMap;

use super::bridge_name;

#[test]
fn a_bridge_network_is_br_and_the_short_id_unless_named() {
    let id = "38231529d17255c6a5d2e7f1bd0c6bd3f8b2c1e0aa55f3f4c0b3d2e1f0a9b8c7";
    assert_eq!(
        bridge_name(Some("bridge"), Some(id), None).as_deref(),
        Some("br-38231529d172")
    );
    let named = HashMap::from([(
        "com.docker.network.bridge.name".to_string(),
        "docker0".to_string(),
    )]);
    assert_eq!(
        bridge_name(Some("bridge"), Some(id), Some(&named)).as_deref(),
        Some("docker0")
    );
    let empty_name = HashMap::from([("com.docker.network.bridge.name".to_string(), String::new())]);
    assert_eq!(
        bridge_name(Some("bridge"), Some(id), Some(&empty_name)).as_deref(),
        Some("br-38231529d172")
    );
}

#[test]
fn other_drivers_and_odd_ids_have_no_bridge() {
    assert_eq!(
        bridge_name(Some("host"), Some("d3bb2da72722aa"), None),
        None
    );
    assert_eq!(bridge_name(None, Some("d3bb2da72722aa"), None), None);
    assert_eq!(bridge_name(Some("bridge"), Some("short"), None), None);
    assert_eq!(bridge_name(Some("bridge"), None, None), None);
}
