//! The pod's QoS class (Guaranteed, Burstable, BestEffort) from its containers' resources.

use k8s_openapi::api::core::v1::PodSpec;

pub fn qos_class(spec: &PodSpec) -> String {
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    let mut any_set = false;
    let mut guaranteed = true;
    for c in containers {
        let resources = c.resources.clone().unwrap_or_default();
        let requests = resources.requests.unwrap_or_default();
        let limits = resources.limits.unwrap_or_default();
        for name in ["cpu", "memory"] {
            let request = requests.get(name).or_else(|| limits.get(name));
            let limit = limits.get(name);
            if request.is_some() || limit.is_some() {
                any_set = true;
            }
            match (request, limit) {
                (Some(r), Some(l)) if r == l => {}
                _ => guaranteed = false,
            }
        }
    }
    if !any_set {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
    .to_string()
}
