//! The desired nftables state of `table ip skiff`, built as a pure function of the Services and
//! EndpointSlices ([`build_rules`]). [`crate::script`] turns it into one `nft -f` transaction.
//!
//! Shape (close to kube-proxy's nftables mode):
//! - `nat-prerouting`/`nat-output` jump to `services`, which looks the destination up in the
//!   verdict maps `service-ips` (cluster IP . protocol . port) and `service-nodeports`
//!   (protocol . port, for local destinations only).
//! - `svc-*` balances over all endpoints of a Service port, `svl-*` over its local ones, with
//!   `numgen random mod N`; `ext-*` is the NodePort entry that applies the external policy.
//!   With `sessionAffinity: ClientIP`, each endpoint has a dynamic set `aff-*` of client
//!   addresses (with the Service's timeout) checked before the random choice.
//! - `ep-*` marks hairpin traffic (source is the endpoint itself) for masquerade and DNATs.
//! - `filter-*` chains at priority -110 reject new connections to Services without endpoints
//!   (`reject-chain`: TCP reset, else ICMP port unreachable) through the maps
//!   `no-endpoint-services` and `no-endpoint-nodeports`, instead of letting them hang.
//! - `nat-postrouting` masquerades packets marked with [`MASQUERADE_MARK`]: traffic to a
//!   cluster IP from outside the cluster CIDR, all NodePort traffic under the Cluster external
//!   policy, and hairpin traffic.
//!
//! Invariant: every name this module emits lives in `table ip skiff`; nothing here refers to any
//! other table. Names are `<kind>-<hash>-<readable>`, the hash making them unique and stable.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::model::{Endpoint, NodeInfo, ServicePort, service_ports};

/// The one table this proxy owns.
pub const TABLE: &str = "skiff";
/// The packet mark bit that asks `nat-postrouting` to masquerade.
pub const MASQUERADE_MARK: u32 = 0x4000;

/// What the rules need besides the API objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Pod addresses; traffic from outside it to a cluster IP is masqueraded.
    pub cluster_cidr: Ipv4Net,
    /// Addresses NodePorts answer on; empty means every local address except loopback.
    pub nodeport_addresses: Vec<Ipv4Addr>,
    /// Cluster IPs served on the node itself (the cluster DNS address): a Service that claims
    /// one (say `kube-system/kube-dns` without endpoints) gets no rule for it.
    pub node_local_ips: Vec<Ipv4Addr>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            cluster_cidr: Ipv4Net::new(Ipv4Addr::new(10, 42, 0, 0), 16).unwrap_or_default(),
            nodeport_addresses: Vec::new(),
            node_local_ips: Vec::new(),
        }
    }
}

/// A chain: a base chain has a hook declaration (`type nat hook ... priority ...;`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chain {
    pub hook: Option<String>,
    pub rules: Vec<String>,
}

/// A verdict map: its type and its elements (key → verdict).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Map {
    pub kind: String,
    pub elements: BTreeMap<String, String>,
}

/// The complete desired content of `table ip skiff`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleSet {
    pub chains: BTreeMap<String, Chain>,
    pub maps: BTreeMap<String, Map>,
    /// Dynamic sets (session affinity), name → declaration body. Never flushed by updates.
    pub sets: BTreeMap<String, String>,
}

/// The pure core of the proxy: the whole rule set for this node.
pub fn build_rules<S: Borrow<Service>, E: Borrow<EndpointSlice>>(
    services: &[S],
    slices: &[E],
    node: &NodeInfo,
    config: &Config,
) -> RuleSet {
    build_from_ports(&service_ports(services, slices, node), config)
}

const SERVICE_IPS: &str = "service-ips";
const SERVICE_NODEPORTS: &str = "service-nodeports";
const NO_ENDPOINT_SERVICES: &str = "no-endpoint-services";
const NO_ENDPOINT_NODEPORTS: &str = "no-endpoint-nodeports";
const REJECT_CHAIN: &str = "reject-chain";
const MARK_CHAIN: &str = "mark-for-masquerade";

/// Builds the rule set from already-reduced Service ports.
pub fn build_from_ports(ports: &[ServicePort], config: &Config) -> RuleSet {
    let mut set = RuleSet::default();
    fixed_chains(&mut set, config);
    for port in ports {
        if port
            .cluster_ips
            .iter()
            .any(|ip| config.node_local_ips.contains(ip))
        {
            let mut port = port.clone();
            port.cluster_ips
                .retain(|ip| !config.node_local_ips.contains(ip));
            add_service_port(&mut set, &port, config);
        } else {
            add_service_port(&mut set, port, config);
        }
    }
    set
}

fn chain(set: &mut RuleSet, name: &str, hook: Option<&str>, rules: Vec<String>) {
    set.chains.insert(
        name.to_string(),
        Chain {
            hook: hook.map(str::to_string),
            rules,
        },
    );
}

fn nodeport_match(config: &Config) -> String {
    if config.nodeport_addresses.is_empty() {
        "fib daddr type local ip daddr != 127.0.0.0/8".to_string()
    } else {
        let list: Vec<String> = config
            .nodeport_addresses
            .iter()
            .map(|a| a.to_string())
            .collect();
        format!("ip daddr {{ {} }}", list.join(", "))
    }
}

fn fixed_chains(set: &mut RuleSet, config: &Config) {
    let nat = |hook: &str, priority: &str| {
        format!("type nat hook {hook} priority {priority}; policy accept;")
    };
    let filter = |hook: &str| format!("type filter hook {hook} priority -110; policy accept;");
    let r = |s: &str| vec![s.to_string()];
    chain(
        set,
        "nat-prerouting",
        Some(&nat("prerouting", "dstnat")),
        r("jump services"),
    );
    chain(
        set,
        "nat-output",
        Some(&nat("output", "-100")),
        r("jump services"),
    );
    chain(
        set,
        "nat-postrouting",
        Some(&nat("postrouting", "srcnat")),
        r("jump masquerading"),
    );
    let both_checks = vec![
        "ct state new jump nodeport-endpoints-check".to_string(),
        "ct state new jump service-endpoints-check".to_string(),
    ];
    chain(
        set,
        "filter-input",
        Some(&filter("input")),
        both_checks.clone(),
    );
    chain(
        set,
        "filter-forward",
        Some(&filter("forward")),
        r("ct state new jump service-endpoints-check"),
    );
    chain(set, "filter-output", Some(&filter("output")), both_checks);
    let nodeports = nodeport_match(config);
    chain(
        set,
        "services",
        None,
        vec![
            format!("ip daddr . meta l4proto . th dport vmap @{SERVICE_IPS}"),
            format!("{nodeports} meta l4proto . th dport vmap @{SERVICE_NODEPORTS}"),
        ],
    );
    chain(
        set,
        "service-endpoints-check",
        None,
        r(&format!(
            "ip daddr . meta l4proto . th dport vmap @{NO_ENDPOINT_SERVICES}"
        )),
    );
    chain(
        set,
        "nodeport-endpoints-check",
        None,
        r(&format!(
            "{nodeports} meta l4proto . th dport vmap @{NO_ENDPOINT_NODEPORTS}"
        )),
    );
    chain(
        set,
        REJECT_CHAIN,
        None,
        vec![
            "meta l4proto tcp reject with tcp reset".into(),
            "reject".into(),
        ],
    );
    chain(
        set,
        "masquerading",
        None,
        vec![
            format!("meta mark & 0x{MASQUERADE_MARK:08x} == 0 return"),
            format!("meta mark set meta mark ^ 0x{MASQUERADE_MARK:08x}"),
            "masquerade fully-random".into(),
        ],
    );
    chain(
        set,
        MARK_CHAIN,
        None,
        r(&format!(
            "meta mark set meta mark | 0x{MASQUERADE_MARK:08x}"
        )),
    );
    let four = "ipv4_addr . inet_proto . inet_service : verdict";
    let two = "inet_proto . inet_service : verdict";
    for (name, kind) in [
        (SERVICE_IPS, four),
        (SERVICE_NODEPORTS, two),
        (NO_ENDPOINT_SERVICES, four),
        (NO_ENDPOINT_NODEPORTS, two),
    ] {
        set.maps.insert(
            name.to_string(),
            Map {
                kind: kind.to_string(),
                elements: BTreeMap::new(),
            },
        );
    }
}

/// FNV-1a 64, rendered as 8 base32 characters: stable across builds and platforms.
pub fn short_hash(input: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in input.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    (0..8)
        .map(|i| char::from(ALPHABET[((hash >> (i * 5)) & 31) as usize]))
        .collect()
}

fn readable(port: &ServicePort) -> String {
    let mut name = format!(
        "{}-{}-{}",
        port.namespace,
        port.service,
        port.protocol.nft()
    );
    if !port.port_name.is_empty() {
        name.push('-');
        name.push_str(&port.port_name);
    }
    name
}

fn service_chain_name(prefix: &str, port: &ServicePort) -> String {
    format!("{prefix}-{}-{}", short_hash(&port.key()), readable(port))
}

fn endpoint_key(port: &ServicePort, endpoint: &Endpoint) -> String {
    format!("{}/{}:{}", port.key(), endpoint.ip, endpoint.port)
}

fn endpoint_chain_name(port: &ServicePort, endpoint: &Endpoint) -> String {
    let ip = endpoint.ip.to_string().replace('.', "-");
    format!(
        "ep-{}-{}-{ip}-{}",
        short_hash(&endpoint_key(port, endpoint)),
        readable(port),
        endpoint.port
    )
}

fn affinity_set_name(port: &ServicePort, endpoint: &Endpoint, timeout: u32) -> String {
    // The timeout is part of the identity: a changed timeout makes a new set (a set's timeout
    // cannot be changed in place), and the old one is deleted.
    format!(
        "aff-{}-{}",
        short_hash(&format!("{}/{timeout}", endpoint_key(port, endpoint))),
        endpoint.ip.to_string().replace('.', "-")
    )
}

/// Rules that pick one endpoint: affinity lookups, then a random choice.
fn balance_rules(port: &ServicePort, endpoints: &[&Endpoint]) -> Vec<String> {
    let mut rules = Vec::new();
    if let Some(timeout) = port.affinity_timeout {
        for endpoint in endpoints {
            rules.push(format!(
                "ip saddr @{} goto {}",
                affinity_set_name(port, endpoint, timeout),
                endpoint_chain_name(port, endpoint)
            ));
        }
    }
    match endpoints {
        [] => {}
        [only] => rules.push(format!("goto {}", endpoint_chain_name(port, only))),
        many => {
            let arms: Vec<String> = many
                .iter()
                .enumerate()
                .map(|(i, e)| format!("{i} : goto {}", endpoint_chain_name(port, e)))
                .collect();
            rules.push(format!(
                "numgen random mod {} vmap {{ {} }}",
                many.len(),
                arms.join(", ")
            ));
        }
    }
    rules
}

fn add_service_port(set: &mut RuleSet, port: &ServicePort, config: &Config) {
    let all: Vec<&Endpoint> = port.endpoints.iter().collect();
    let local: Vec<&Endpoint> = port.endpoints.iter().filter(|e| e.local).collect();
    let proto = port.protocol.nft();
    let cidr = config.cluster_cidr;
    let masquerade_outside: Vec<String> = port
        .cluster_ips
        .iter()
        .map(|ip| format!("ip daddr {ip} ip saddr != {cidr} jump {MARK_CHAIN}"))
        .collect();
    let svc = service_chain_name("svc", port);
    let svl = service_chain_name("svl", port);
    // The external policy matters only when there is a node port.
    let external = port.node_port.is_some();
    let needs_svc = !all.is_empty() && (!port.internal_local || (external && !port.external_local));
    let needs_svl = !local.is_empty() && (port.internal_local || (external && port.external_local));
    if needs_svc {
        let mut rules = masquerade_outside.clone();
        rules.extend(balance_rules(port, &all));
        chain(set, &svc, None, rules);
    }
    if needs_svl {
        let mut rules = masquerade_outside;
        rules.extend(balance_rules(port, &local));
        chain(set, &svl, None, rules);
    }
    // Endpoint chains for every endpoint some balancing chain can reach.
    let reachable: Vec<&Endpoint> = if needs_svc {
        all.clone()
    } else {
        local.clone()
    };
    for endpoint in &reachable {
        let mut rules = vec![format!("ip saddr {} jump {MARK_CHAIN}", endpoint.ip)];
        if let Some(timeout) = port.affinity_timeout {
            let name = affinity_set_name(port, endpoint, timeout);
            set.sets.insert(
                name.clone(),
                format!("type ipv4_addr; flags dynamic,timeout; timeout {timeout}s;"),
            );
            rules.push(format!("update @{name} {{ ip saddr }}"));
        }
        rules.push(format!(
            "meta l4proto {proto} dnat to {}:{}",
            endpoint.ip, endpoint.port
        ));
        chain(set, &endpoint_chain_name(port, endpoint), None, rules);
    }
    // Cluster IPs.
    let (internal_target, internal_empty) = if port.internal_local {
        (needs_svl.then(|| format!("goto {svl}")), all.is_empty())
    } else {
        (needs_svc.then(|| format!("goto {svc}")), true)
    };
    for ip in &port.cluster_ips {
        let key = format!("{ip} . {proto} . {}", port.port);
        insert_verdict(
            set,
            &key,
            internal_target.as_ref(),
            internal_empty,
            SERVICE_IPS,
            NO_ENDPOINT_SERVICES,
        );
    }
    // NodePort.
    let Some(node_port) = port.node_port else {
        return;
    };
    let ext = service_chain_name("ext", port);
    let key = format!("{proto} . {node_port}");
    let mut ext_rules = Vec::new();
    if port.external_local {
        if needs_svc {
            // Pods and the node itself keep the cluster-wide behaviour.
            ext_rules.push(format!("ip saddr {cidr} goto {svc}"));
            ext_rules.push(format!("fib saddr type local jump {MARK_CHAIN}"));
            ext_rules.push(format!("fib saddr type local goto {svc}"));
        }
        if needs_svl {
            ext_rules.push(format!("goto {svl}"));
        }
    } else if needs_svc {
        ext_rules.push(format!("jump {MARK_CHAIN}"));
        ext_rules.push(format!("goto {svc}"));
    }
    let reachable_externally = if port.external_local {
        needs_svl
    } else {
        needs_svc
    };
    if reachable_externally {
        chain(set, &ext, None, ext_rules);
    }
    let target = reachable_externally.then(|| format!("goto {ext}"));
    insert_verdict(
        set,
        &key,
        target.as_ref(),
        all.is_empty(),
        SERVICE_NODEPORTS,
        NO_ENDPOINT_NODEPORTS,
    );
}

/// Routes a key to its chain, or to the no-endpoint map: rejected when the Service has no
/// endpoint at all, dropped when endpoints exist but the traffic policy excludes them all.
fn insert_verdict(
    set: &mut RuleSet,
    key: &str,
    target: Option<&String>,
    reject: bool,
    map: &str,
    no_endpoint_map: &str,
) {
    let (map, verdict) = match target {
        Some(target) => (map, target.clone()),
        None if reject => (no_endpoint_map, format!("goto {REJECT_CHAIN}")),
        None => (no_endpoint_map, "drop".to_string()),
    };
    if let Some(map) = set.maps.get_mut(map) {
        map.elements.insert(key.to_string(), verdict);
    }
}

#[cfg(test)]
mod tests;
