//! The API server's configuration: plain fields with defaults, validated all at once.

use std::net::Ipv4Addr;
use std::path::PathBuf;

#[derive(Clone, Debug)]
pub struct Config {
    /// Service ClusterIPs come from here (DESIGN.md §10: 10.43.0.0/16).
    pub service_cidr: (Ipv4Addr, u8),
    /// NodePorts come from here.
    pub node_port_range: (u16, u16),
    /// Largest request body accepted (larger gets 413).
    pub max_body_bytes: usize,
    /// The AES-GCM key file that encrypts Secrets at rest.
    pub encryption_key_file: PathBuf,
    /// Addresses (IPs or DNS names) the serving certificate must be valid for.
    pub serving_names: Vec<String>,
    /// The URL clients should use for this member (written into kubeconfigs).
    pub advertise_url: String,
    pub cluster_domain: String,
    /// Port of the node agents' API.
    pub node_api_port: u16,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            service_cidr: (Ipv4Addr::new(10, 43, 0, 0), 16),
            node_port_range: (30000, 32767),
            max_body_bytes: 3 << 20,
            encryption_key_file: PathBuf::from("encryption-keys.json"),
            serving_names: vec!["localhost".into(), "127.0.0.1".into()],
            advertise_url: "https://127.0.0.1:6443".into(),
            cluster_domain: "cluster.local".into(),
            node_api_port: 10250,
        }
    }
}

impl Config {
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        let (_, bits) = self.service_cidr;
        if !(8..=28).contains(&bits) {
            problems.push(format!(
                "the service CIDR prefix /{bits} must be between /8 and /28"
            ));
        }
        let (lo, hi) = self.node_port_range;
        if lo == 0 || lo > hi {
            problems.push(format!("the node port range {lo}-{hi} is empty"));
        }
        if self.max_body_bytes < 1024 {
            problems.push("the maximum body size must be at least 1 KiB".into());
        }
        if !self.advertise_url.starts_with("https://") {
            problems.push(format!(
                "the advertised URL {:?} must be https",
                self.advertise_url
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// The ClusterIP of the `kubernetes` Service (first address of the service CIDR).
    pub fn kubernetes_service_ip(&self) -> Ipv4Addr {
        let (base, _) = self.service_cidr;
        Ipv4Addr::from(u32::from(base) + 1)
    }

    /// The cluster DNS address (tenth address of the service CIDR).
    pub fn dns_service_ip(&self) -> Ipv4Addr {
        let (base, _) = self.service_cidr;
        Ipv4Addr::from(u32::from(base) + 10)
    }
}
