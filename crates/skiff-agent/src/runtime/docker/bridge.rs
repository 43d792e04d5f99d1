//! The Linux bridge behind a Docker network (pure).

use std::collections::HashMap;

/// The Linux bridge of a Docker network: the `com.docker.network.bridge.name` option, or
/// Docker's own name for it, `br-` and the first 12 characters of the network id (`docker0`
/// for the default network also carries the option). `None` for other drivers.
pub fn bridge_name(
    driver: Option<&str>,
    id: Option<&str>,
    options: Option<&HashMap<String, String>>,
) -> Option<String> {
    if driver != Some("bridge") {
        return None;
    }
    if let Some(name) = options
        .and_then(|o| o.get("com.docker.network.bridge.name"))
        .filter(|n| !n.is_empty())
    {
        return Some(name.clone());
    }
    let id = id?;
    (id.len() >= 12 && id.is_ascii()).then(|| format!("br-{}", &id[..12]))
}
