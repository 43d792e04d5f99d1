//! A default ServiceAccount per active namespace.

use serde_json::json;

use super::*;

#[test]
fn default_service_accounts() {
    let ns = |name: &str, terminating: bool| -> Namespace {
        serde_json::from_value(json!({"metadata": {"name": name}, "status": {"phase": if terminating { "Terminating" } else { "Active" }}})).unwrap_or_default()
    };
    let sa: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "default", "namespace": "a"}}))
            .unwrap_or_default();
    let created = plan(&[ns("a", false), ns("b", false), ns("gone", true)], &[sa]);
    let names: Vec<(Option<String>, Option<String>)> = created
        .into_iter()
        .map(|s| (s.metadata.namespace, s.metadata.name))
        .collect();
    assert_eq!(names, vec![(Some("b".into()), Some("default".into()))]);
}
