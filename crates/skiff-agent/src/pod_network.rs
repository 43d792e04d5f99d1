//! The pod network between nodes: every node's pods are on its own Docker bridge (its pod
//! CIDR); pods of all nodes reach each other without NAT. Two host rules make that so — accept
//! cluster traffic in Docker's `DOCKER-USER` chain (ahead of its bridge isolation) and exempt it
//! from Docker's masquerading — plus a route to each other machine's pod CIDR via its node IP.
//! Rules and routes are computed purely; applying them runs `iptables`/`ip`, idempotently.
//!
//! Hairpin: a pod reaching its own Service may be balanced to itself. Docker loads
//! `br_netfilter`, so the proxy's DNAT happens while the packet is being bridged, and the bridge
//! would then have to send it back out of the port it came in on, which it refuses unless the
//! port is in hairpin mode. [`ensure_hairpin`] turns that mode on for every port of the pods'
//! bridge (the kubelet's `hairpin-veth`); the proxy masquerades such traffic so the reply comes
//! back through the bridge, where conntrack undoes the DNAT.

use std::path::Path;

use tokio::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("running {command}: {detail}")]
    Command { command: String, detail: String },
    #[error(
        "turning on hairpin mode on the ports of bridge {bridge} ({path}): {source}; pods reaching \
         their own Service through its ClusterIP will get no answer (the agent needs root and a \
         writable /sys)"
    )]
    Hairpin {
        bridge: String,
        path: String,
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub const DEFAULT_CLUSTER_CIDR: &str = "10.42.0.0/16";

/// One iptables rule: table, chain and match/target arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub table: &'static str,
    pub chain: &'static str,
    pub args: Vec<String>,
}

/// The host rules for pod-to-pod traffic within `cluster_cidr`.
pub fn cluster_rules(cluster_cidr: &str) -> Vec<Rule> {
    let matching = |target: &str, comment: &str| {
        vec![
            "-s".to_string(),
            cluster_cidr.to_string(),
            "-d".to_string(),
            cluster_cidr.to_string(),
            "-m".to_string(),
            "comment".to_string(),
            "--comment".to_string(),
            comment.to_string(),
            "-j".to_string(),
            target.to_string(),
        ]
    };
    vec![
        Rule {
            table: "filter",
            chain: "DOCKER-USER",
            args: matching("ACCEPT", "skiff: pod to pod"),
        },
        Rule {
            table: "nat",
            chain: "POSTROUTING",
            args: matching("RETURN", "skiff: no NAT between pods"),
        },
    ]
}

/// A node as routing sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRoute {
    pub name: String,
    pub pod_cidr: Option<String>,
    pub internal_ip: Option<String>,
}

/// `(pod CIDR, via)` for every other machine's node: nodes sharing this node's IP are on this
/// machine and their bridges are directly connected.
pub fn routes(own_name: &str, own_ip: &str, nodes: &[NodeRoute]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = nodes
        .iter()
        .filter(|n| n.name != own_name)
        .filter_map(|n| Some((n.pod_cidr.clone()?, n.internal_ip.clone()?)))
        .filter(|(_, ip)| ip != own_ip)
        .collect();
    out.sort();
    out.dedup();
    out
}

async fn run(program: &str, args: &[String]) -> Result<bool> {
    let output = Command::new(program)
        .args(args)
        .output()
        .await
        .map_err(|e| Error::Command {
            command: format!("{program} {}", args.join(" ")),
            detail: e.to_string(),
        })?;
    Ok(output.status.success())
}

fn rule_args(rule: &Rule, op: &str) -> Vec<String> {
    let mut args = vec![
        "-w".to_string(),
        "-t".to_string(),
        rule.table.to_string(),
        op.to_string(),
        rule.chain.to_string(),
    ];
    if op == "-I" {
        args.push("1".to_string());
    }
    args.extend(rule.args.iter().cloned());
    args
}

/// Inserts each rule unless it is already there.
pub async fn ensure_rules(rules: &[Rule]) -> Result<()> {
    for rule in rules {
        if run("iptables", &rule_args(rule, "-C")).await? {
            continue;
        }
        if !run("iptables", &rule_args(rule, "-I")).await? {
            return Err(Error::Command {
                command: format!("iptables {}", rule_args(rule, "-I").join(" ")),
                detail: "failed".into(),
            });
        }
    }
    Ok(())
}

/// Whether every rule is in place.
pub async fn rules_present(rules: &[Rule]) -> Result<bool> {
    for rule in rules {
        if !run("iptables", &rule_args(rule, "-C")).await? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Deletes the rules (every copy).
pub async fn remove_rules(rules: &[Rule]) -> Result<()> {
    for rule in rules {
        while run("iptables", &rule_args(rule, "-D")).await? {}
    }
    Ok(())
}

/// Points each other machine's pod CIDR at its node.
pub async fn ensure_routes(routes: &[(String, String)]) -> Result<()> {
    for (cidr, via) in routes {
        let args: Vec<String> = ["route", "replace", cidr.as_str(), "via", via.as_str()]
            .iter()
            .map(|s| s.to_string())
            .collect();
        if !run("ip", &args).await? {
            return Err(Error::Command {
                command: format!("ip {}", args.join(" ")),
                detail: "failed".into(),
            });
        }
    }
    Ok(())
}

/// Where the kernel lists network interfaces.
pub const SYS_CLASS_NET: &str = "/sys/class/net";

/// Turns on hairpin mode on every port of `bridge` (`<sys_class_net>/<bridge>/brif/<port>/
/// hairpin_mode`), idempotently; returns how many ports it switched on. Call it after each
/// sandbox start (a new port) and once at agent start. Reads and writes sysfs only, which never
/// waits for a disk.
pub fn ensure_hairpin(sys_class_net: &Path, bridge: &str) -> Result<usize> {
    let fail = |path: &Path, source: std::io::Error| Error::Hairpin {
        bridge: bridge.to_string(),
        path: path.display().to_string(),
        source,
    };
    if bridge.is_empty() || bridge.contains('/') || bridge.starts_with('.') {
        return Err(fail(
            sys_class_net,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "not an interface name"),
        ));
    }
    let ports = sys_class_net.join(bridge).join("brif");
    let entries = std::fs::read_dir(&ports).map_err(|e| fail(&ports, e))?;
    let mut switched = 0;
    for entry in entries {
        let entry = entry.map_err(|e| fail(&ports, e))?;
        let mode = entry.path().join("hairpin_mode");
        match std::fs::read_to_string(&mode) {
            Ok(current) if current.trim() == "1" => continue,
            Ok(_) => {}
            // The port went away meanwhile (its pod stopped).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(fail(&mode, e)),
        }
        match std::fs::write(&mode, "1") {
            Ok(()) => switched += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(fail(&mode, e)),
        }
    }
    Ok(switched)
}

#[cfg(test)]
mod tests;
