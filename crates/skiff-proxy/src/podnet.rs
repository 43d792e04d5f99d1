//! The pod network between nodes: every node's pod CIDR (`node.spec.podCIDR`) is reached through
//! that node's InternalIP, and Docker's `DOCKER-USER` chain accepts cluster traffic (Docker
//! otherwise isolates bridges from each other and from forwarded traffic).
//!
//! [`plan`] is pure: the routes and rules this node needs, from the Node list. [`apply`] is the
//! shell: `ip route replace` for each route, tagged with our route protocol number
//! [`ROUTE_PROTOCOL`] so stale ones (nodes that left) are found and removed without touching any
//! other route; `iptables -C`/`-I` for each DOCKER-USER rule (idempotent, commented `skiff`).
//! The agent (or `skiff proxy`) calls it whenever the Node list changes.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::process::Stdio;

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Node;
use tokio::process::Command;

/// The routing protocol number our routes carry (`ip route ... proto 44`).
pub const ROUTE_PROTOCOL: u8 = 44;
/// The comment on our DOCKER-USER rules.
pub const RULE_COMMENT: &str = "skiff pod network";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("{command} failed: {stderr}")]
    Failed { command: String, stderr: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A route to another node's pods.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Route {
    pub destination: Ipv4Net,
    pub via: Ipv4Addr,
}

/// What this node needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// This node's own pod CIDR, if the Node has one.
    pub own_cidr: Option<Ipv4Net>,
    pub routes: Vec<Route>,
    /// iptables arguments after `-I DOCKER-USER` / `-C DOCKER-USER`.
    pub docker_user_rules: Vec<Vec<String>>,
}

fn internal_ip(node: &Node) -> Option<Ipv4Addr> {
    let addresses = node.status.as_ref()?.addresses.as_ref()?;
    let pick = |kind: &str| {
        addresses
            .iter()
            .filter(|a| a.type_ == kind)
            .find_map(|a| a.address.parse::<Ipv4Addr>().ok())
    };
    pick("InternalIP").or_else(|| pick("ExternalIP"))
}

fn pod_cidr(node: &Node) -> Option<Ipv4Net> {
    let spec = node.spec.as_ref()?;
    spec.pod_cidr
        .iter()
        .chain(spec.pod_cidrs.iter().flatten())
        .find_map(|c| c.parse::<Ipv4Net>().ok())
}

/// The routes and rules for the node named `this_node`.
pub fn plan(nodes: &[Node], this_node: &str, cluster_cidr: Ipv4Net) -> Plan {
    let mut plan = Plan::default();
    let own_ip = nodes
        .iter()
        .find(|n| n.metadata.name.as_deref() == Some(this_node))
        .and_then(internal_ip);
    let mut routes = BTreeSet::new();
    for node in nodes {
        let Some(cidr) = pod_cidr(node) else {
            continue;
        };
        if node.metadata.name.as_deref() == Some(this_node) {
            plan.own_cidr = Some(cidr);
            continue;
        }
        let Some(via) = internal_ip(node) else {
            continue;
        };
        // Several agents on one machine share its address: their pods are local bridges.
        if Some(via) == own_ip {
            continue;
        }
        routes.insert(Route {
            destination: cidr,
            via,
        });
    }
    plan.routes = routes.into_iter().collect();
    let cidr = cluster_cidr.to_string();
    let rule = |flag: &str| {
        vec![
            flag.to_string(),
            cidr.clone(),
            "-m".into(),
            "comment".into(),
            "--comment".into(),
            RULE_COMMENT.into(),
            "-j".into(),
            "ACCEPT".into(),
        ]
    };
    plan.docker_user_rules = vec![rule("-s"), rule("-d")];
    plan
}

/// Runs commands behind a prefix (empty, or e.g. `ip netns exec <ns>`).
#[derive(Clone, Debug, Default)]
pub struct Runner {
    pub prefix: Vec<String>,
}

impl Runner {
    async fn run(&self, program: &str, args: &[String]) -> Result<String> {
        let mut argv: Vec<String> = self.prefix.clone();
        argv.push(program.to_string());
        argv.extend(args.iter().cloned());
        let (first, rest) = argv.split_first().ok_or_else(|| Error::Failed {
            command: program.to_string(),
            stderr: "empty command".into(),
        })?;
        let output = Command::new(first)
            .args(rest)
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|source| Error::Spawn {
                program: first.clone(),
                source,
            })?;
        if !output.status.success() {
            return Err(Error::Failed {
                command: argv.join(" "),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

/// Parses `ip -4 route show proto 44` into destinations.
pub fn parse_routes(text: &str) -> Vec<Ipv4Net> {
    text.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|d| d.parse::<Ipv4Net>().ok())
        .collect()
}

/// Makes the node's routes and DOCKER-USER rules match `plan`. Without a DOCKER-USER chain
/// (Docker not managing iptables) the rules are skipped with a warning.
pub async fn apply(runner: &Runner, plan: &Plan) -> Result<()> {
    let proto = ROUTE_PROTOCOL.to_string();
    for route in &plan.routes {
        let args: Vec<String> = [
            "-4",
            "route",
            "replace",
            &route.destination.to_string(),
            "via",
            &route.via.to_string(),
            "proto",
            &proto,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        runner.run("ip", &args).await?;
    }
    let listed = runner
        .run(
            "ip",
            &[
                "-4".into(),
                "route".into(),
                "show".into(),
                "proto".into(),
                proto.clone(),
            ],
        )
        .await?;
    let wanted: BTreeSet<Ipv4Net> = plan.routes.iter().map(|r| r.destination).collect();
    for stale in parse_routes(&listed)
        .into_iter()
        .filter(|d| !wanted.contains(d))
    {
        let args: Vec<String> = ["-4", "route", "del", &stale.to_string(), "proto", &proto]
            .iter()
            .map(|s| s.to_string())
            .collect();
        runner.run("ip", &args).await?;
    }
    for rule in &plan.docker_user_rules {
        let mut check = vec!["-w".to_string(), "-C".into(), "DOCKER-USER".into()];
        check.extend(rule.iter().cloned());
        if runner.run("iptables", &check).await.is_ok() {
            continue;
        }
        let mut insert = vec!["-w".to_string(), "-I".into(), "DOCKER-USER".into()];
        insert.extend(rule.iter().cloned());
        if let Err(e) = runner.run("iptables", &insert).await {
            tracing::warn!(error = %e, "cannot add the DOCKER-USER rule; is Docker managing iptables?");
        }
    }
    Ok(())
}

/// Makes `address` local on this node (a /32 on `lo`; no dummy interface module is needed), for
/// the cluster DNS address: pods reach it through their gateway, the node delivers it to the
/// local server.
pub async fn ensure_local_address(runner: &Runner, address: Ipv4Addr) -> Result<()> {
    runner
        .run(
            "ip",
            &[
                "addr".into(),
                "replace".into(),
                format!("{address}/32"),
                "dev".into(),
                "lo".into(),
            ],
        )
        .await?;
    Ok(())
}

/// Turns on hairpin mode on every port of `bridge`: with `br_netfilter` loaded (Docker loads
/// it), a pod reaching its own Service is DNATed back to itself and bridged out of the port it
/// came in on, which a bridge refuses without hairpin mode. For bridges run behind a command
/// prefix (the datapath tests' network namespaces); the node agent does the same for its Docker
/// bridge after each sandbox start (`skiff_agent::pod_network::ensure_hairpin`).
pub async fn ensure_hairpin(runner: &Runner, bridge: &str) -> Result<()> {
    let listing = runner
        .run(
            "ip",
            &[
                "-o".into(),
                "link".into(),
                "show".into(),
                "master".into(),
                bridge.into(),
            ],
        )
        .await?;
    for port in parse_link_names(&listing) {
        runner
            .run(
                "bridge",
                &[
                    "link".into(),
                    "set".into(),
                    "dev".into(),
                    port,
                    "hairpin".into(),
                    "on".into(),
                ],
            )
            .await?;
    }
    Ok(())
}

/// Interface names from `ip -o link show` output (`3: p1@if2: <...> ...`).
pub fn parse_link_names(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .filter(|n| !n.is_empty())
        .collect()
}

#[cfg(test)]
mod tests;
