//! The agent's configuration: a plain struct with documented defaults and a `validate()` that
//! reports every problem at once. Only the `skiff` binary turns flags into one.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Config {
    /// The API servers, `https://<host>:6443` each: every control-plane member (or one address
    /// in front of them all). Requests go to one until it fails, then to the next
    /// (`shell::failover`); the node joins through the first that answers.
    pub servers: Vec<String>,
    /// The node join token, `skiffnode1.<ca sha256>.<secret>`.
    pub token: String,
    /// The Node's name (a DNS subdomain); also names its containers and Docker network.
    pub node_name: String,
    /// Identity (key, certificate, CA) and pod volumes live here.
    pub data_dir: PathBuf,
    /// The node's address (InternalIP); the first non-loopback address when `None`.
    pub node_ip: Option<IpAddr>,
    /// The pod CIDR until `node.spec.podCIDR` is set; derived from the node name when `None`.
    pub pod_cidr: Option<String>,
    /// The cluster's pod CIDR (every node's pod CIDR is inside it); pod traffic within it is
    /// accepted between bridges and never masqueraded.
    pub cluster_cidr: String,
    /// Where the node API listens (default `0.0.0.0:10250`); reported in the Node's status.
    pub node_api_listen: SocketAddr,
    /// The Docker Engine socket (`unix:///var/run/docker.sock` when `None`).
    pub docker_socket: Option<String>,
    /// The cluster DNS addresses pods with `dnsPolicy: ClusterFirst` get as their nameservers;
    /// none makes them fall back to the node's resolvers.
    pub cluster_dns: Vec<IpAddr>,
    pub cluster_domain: String,
    /// The node's resolv.conf (the kubelet's `--resolv-conf`): what `dnsPolicy: Default` pods
    /// get, and the search domains `ClusterFirst` appends. Read at each pod container start; a
    /// missing file means no node resolvers.
    pub resolv_conf: PathBuf,
    /// The `kubernetes` Service address containers see in `KUBERNETES_SERVICE_*`.
    pub kubernetes_service: Option<(String, u16)>,
    /// The `pods` capacity the Node reports.
    pub max_pods: u32,
    /// How often a quiet pod is synced anyway.
    pub resync: Duration,
    /// The registry the agent's metrics are registered in; a private one when `None`.
    pub metrics_registry: Option<prometheus::Registry>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            servers: vec!["https://127.0.0.1:6443".into()],
            token: String::new(),
            node_name: String::new(),
            data_dir: PathBuf::from("/var/lib/skiff/agent"),
            node_ip: None,
            pod_cidr: None,
            cluster_cidr: crate::pod_network::DEFAULT_CLUSTER_CIDR.into(),
            node_api_listen: SocketAddr::from(([0, 0, 0, 0], 10250)),
            docker_socket: None,
            cluster_dns: vec![IpAddr::V4(Ipv4Addr::new(10, 43, 0, 10))],
            cluster_domain: "cluster.local".into(),
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            kubernetes_service: Some(("10.43.0.1".into(), 443)),
            max_pods: 110,
            resync: Duration::from_secs(10),
            metrics_registry: None,
        }
    }
}

fn dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// An IPv4 CIDR `a.b.c.d/n`: (network address, prefix length).
pub fn parse_cidr(cidr: &str) -> Option<(Ipv4Addr, u8)> {
    let (address, prefix) = cidr.split_once('/')?;
    let address: Ipv4Addr = address.parse().ok()?;
    let prefix: u8 = prefix.parse().ok()?;
    if !(8..=30).contains(&prefix) {
        return None;
    }
    let mask = u32::MAX << (32 - u32::from(prefix));
    Some((Ipv4Addr::from(u32::from(address) & mask), prefix))
}

/// `10.42.<n>.0/24` from a hash of the node name (used until a pod CIDR is assigned).
pub fn derived_pod_cidr(node_name: &str) -> String {
    let hash = node_name.bytes().fold(2166136261u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(16777619)
    });
    format!("10.42.{}.0/24", 1 + hash % 254)
}

/// The gateway (first address) of a CIDR.
pub fn gateway(cidr: &str) -> Option<String> {
    let (network, _) = parse_cidr(cidr)?;
    Some(Ipv4Addr::from(u32::from(network) + 1).to_string())
}

impl Config {
    /// Every problem with this configuration, or `Ok`.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if !dns_subdomain(&self.node_name) {
            problems.push(format!(
                "node name {:?} must be a DNS subdomain (lowercase letters, digits, '-', '.')",
                self.node_name
            ));
        }
        if self.servers.is_empty() {
            problems.push("no API server given: name at least one (https://<host>:6443)".into());
        }
        for server in &self.servers {
            if !server.starts_with("https://") {
                problems.push(format!("server {server:?} must be an https:// URL"));
            } else if server
                .parse::<http::Uri>()
                .map(|u| u.host().is_none())
                .unwrap_or(true)
            {
                problems.push(format!("server {server:?} is not a valid URL"));
            }
        }
        let mut distinct = self.servers.clone();
        distinct.sort();
        distinct.dedup();
        if distinct.len() != self.servers.len() {
            problems.push("an API server is named twice; name each member once".into());
        }
        if let Err(e) = crate::shell::bootstrap::NodeToken::parse(&self.token) {
            problems.push(e.to_string());
        }
        if self.data_dir.as_os_str().is_empty() {
            problems.push("data dir must not be empty".into());
        }
        if let Some(cidr) = &self.pod_cidr
            && parse_cidr(cidr).is_none()
        {
            problems.push(format!(
                "pod CIDR {cidr:?} is not an IPv4 CIDR with a prefix of /8 to /30"
            ));
        }
        if parse_cidr(&self.cluster_cidr).is_none() {
            problems.push(format!(
                "cluster CIDR {:?} is not an IPv4 CIDR",
                self.cluster_cidr
            ));
        }
        if self.cluster_domain.is_empty() {
            problems.push("cluster domain must not be empty".into());
        }
        if self.max_pods == 0 {
            problems.push("max pods must be at least 1".into());
        }
        if self.resync < Duration::from_secs(1) {
            problems.push("resync period must be at least 1s".into());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

#[cfg(test)]
mod tests;
