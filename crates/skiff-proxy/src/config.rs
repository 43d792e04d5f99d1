//! The proxy's configuration: plain data with documented defaults and a `validate()` that reports
//! every problem at once. Only the `skiff` binary fills it from flags.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::Ipv4Net;

#[derive(Debug, thiserror::Error)]
#[error("invalid proxy configuration: {}", .problems.join("; "))]
pub struct Error {
    pub problems: Vec<String>,
}

/// Everything `skiff proxy` needs.
#[derive(Clone, Debug)]
pub struct Config {
    /// This node's name (endpoints with this `nodeName` are local).
    pub node_name: String,
    /// Pod addresses of the whole cluster (default 10.42.0.0/16).
    pub cluster_cidr: Ipv4Net,
    /// Service cluster IPs (default 10.43.0.0/16).
    pub service_cidr: Ipv4Net,
    /// Addresses NodePorts answer on; empty: every local address but loopback.
    pub nodeport_addresses: Vec<Ipv4Addr>,
    /// Syncs are at least this far apart; changes in between are coalesced (default 50 ms).
    pub min_sync_interval: Duration,
    /// Longest wait between retries of a failing sync (default 5 s).
    pub max_sync_backoff: Duration,
    /// The argv that runs nft (default `["nft"]`).
    pub nft_command: Vec<String>,
    /// The nftables table this proxy owns, `table ip <table>` (default `skiff`). Proxies of
    /// different clusters sharing a host need different tables (and service CIDRs).
    pub table: String,
    /// The argv that runs conntrack, to clear flows of removed UDP endpoints (default
    /// `["conntrack"]`; `None` to never touch conntrack).
    pub conntrack_command: Option<Vec<String>>,
    /// Cluster DNS.
    pub dns: crate::dns::Config,
    /// Where the cluster DNS listens (UDP and TCP); `skiff proxy` adds the address to `lo` when
    /// it is not local. Default 10.43.0.10:53.
    pub dns_listen: SocketAddr,
    /// Where the host's resolvers are listed (default /etc/resolv.conf).
    pub resolv_conf: PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            node_name: String::new(),
            cluster_cidr: Ipv4Net::new(Ipv4Addr::new(10, 42, 0, 0), 16).unwrap_or_default(),
            service_cidr: Ipv4Net::new(Ipv4Addr::new(10, 43, 0, 0), 16).unwrap_or_default(),
            nodeport_addresses: Vec::new(),
            min_sync_interval: Duration::from_millis(50),
            max_sync_backoff: Duration::from_secs(5),
            nft_command: vec!["nft".into()],
            table: crate::rules::TABLE.to_string(),
            conntrack_command: Some(vec!["conntrack".into()]),
            dns: crate::dns::Config::default(),
            dns_listen: SocketAddr::from((Ipv4Addr::new(10, 43, 0, 10), 53)),
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
        }
    }
}

/// An nftables identifier we are willing to emit unquoted.
pub fn valid_table_name(name: &str) -> bool {
    name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl Config {
    /// Reports every problem at once.
    pub fn validate(&self) -> Result<(), Error> {
        let mut problems = Vec::new();
        if self.node_name.is_empty() {
            problems.push("node name is empty".to_string());
        }
        if self.cluster_cidr.contains(&self.service_cidr.network())
            || self.service_cidr.contains(&self.cluster_cidr.network())
        {
            problems.push(format!(
                "cluster CIDR {} and service CIDR {} overlap",
                self.cluster_cidr, self.service_cidr
            ));
        }
        if self.min_sync_interval.is_zero() {
            problems.push("minimum sync interval must be above zero".into());
        }
        if self.max_sync_backoff < self.min_sync_interval {
            problems.push("maximum sync back-off is below the minimum sync interval".into());
        }
        if self.nft_command.is_empty() {
            problems.push("nft command is empty".into());
        }
        if !valid_table_name(&self.table) {
            problems.push(format!(
                "table name {:?} must start with a letter and hold only letters, digits, '-', '_' and '.' (at most 64)",
                self.table
            ));
        }
        if matches!(&self.conntrack_command, Some(c) if c.is_empty()) {
            problems.push("conntrack command is empty".into());
        }
        problems.extend(self.dns.problems());
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error { problems })
        }
    }

    /// The rule-building part of the configuration.
    pub fn rules(&self) -> crate::rules::Config {
        crate::rules::Config {
            cluster_cidr: self.cluster_cidr,
            nodeport_addresses: self.nodeport_addresses.clone(),
            node_local_ips: match self.dns_listen.ip() {
                std::net::IpAddr::V4(ip) => vec![ip],
                std::net::IpAddr::V6(_) => Vec::new(),
            },
        }
    }
}
