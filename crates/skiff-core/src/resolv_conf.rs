//! The resolv.conf a pod gets, as the kubelet writes it, and the parser of the node's
//! resolv.conf. Pure: the agent reads the node's file, calls [`pod_resolv_conf`] and bind-mounts
//! the text it writes into every container of the pod; the proxy uses [`parse`] to find the
//! upstream resolvers of the cluster DNS.
//!
//! `dnsPolicy`:
//! - `ClusterFirst` (the default): the cluster DNS, search `<ns>.svc.<domain> svc.<domain>
//!   <domain>` followed by the node's search domains, `options ndots:5`. A pod on the host
//!   network with `ClusterFirst` falls back to `Default`, as in Kubernetes; so does every pod
//!   when no cluster DNS address is configured.
//! - `ClusterFirstWithHostNet`: `ClusterFirst` even on the host network.
//! - `Default`: the node's resolv.conf (nameservers, search, options). Loopback nameservers
//!   (`127.0.0.53` of systemd-resolved) are dropped for pods with their own network namespace,
//!   where they would reach nothing.
//! - `None`: only what `dnsConfig` says.
//!
//! `dnsConfig` is merged on top: nameservers and searches appended without duplicates, options
//! replaced by name. Limits as the kubelet's: at most 3 nameservers, 32 search domains.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::PodSpec;

/// At most this many nameservers (the resolver ignores more).
pub const MAX_NAMESERVERS: usize = 3;
/// At most this many search domains.
pub const MAX_SEARCH: usize = 32;

/// The parts of a resolv.conf the proxy and pods care about.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostResolvConf {
    pub nameservers: Vec<IpAddr>,
    pub search: Vec<String>,
    /// `name` or `name:value`.
    pub options: Vec<String>,
}

/// Parses a resolv.conf; unknown lines and bad addresses are skipped.
pub fn parse(text: &str) -> HostResolvConf {
    let mut conf = HostResolvConf::default();
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or("");
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => {
                // Zone ids (fe80::1%eth0) are not addresses we can use.
                if let Some(Ok(ip)) = words.next().map(str::parse::<IpAddr>) {
                    conf.nameservers.push(ip);
                }
            }
            Some("search") | Some("domain") => {
                conf.search = words.map(str::to_string).collect();
            }
            Some("options") => conf.options.extend(words.map(str::to_string)),
            _ => {}
        }
    }
    conf
}

/// The cluster's DNS settings (the kubelet's `clusterDNS` and `clusterDomain`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterDns {
    /// The cluster DNS addresses (usually one, the DNS Service's ClusterIP); none makes
    /// `ClusterFirst` fall back to `Default`.
    pub nameservers: Vec<IpAddr>,
    /// The cluster domain, e.g. `cluster.local`.
    pub domain: String,
}

/// The resolv.conf text for a pod in `namespace` with `spec` (empty when the policy is `None`
/// and `dnsConfig` gives nothing).
pub fn pod_resolv_conf(
    spec: &PodSpec,
    namespace: &str,
    cluster: &ClusterDns,
    host: &HostResolvConf,
) -> String {
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let host_network = spec.host_network.unwrap_or(false);
    let node_conf = || {
        let mut conf = host.clone();
        if !host_network {
            conf.nameservers.retain(|ip| !ip.is_loopback());
        }
        conf
    };
    let mut conf = match policy {
        "None" => HostResolvConf::default(),
        "Default" => node_conf(),
        "ClusterFirst" if host_network => node_conf(),
        _ if cluster.nameservers.is_empty() => node_conf(),
        // ClusterFirst, ClusterFirstWithHostNet (and unknown values, which validation rejects).
        _ => {
            let domain = cluster.domain.trim_end_matches('.');
            let mut search = vec![
                format!("{namespace}.svc.{domain}"),
                format!("svc.{domain}"),
                domain.to_string(),
            ];
            search.extend(host.search.iter().cloned());
            HostResolvConf {
                nameservers: cluster.nameservers.clone(),
                search,
                options: vec!["ndots:5".to_string()],
            }
        }
    };
    if let Some(extra) = &spec.dns_config {
        for server in extra.nameservers.iter().flatten() {
            if let Ok(ip) = server.parse::<IpAddr>()
                && !conf.nameservers.contains(&ip)
            {
                conf.nameservers.push(ip);
            }
        }
        for domain in extra.searches.iter().flatten() {
            if !conf.search.contains(domain) {
                conf.search.push(domain.clone());
            }
        }
        for option in extra.options.iter().flatten() {
            let Some(name) = option.name.as_deref().filter(|n| !n.is_empty()) else {
                continue;
            };
            conf.options.retain(|o| o.split(':').next() != Some(name));
            conf.options.push(match &option.value {
                Some(value) => format!("{name}:{value}"),
                None => name.to_string(),
            });
        }
    }
    conf.nameservers.truncate(MAX_NAMESERVERS);
    dedup_in_order(&mut conf.search);
    conf.search.truncate(MAX_SEARCH);
    render(&conf)
}

fn dedup_in_order(list: &mut Vec<String>) {
    let mut seen = std::collections::BTreeSet::new();
    list.retain(|d| seen.insert(d.clone()));
}

/// resolv.conf text: nameservers, then search, then options.
pub fn render(conf: &HostResolvConf) -> String {
    let mut out = String::new();
    for server in &conf.nameservers {
        out.push_str(&format!("nameserver {server}\n"));
    }
    if !conf.search.is_empty() {
        out.push_str(&format!("search {}\n", conf.search.join(" ")));
    }
    if !conf.options.is_empty() {
        out.push_str(&format!("options {}\n", conf.options.join(" ")));
    }
    out
}

#[cfg(test)]
mod tests;
