use serde_json::json;

use super::*;
use crate::testing::{ep, service, slice};

fn node() -> NodeInfo {
    NodeInfo { name: "n1".into() }
}

fn build(spec: serde_json::Value, endpoints: &[(&str, &str)]) -> RuleSet {
    let services = [service("default", "web", spec)];
    let eps: Vec<_> = endpoints.iter().map(|(ip, node)| ep(ip, node)).collect();
    let slices = [slice("default", "web", "1", &[("http", 8080, "TCP")], &eps)];
    build_rules(&services, &slices, &node(), &Config::default())
}

fn chain_text(set: &RuleSet, prefix: &str) -> String {
    let mut out = String::new();
    for (name, chain) in set.chains.iter().filter(|(n, _)| n.starts_with(prefix)) {
        out.push_str(name);
        out.push_str(":\n");
        for rule in &chain.rules {
            out.push_str("  ");
            out.push_str(rule);
            out.push('\n');
        }
    }
    out
}

fn elements(set: &RuleSet, map: &str) -> Vec<String> {
    set.maps[map].elements.iter().map(|(k, v)| format!("{k} : {v}")).collect()
}
