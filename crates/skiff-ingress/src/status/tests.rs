//! Tests for the Ingress status patch.

use k8s_openapi::api::networking::v1::Ingress;
use serde_json::json;

use super::status_patch;

fn ingress(ips: &[&str]) -> Ingress {
    let entries: Vec<_> = ips.iter().map(|ip| json!({"ip": ip})).collect();
    serde_json::from_value(json!({
        "metadata": {"name": "i", "namespace": "default"},
        "status": {"loadBalancer": {"ingress": entries}}
    }))
    .expect("ingress")
}

#[test]
fn adds_the_node_address_once_and_keeps_others() {
    let address = "192.168.0.2".parse().expect("ip");
    assert_eq!(
        status_patch(&ingress(&[]), address),
        Some(json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.168.0.2"}]}}}))
    );
    assert_eq!(
        status_patch(&ingress(&["192.168.0.9"]), address),
        Some(
            json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.168.0.2"}, {"ip": "192.168.0.9"}]}}})
        )
    );
    assert_eq!(status_patch(&ingress(&["192.168.0.2"]), address), None);
}
