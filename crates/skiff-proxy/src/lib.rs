//! skiff-proxy: what makes Services work on a node.
//!
//! - Service virtual IPs and NodePorts in nftables: [`rules::build_rules`] is the pure core (the
//!   whole desired `table ip skiff` from Services and EndpointSlices), [`script`] renders one
//!   atomic `nft -f` transaction, [`nft::Nft`] applies it, [`sync`] paces updates, [`watch`]
//!   feeds it from the API through kube-rs reflectors.
//! - The pod network's routes and forwarding rules between nodes: [`podnet`] (pure plan from the
//!   Node list, plus a shell the agent or `skiff proxy` can call).
//! - Cluster DNS: [`dns::model::DnsModel`] (pure records from Services and EndpointSlices),
//!   [`dns::server`] (hickory-server handler with forwarding and a cache; upstreams from the
//!   node's resolv.conf, parsed by `skiff_core::resolv_conf`).
//! - [`bench`]: the `skiff bench proxy` measurement on real nftables in a network namespace.
//!
//! Invariant: the proxy touches only `table ip skiff`, never another table, and never flushes
//! conntrack except entries of removed UDP endpoints; established connections survive syncs and
//! restarts.

pub mod bench;
pub mod config;
pub mod dns;
pub mod metrics;
pub mod model;
pub mod netns;
pub mod nft;
pub mod podnet;
pub mod rules;
pub mod script;
pub mod sync;
pub mod watch;

pub use config::Config;

#[cfg(test)]
mod testing;
