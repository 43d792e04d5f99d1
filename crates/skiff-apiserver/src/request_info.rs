//! Parsing a request's method, path and query into what it asks for (Kubernetes' RequestInfo):
//! verb, group, version, namespace, resource, name and subresource. Pure.
//!
//! Rules (as kube-apiserver's): `/api/v1/...` is the core group; `/apis/<g>/<v>/...` the others;
//! `namespaces/<ns>/<resource>/...` scopes a request to a namespace, except that `status` and
//! `finalize` after `namespaces/<name>` are subresources of the namespace itself; GET without a
//! name is `list` (or `watch` with `?watch=true`), DELETE without a name `deletecollection`.

#[cfg(test)]
mod tests;

use percent_encoding::percent_decode_str;

/// What a request asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestInfo {
    /// False for discovery, health, metrics, version, OpenAPI and other non-resource paths.
    pub is_resource_request: bool,
    pub path: String,
    /// get, list, watch, create, update, patch, delete, deletecollection (or the lower-case HTTP
    /// method for non-resource requests).
    pub verb: String,
    /// "api" or "apis" for resource requests.
    pub api_prefix: String,
    pub group: String,
    pub version: String,
    pub namespace: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
    /// Path segments after the subresource (e.g. `proxy/<path>`).
    pub rest: Vec<String>,
}

/// A decoded query string, keeping repeated keys in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query {
    pub pairs: Vec<(String, String)>,
}

impl Query {
    pub fn parse(raw: Option<&str>) -> Query {
        let mut pairs = Vec::new();
        for part in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            let decode = |s: &str| {
                percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            pairs.push((decode(k), decode(v)));
        }
        Query { pairs }
    }

    /// The first value of a key.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a key.
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A boolean flag: present with `true`/`1`/empty.
    pub fn flag(&self, key: &str) -> bool {
        matches!(
            self.get(key),
            Some("true") | Some("1") | Some("True") | Some("")
        )
    }
}

/// Namespace subresources that are not namespaced resources.
const NAMESPACE_SUBRESOURCES: [&str; 2] = ["status", "finalize"];

fn segments(path: &str) -> Vec<String> {
    path.trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect()
}

/// Parses a request. `watch_param` is the query's `watch` flag.
pub fn parse(method: &str, path: &str, watch_param: bool) -> RequestInfo {
    let non_resource = |verb: &str| RequestInfo {
        path: path.to_string(),
        verb: verb.to_string(),
        ..Default::default()
    };
    let lower = method.to_ascii_lowercase();
    let parts = segments(path);
    let (prefix, group, version, mut rest): (&str, String, String, Vec<String>) =
        match parts.as_slice() {
            [p, v, rest @ ..] if p == "api" => ("api", String::new(), v.clone(), rest.to_vec()),
            [p, g, v, rest @ ..] if p == "apis" => ("apis", g.clone(), v.clone(), rest.to_vec()),
            _ => return non_resource(&lower),
        };
    if rest.is_empty() {
        // Discovery of a group version.
        return non_resource(&lower);
    }
    let mut info = RequestInfo {
        is_resource_request: true,
        path: path.to_string(),
        api_prefix: prefix.to_string(),
        group,
        version,
        ..Default::default()
    };
    // The deprecated `/watch/` prefix.
    let mut legacy_watch = false;
    if rest.first().is_some_and(|p| p == "watch") {
        legacy_watch = true;
        rest.remove(0);
    }
    if rest.first().is_some_and(|p| p == "namespaces") && rest.len() > 1 {
        info.namespace = rest[1].clone();
        if rest.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&rest[2].as_str()) {
            rest.drain(..2);
        }
    }
    info.resource = rest.first().cloned().unwrap_or_default();
    if info.resource == "namespaces" {
        // `namespaces/<name>[/status|finalize]`: the namespace object itself.
        info.name = rest.get(1).cloned().unwrap_or_default();
        info.namespace = String::new();
        info.subresource = rest.get(2).cloned().unwrap_or_default();
        info.rest = rest.iter().skip(3).cloned().collect();
    } else {
        info.name = rest.get(1).cloned().unwrap_or_default();
        info.subresource = rest.get(2).cloned().unwrap_or_default();
        info.rest = rest.iter().skip(3).cloned().collect();
    }
    info.verb = match lower.as_str() {
        "get" | "head" if info.name.is_empty() => {
            if watch_param || legacy_watch {
                "watch"
            } else {
                "list"
            }
        }
        "get" | "head" => {
            if legacy_watch {
                "watch"
            } else {
                "get"
            }
        }
        "post" => "create",
        "put" => "update",
        "patch" => "patch",
        "delete" if info.name.is_empty() => "deletecollection",
        "delete" => "delete",
        other => {
            return RequestInfo {
                verb: other.to_string(),
                ..info
            };
        }
    }
    .to_string();
    info
}
