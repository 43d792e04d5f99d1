//! Cluster DNS: the records of `cluster.local` computed from Services and EndpointSlices
//! ([`model`]), the hickory-server handler that answers them and forwards everything else to
//! the host's resolvers ([`server`], [`forward`]). The resolv.conf pods get is computed by
//! `skiff_core::resolv_conf` (the agent writes it; its parser also gives the proxy its upstreams).

pub mod forward;
pub mod model;
pub mod server;

use std::time::Duration;

/// Settings of the cluster DNS server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The cluster domain (default `cluster.local`).
    pub domain: String,
    /// TTL of cluster records, seconds (default 5: endpoints change often).
    pub ttl: u32,
    /// Forwarded queries in flight at once; more are answered SERVFAIL (default 256).
    pub forward_concurrency: usize,
    /// Cached forwarded answers (default 10,000).
    pub cache_entries: usize,
    /// Longest time a forwarded answer stays cached, whatever its TTL (default 300 s).
    pub cache_max_ttl: Duration,
    /// How long an upstream has to answer before the next one is tried (default 2 s).
    pub upstream_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            domain: "cluster.local".into(),
            ttl: 5,
            forward_concurrency: 256,
            cache_entries: 10_000,
            cache_max_ttl: Duration::from_secs(300),
            upstream_timeout: Duration::from_secs(2),
        }
    }
}

impl Config {
    /// Every problem with this configuration.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let labels_ok = !self.domain.is_empty()
            && self.domain.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !labels_ok {
            problems.push(format!(
                "cluster domain {:?} is not a DNS name",
                self.domain
            ));
        }
        if self.forward_concurrency == 0 {
            problems.push("DNS forward concurrency must be at least 1".into());
        }
        if self.upstream_timeout.is_zero() {
            problems.push("DNS upstream timeout must be above zero".into());
        }
        problems
    }
}
