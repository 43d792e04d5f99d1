//! Endpoints and EndpointSlice construction.

use serde_json::json;

use super::*;

fn service(extra: serde_json::Value) -> Service {
    let mut value = json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "svc-uid", "labels": {"tier": "front"}},
        "spec": {"selector": {"app": "web"}, "ports": [
            {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
            {"name": "metrics", "port": 9090, "targetPort": 9100, "protocol": "TCP"}
        ]}
    });
    if let Some(extra) = extra.as_object() {
        for (k, v) in extra {
            value["spec"][k] = v.clone();
        }
    }
    serde_json::from_value(value).unwrap_or_default()
}

fn pod(name: &str, ip: &str, ready: bool, http_port: Option<i32>) -> Pod {
    let mut value = json!({
        "metadata": {"name": name, "namespace": "default", "uid": name, "labels": {"app": "web"}},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": []}]},
        "status": {"phase": "Running", "podIP": ip, "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
    });
    if let Some(port) = http_port {
        value["spec"]["containers"][0]["ports"] = json!([{"name": "http", "containerPort": port}]);
    }
    serde_json::from_value(value).unwrap_or_default()
}

fn slices(changes: &[Change]) -> Vec<EndpointSlice> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::CreateSlice(s) => Some((**s).clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn ready_and_not_ready_pods_with_named_ports() {
    let pods = vec![
        pod("a", "10.42.0.5", true, Some(8080)),
        pod("b", "10.42.0.6", false, Some(8080)),
        pod("c", "10.42.0.7", true, None),
    ];
    let changes = plan(&service(json!({})), &pods, None, &[]);
    let Some(Change::ApplyEndpoints(endpoints)) = changes.first() else {
        panic!("{changes:?}")
    };
    let subsets = endpoints.subsets.clone().unwrap_or_default();
    // Two port groups: c lacks the named port, so its group only has the metrics port.
    assert_eq!(subsets.len(), 2);
    let full = subsets
        .iter()
        .find(|s| s.ports.as_ref().is_some_and(|p| p.len() == 2))
        .cloned()
        .unwrap_or_default();
    let ips = |a: Option<Vec<EndpointAddress>>| {
        a.unwrap_or_default()
            .into_iter()
            .map(|a| a.ip)
            .collect::<Vec<_>>()
    };
    assert_eq!(ips(full.addresses), vec!["10.42.0.5"]);
    assert_eq!(ips(full.not_ready_addresses), vec!["10.42.0.6"]);
    let ports: Vec<(Option<String>, i32)> = full
        .ports
        .unwrap_or_default()
        .into_iter()
        .map(|p| (p.name, p.port))
        .collect();
    assert!(
        ports.contains(&(Some("http".into()), 8080))
            && ports.contains(&(Some("metrics".into()), 9100))
    );
    let created = slices(&changes);
    assert_eq!(created.len(), 2);
    let labels = created[0].metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get(SERVICE_NAME).map(String::as_str), Some("web"));
    assert_eq!(
        labels.get(MANAGED_BY).map(String::as_str),
        Some(CONTROLLER_NAME)
    );
    assert_eq!(labels.get("tier").map(String::as_str), Some("front"));
    assert_eq!(
        created[0]
            .metadata
            .owner_references
            .as_ref()
            .map(|o| o[0].uid.as_str()),
        Some("svc-uid")
    );
    let with_b = created
        .iter()
        .flat_map(|s| s.endpoints.iter())
        .find(|e| e.addresses == vec!["10.42.0.6".to_string()])
        .cloned()
        .unwrap_or_default();
    assert_eq!(with_b.conditions.and_then(|c| c.ready), Some(false));
}

#[test]
fn publish_not_ready_addresses_and_headless() {
    let pods = vec![pod("b", "10.42.0.6", false, Some(8080))];
    let changes = plan(
        &service(json!({"publishNotReadyAddresses": true, "clusterIP": "None"})),
        &pods,
        None,
        &[],
    );
    let Some(Change::ApplyEndpoints(endpoints)) = changes.first() else {
        panic!()
    };
    let subset = endpoints
        .subsets
        .clone()
        .unwrap_or_default()
        .pop()
        .unwrap_or_default();
    assert_eq!(subset.addresses.map(|a| a.len()), Some(1));
    assert!(
        endpoints
            .metadata
            .labels
            .clone()
            .unwrap_or_default()
            .contains_key("service.kubernetes.io/headless")
    );
}

#[test]
fn selectorless_services_are_left_alone_and_empty_ones_get_a_placeholder() {
    let mut manual = service(json!({}));
    if let Some(spec) = manual.spec.as_mut() {
        spec.selector = None;
    }
    assert!(plan(&manual, &[pod("a", "10.42.0.5", true, Some(80))], None, &[]).is_empty());
    let changes = plan(&service(json!({})), &[], None, &[]);
    let created = slices(&changes);
    assert_eq!(created.len(), 1);
    assert!(created[0].endpoints.is_empty());
}

#[test]
fn unchanged_state_plans_nothing_and_changes_update_in_place() {
    let svc = service(json!({}));
    let pods = vec![pod("a", "10.42.0.5", true, Some(8080))];
    let first = plan(&svc, &pods, None, &[]);
    let Some(Change::ApplyEndpoints(endpoints)) = first.first() else {
        panic!()
    };
    let mut existing = slices(&first);
    for (i, s) in existing.iter_mut().enumerate() {
        s.metadata.name = Some(format!("web-{i}"));
    }
    assert!(plan(&svc, &pods, Some(endpoints), &existing).is_empty());
    let more = vec![pods[0].clone(), pod("d", "10.42.0.9", true, Some(8080))];
    let changes = plan(&svc, &more, Some(endpoints), &existing);
    assert!(changes.iter().any(|c| matches!(c, Change::UpdateSlice(s) if s.metadata.name.as_deref() == Some("web-0") && s.endpoints.len() == 2)));
    assert!(
        !changes
            .iter()
            .any(|c| matches!(c, Change::CreateSlice(_) | Change::DeleteSlice { .. }))
    );
}
