//! The routing table: which backend serves a request, as a pure function of the Ingresses,
//! IngressClasses, Services and EndpointSlices ([`RouteTable::build`]).
//!
//! Kubernetes semantics:
//! - An Ingress is ours when `spec.ingressClassName` (or the legacy `kubernetes.io/ingress.class`
//!   annotation) names our class, or when it names none and our IngressClass carries
//!   `ingressclass.kubernetes.io/is-default-class: "true"`.
//! - Hosts: an exact host wins over a wildcard (`*.example.com` matches exactly one more label),
//!   which wins over rules without a host. The chosen host's paths are searched; when none
//!   matches, the default backend answers.
//! - Paths: `Exact` matches the path byte for byte; `Prefix` (and `ImplementationSpecific`)
//!   matches element-wise on `/`-separated segments, ignoring a trailing slash (`/foo` matches
//!   `/foo`, `/foo/` and `/foo/bar`, not `/foobar`). The longest matching path wins; on a tie,
//!   `Exact` wins over `Prefix`, then the older Ingress (by namespace/name).
//! - A backend is a Service port (by number or name); its endpoints are the ready addresses of
//!   the Service's EndpointSlices with the matching port, at the slice's target port.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend, IngressClass};

/// The annotation that makes an IngressClass the default one.
pub const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";
/// The legacy class annotation on Ingresses.
pub const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Where requests go: a Service port and its ready endpoints, balanced round-robin.
#[derive(Debug)]
pub struct Backend {
    /// `namespace/name` of the Ingress that routes here (for metrics and logs).
    pub ingress: String,
    /// `namespace/name` of the Service.
    pub service: String,
    pub endpoints: Vec<SocketAddr>,
    next: AtomicUsize,
}

impl Backend {
    pub fn new(ingress: String, service: String, endpoints: Vec<SocketAddr>) -> Backend {
        Backend {
            ingress,
            service,
            endpoints,
            next: AtomicUsize::new(0),
        }
    }

    /// The endpoints in the order to try them for one request: round-robin start, then the
    /// others (so a failed connect moves on to the next endpoint).
    pub fn attempt_order(&self) -> Vec<SocketAddr> {
        let n = self.endpoints.len();
        if n == 0 {
            return Vec::new();
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        (0..n).map(|i| self.endpoints[(start + i) % n]).collect()
    }
}

impl PartialEq for Backend {
    fn eq(&self, other: &Self) -> bool {
        self.ingress == other.ingress
            && self.service == other.service
            && self.endpoints == other.endpoints
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Match {
    /// Sorted so that Exact wins a tie.
    Exact,
    Prefix,
}

#[derive(Debug)]
struct PathRule {
    path: String,
    kind: Match,
    /// Tie-breaker: position of the Ingress, oldest first.
    rank: usize,
    backend: Arc<Backend>,
}

/// Why an Ingress (or part of it) is not served; reported by the shell, never fatal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub ingress: String,
    pub message: String,
}

/// The current routing decisions. Cheap to share behind an `ArcSwap`.
#[derive(Debug, Default)]
pub struct RouteTable {
    exact: HashMap<String, Vec<PathRule>>,
    /// Keyed by the suffix after `*.` (`example.com` for `*.example.com`).
    wildcard: HashMap<String, Vec<PathRule>>,
    any_host: Vec<PathRule>,
    default_backend: Option<Arc<Backend>>,
    /// The Ingresses served, `namespace/name`.
    pub ingresses: BTreeSet<String>,
    pub problems: Vec<Problem>,
}

/// Lowercase, without a port and a trailing dot.
pub fn normalize_host(host: &str) -> String {
    let host = host.trim();
    let without_port = if host.starts_with('[') {
        host.split(']')
            .next()
            .map(|h| format!("{h}]"))
            .unwrap_or_default()
    } else {
        host.rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map(|(h, _)| h.to_string())
            .unwrap_or_else(|| host.to_string())
    };
    without_port.trim_end_matches('.').to_ascii_lowercase()
}

/// Element-wise prefix match, Kubernetes style.
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    let prefix_segments: Vec<&str> = prefix.split('/').filter(|s| !s.is_empty()).collect();
    let path_segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    path_segments.len() >= prefix_segments.len()
        && prefix_segments
            .iter()
            .zip(&path_segments)
            .all(|(a, b)| a == b)
}

/// Which Ingresses are ours.
#[derive(Clone, Debug)]
pub struct ClassSelector {
    pub class_name: String,
    pub is_default: bool,
}

impl ClassSelector {
    /// Our class, and whether its IngressClass object is the cluster default.
    pub fn from_classes<C: Borrow<IngressClass>>(class_name: &str, classes: &[C]) -> ClassSelector {
        let is_default = classes.iter().any(|c| {
            let c: &IngressClass = c.borrow();
            c.metadata.name.as_deref() == Some(class_name)
                && c.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
                    .is_some_and(|v| v == "true")
        });
        ClassSelector {
            class_name: class_name.to_string(),
            is_default,
        }
    }

    pub fn selects(&self, ingress: &Ingress) -> bool {
        let named = ingress
            .spec
            .as_ref()
            .and_then(|s| s.ingress_class_name.clone())
            .or_else(|| {
                ingress
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(LEGACY_CLASS_ANNOTATION).cloned())
            });
        match named {
            Some(name) => name == self.class_name,
            None => self.is_default,
        }
    }
}

fn key(ns: &str, name: &str) -> String {
    format!("{ns}/{name}")
}

/// Ready endpoints of a Service port, by the Service port's name.
struct Endpoints<'a> {
    services: HashMap<(&'a str, &'a str), &'a Service>,
    slices: HashMap<(&'a str, &'a str), Vec<&'a EndpointSlice>>,
}

impl<'a> Endpoints<'a> {
    fn new<S: Borrow<Service>, E: Borrow<EndpointSlice>>(
        services: &'a [S],
        slices: &'a [E],
    ) -> Self {
        let mut by_name = HashMap::new();
        for s in services {
            let s: &Service = s.borrow();
            if let (Some(ns), Some(name)) =
                (s.metadata.namespace.as_deref(), s.metadata.name.as_deref())
            {
                by_name.insert((ns, name), s);
            }
        }
        let mut by_service: HashMap<(&str, &str), Vec<&EndpointSlice>> = HashMap::new();
        for slice in slices {
            let slice: &EndpointSlice = slice.borrow();
            let ns = slice.metadata.namespace.as_deref();
            let svc = slice
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL));
            if let (Some(ns), Some(svc)) = (ns, svc) {
                by_service
                    .entry((ns, svc.as_str()))
                    .or_default()
                    .push(slice);
            }
        }
        Endpoints {
            services: by_name,
            slices: by_service,
        }
    }

    fn resolve(
        &self,
        ns: &str,
        backend: &IngressBackend,
    ) -> Result<(String, Vec<SocketAddr>), String> {
        let Some(target) = backend.service.as_ref() else {
            return Err("resource backends are not supported".into());
        };
        let service = self
            .services
            .get(&(ns, target.name.as_str()))
            .ok_or_else(|| format!("service {ns}/{} not found", target.name))?;
        let ports = service.spec.as_ref().and_then(|s| s.ports.as_ref());
        let wanted = target.port.as_ref();
        let port = ports
            .into_iter()
            .flatten()
            .find(|p| match wanted {
                Some(w) => w.number == Some(p.port) || (w.name.is_some() && w.name == p.name),
                None => true,
            })
            .ok_or_else(|| format!("service {ns}/{} has no such port", target.name))?;
        let port_name = port.name.clone().unwrap_or_default();
        let mut endpoints = BTreeSet::new();
        for slice in self
            .slices
            .get(&(ns, target.name.as_str()))
            .into_iter()
            .flatten()
        {
            let Some(target_port) = slice.ports.iter().flatten().find_map(|p| {
                (p.name.clone().unwrap_or_default() == port_name
                    && p.protocol.as_deref().unwrap_or("TCP") == "TCP")
                    .then_some(p.port)
                    .flatten()
                    .and_then(|p| u16::try_from(p).ok())
            }) else {
                continue;
            };
            for endpoint in &slice.endpoints {
                if !endpoint
                    .conditions
                    .as_ref()
                    .and_then(|c| c.ready)
                    .unwrap_or(true)
                {
                    continue;
                }
                for address in &endpoint.addresses {
                    if let Ok(ip) = address.parse::<IpAddr>() {
                        endpoints.insert(SocketAddr::new(ip, target_port));
                    }
                }
            }
        }
        Ok((key(ns, &target.name), endpoints.into_iter().collect()))
    }
}

impl RouteTable {
    /// Builds the table from every object of the cluster.
    pub fn build<I, S, E>(
        selector: &ClassSelector,
        ingresses: &[I],
        services: &[S],
        slices: &[E],
    ) -> RouteTable
    where
        I: Borrow<Ingress>,
        S: Borrow<Service>,
        E: Borrow<EndpointSlice>,
    {
        let endpoints = Endpoints::new(services, slices);
        let mut table = RouteTable::default();
        let mut ours: Vec<&Ingress> = ingresses
            .iter()
            .map(|i| i.borrow())
            .filter(|i| selector.selects(i))
            .collect();
        ours.sort_by_key(|i| {
            (
                i.metadata.creation_timestamp.as_ref().map(|t| t.0),
                key(
                    i.metadata.namespace.as_deref().unwrap_or(""),
                    i.metadata.name.as_deref().unwrap_or(""),
                ),
            )
        });
        for (rank, ingress) in ours.into_iter().enumerate() {
            let (Some(ns), Some(name), Some(spec)) = (
                ingress.metadata.namespace.as_deref(),
                ingress.metadata.name.as_deref(),
                ingress.spec.as_ref(),
            ) else {
                continue;
            };
            let origin = key(ns, name);
            table.ingresses.insert(origin.clone());
            let mut problems = Vec::new();
            let mut make_backend = |b: &IngressBackend| match endpoints.resolve(ns, b) {
                Ok((service, eps)) => Some(Arc::new(Backend::new(origin.clone(), service, eps))),
                Err(message) => {
                    problems.push(message);
                    None
                }
            };
            if let Some(default) = spec.default_backend.as_ref() {
                let backend = make_backend(default);
                if table.default_backend.is_none() {
                    table.default_backend = backend;
                }
            }
            for rule in spec.rules.iter().flatten() {
                let host = rule
                    .host
                    .as_deref()
                    .map(normalize_host)
                    .filter(|h| !h.is_empty());
                for path in rule.http.iter().flat_map(|h| h.paths.iter()) {
                    let kind = match path.path_type.as_str() {
                        "Exact" => Match::Exact,
                        _ => Match::Prefix,
                    };
                    let Some(backend) = make_backend(&path.backend) else {
                        continue;
                    };
                    let rule = PathRule {
                        path: path.path.clone().unwrap_or_else(|| "/".into()),
                        kind,
                        rank,
                        backend,
                    };
                    let list = match &host {
                        None => &mut table.any_host,
                        Some(h) => match h.strip_prefix("*.") {
                            Some(suffix) => table.wildcard.entry(suffix.to_string()).or_default(),
                            None => table.exact.entry(h.clone()).or_default(),
                        },
                    };
                    list.push(rule);
                }
            }
            table
                .problems
                .extend(problems.into_iter().map(|message| Problem {
                    ingress: origin.clone(),
                    message,
                }));
        }
        table
    }

    fn host_rules(&self, host: &str) -> &[PathRule] {
        if let Some(rules) = self.exact.get(host) {
            return rules;
        }
        if let Some((_, suffix)) = host.split_once('.')
            && let Some(rules) = self.wildcard.get(suffix)
        {
            return rules;
        }
        &self.any_host
    }

    /// The backend for a request, or `None` (404).
    pub fn route(&self, host: &str, path: &str) -> Option<Arc<Backend>> {
        let host = normalize_host(host);
        let rules = self.host_rules(&host);
        let best = rules
            .iter()
            .filter(|r| match r.kind {
                Match::Exact => r.path == path,
                Match::Prefix => prefix_matches(&r.path, path),
            })
            .max_by(|a, b| {
                let a_len = a.path.trim_end_matches('/').len();
                let b_len = b.path.trim_end_matches('/').len();
                a_len
                    .cmp(&b_len)
                    .then(b.kind.cmp(&a.kind))
                    .then(b.rank.cmp(&a.rank))
            });
        best.map(|r| r.backend.clone())
            .or_else(|| self.default_backend.clone())
    }

    /// Every host with rules (exact and wildcard), for status and logs.
    pub fn hosts(&self) -> BTreeMap<String, usize> {
        self.exact
            .iter()
            .map(|(h, r)| (h.clone(), r.len()))
            .chain(
                self.wildcard
                    .iter()
                    .map(|(h, r)| (format!("*.{h}"), r.len())),
            )
            .collect()
    }
}

#[cfg(test)]
mod tests;
