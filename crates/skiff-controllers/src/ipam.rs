//! Node IPAM: give every Node a `spec.podCIDR` (and `podCIDRs`), a /24 out of the cluster CIDR
//! (10.42.0.0/16 by default), the lowest one no node has.
//!
//! Invariants: a /24 is never given to two nodes (ranges already on nodes, and those handed out
//! earlier in the same pass, are taken); a node that has one keeps it; when the range is
//! exhausted the node gets none and an event says so, once per node (the shell passes the nodes
//! already told), not on every pass: with more nodes than ranges, an event per node per pass
//! would be a write storm that grows with every node change.

pub mod shell;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Node;

use crate::events::Record;

/// Why a cluster CIDR is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("invalid cluster CIDR {0:?}: expected an IPv4 a.b.c.d/n with n <= 24")]
    InvalidCidr(String),
}

/// One write the shell performs.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Assign { node: String, cidr: String },
    Event { node: String, record: Record },
}

/// An IPv4 range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub base: u32,
    pub prefix: u8,
}

impl Cidr {
    /// Parse `a.b.c.d/n` (n at most 24).
    pub fn parse(text: &str) -> Result<Self, Error> {
        let bad = || Error::InvalidCidr(text.to_string());
        let (ip, prefix) = text.split_once('/').ok_or_else(bad)?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if prefix > 24 {
            return Err(bad());
        }
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        };
        Ok(Self {
            base: u32::from(ip) & mask,
            prefix,
        })
    }
}

fn subnet_index(cluster: Cidr, cidr: &str) -> Option<u32> {
    let parsed = Cidr::parse(cidr).ok()?;
    if parsed.prefix != 24 {
        return None;
    }
    let size = 1u32 << (24 - cluster.prefix);
    let offset = parsed.base.checked_sub(cluster.base)? >> 8;
    (offset < size).then_some(offset)
}

/// Plan the assignments for nodes without a pod CIDR; nodes in `reported` have already had
/// their CIDRNotAvailable event.
pub fn plan(cluster: Cidr, nodes: &[Node], reported: &BTreeSet<String>) -> Vec<Change> {
    let mut taken: BTreeSet<u32> = BTreeSet::new();
    for node in nodes {
        let spec = node.spec.as_ref();
        for cidr in spec
            .and_then(|s| s.pod_cidr.clone())
            .into_iter()
            .chain(spec.and_then(|s| s.pod_cidrs.clone()).into_iter().flatten())
        {
            if let Some(index) = subnet_index(cluster, &cidr) {
                taken.insert(index);
            }
        }
    }
    let size = 1u32 << (24 - cluster.prefix);
    let mut changes = Vec::new();
    let mut next = 0u32;
    let mut unassigned: Vec<&Node> = nodes
        .iter()
        .filter(|n| {
            n.spec
                .as_ref()
                .and_then(|s| s.pod_cidr.as_deref())
                .unwrap_or_default()
                .is_empty()
        })
        .collect();
    unassigned.sort_by_key(|n| n.metadata.name.clone());
    for node in unassigned {
        let name = node.metadata.name.clone().unwrap_or_default();
        while next < size && taken.contains(&next) {
            next += 1;
        }
        if next >= size {
            if reported.contains(&name) {
                continue;
            }
            changes.push(Change::Event {
                node: name.clone(),
                record: Record::warning(
                    "CIDRNotAvailable",
                    format!("Node {name} status is now: CIDRNotAvailable"),
                ),
            });
            continue;
        }
        taken.insert(next);
        let ip = Ipv4Addr::from(cluster.base + (next << 8));
        changes.push(Change::Assign {
            node: name,
            cidr: format!("{ip}/24"),
        });
    }
    changes
}

#[cfg(test)]
mod tests;
