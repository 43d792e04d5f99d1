//! From a pod's container spec to a runtime [`ContainerSpec`], purely: command and args with
//! `$(VAR)` expansion, environment (values, ConfigMap/Secret keys, `envFrom`, downward API),
//! volume mounts, resources as cgroup settings, security context basics, network mode. Also the
//! sandbox's spec (hostname, host aliases) and the pod's resolv.conf ([`resolv_conf`]), which
//! every container gets bind-mounted at `/etc/resolv.conf`. Missing references are
//! `CreateContainerConfigError`s.

mod env;

use std::collections::HashMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use skiff_core::resolv_conf::{self, ClusterDns, HostResolvConf};

use crate::downward::{self, NodeFacts};
use crate::labels::{self, Identity, Kind};
use crate::pod;
use crate::runtime::{ContainerSpec, Mount, NetworkMode, Resources};

pub use env::expand;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The kubelet's `CreateContainerConfigError`: a reference cannot be resolved.
    #[error("{0}")]
    Config(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The ConfigMaps and Secrets of the pod's namespace that it references (by name).
#[derive(Clone, Debug, Default)]
pub struct Objects {
    pub config_maps: HashMap<String, ConfigMap>,
    pub secrets: HashMap<String, Secret>,
}

/// Where each of the pod's volumes is on the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeSource {
    pub host_path: String,
    /// configMap, secret, downwardAPI and projected volumes are always mounted read-only.
    pub read_only: bool,
}

/// Cluster-wide settings containers see.
#[derive(Clone, Debug)]
pub struct ClusterFacts {
    /// The cluster DNS addresses (`ClusterFirst` pods' nameservers).
    pub dns_servers: Vec<IpAddr>,
    pub domain: String,
    /// `KUBERNETES_SERVICE_HOST`/`_PORT` when the API has a service address.
    pub kubernetes_service: Option<(String, u16)>,
}

pub struct Context<'a> {
    pub node: &'a NodeFacts,
    pub cluster: &'a ClusterFacts,
    pub objects: &'a Objects,
    pub volumes: &'a HashMap<String, VolumeSource>,
    pub sandbox_id: &'a str,
    pub grace_seconds: i64,
    /// The node path of the pod's resolv.conf, bind-mounted at `/etc/resolv.conf` (unless the
    /// container mounts something there itself).
    pub resolv_conf: Option<&'a str>,
}

/// Where containers find their resolver configuration.
pub const RESOLV_CONF_PATH: &str = "/etc/resolv.conf";

fn identity(
    pod: &Pod,
    node: &str,
    name: &str,
    kind: Kind,
    attempt: u32,
    sandbox_id: Option<&str>,
    grace: i64,
) -> Identity {
    Identity {
        node: node.to_string(),
        pod_uid: pod::uid(pod).to_string(),
        namespace: pod::namespace(pod).to_string(),
        pod_name: pod::name(pod).to_string(),
        container_name: name.to_string(),
        kind,
        attempt,
        sandbox_id: sandbox_id.map(str::to_string),
        spec_hash: None,
        grace_seconds: Some(grace),
    }
}

fn millis(q: Option<&k8s_openapi::apimachinery::pkg::api::resource::Quantity>) -> Option<i64> {
    q.and_then(downward::quantity)
        .map(|v| (v * 1000.0).ceil() as i64)
}

/// cgroup settings from requests and limits, as the kubelet derives them.
pub fn resources(container: &Container) -> Resources {
    let r = container.resources.clone().unwrap_or_default();
    let limits = r.limits.unwrap_or_default();
    let requests = r.requests.unwrap_or_default();
    let memory = limits
        .get("memory")
        .and_then(downward::quantity)
        .map(|v| v.ceil() as i64);
    let cpu_limit = millis(limits.get("cpu"));
    let cpu_request = millis(requests.get("cpu")).or(cpu_limit);
    const PERIOD: i64 = 100_000;
    Resources {
        memory_limit_bytes: memory,
        cpu_quota_micros: cpu_limit.map(|m| (m * PERIOD / 1000).max(1000)),
        cpu_period_micros: cpu_limit.map(|_| PERIOD),
        cpu_shares: Some(cpu_request.map(|m| (m * 1024 / 1000).max(2)).unwrap_or(2)),
    }
}

fn security(pod: &Pod, container: &Container, spec: &mut ContainerSpec) {
    let pod_sc = pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.clone())
        .unwrap_or_default();
    let sc = container.security_context.clone().unwrap_or_default();
    let user = sc.run_as_user.or(pod_sc.run_as_user);
    let group = sc.run_as_group.or(pod_sc.run_as_group);
    spec.user = match (user, group) {
        (Some(u), Some(g)) => Some(format!("{u}:{g}")),
        (Some(u), None) => Some(u.to_string()),
        (None, Some(g)) => Some(format!("0:{g}")),
        (None, None) => None,
    };
    spec.read_only_rootfs = sc.read_only_root_filesystem.unwrap_or(false);
    spec.privileged = sc.privileged.unwrap_or(false);
    if let Some(caps) = sc.capabilities {
        spec.cap_add = caps.add.unwrap_or_default();
        spec.cap_drop = caps.drop.unwrap_or_default();
    }
}

/// The spec of an app or init container of `pod`.
pub fn container_spec(
    pod: &Pod,
    container: &Container,
    kind: Kind,
    attempt: u32,
    ctx: &Context<'_>,
) -> Result<ContainerSpec> {
    let env_vars = env::build(pod, container, ctx)?;
    let lookup: HashMap<&str, &str> = env_vars
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let ident = identity(
        pod,
        &ctx.node.node_name,
        &container.name,
        kind,
        attempt,
        Some(ctx.sandbox_id),
        ctx.grace_seconds,
    );
    let mut mounts = Vec::new();
    for vm in container.volume_mounts.iter().flatten() {
        let Some(volume) = ctx.volumes.get(&vm.name) else {
            return Err(Error::Config(format!(
                "cannot find volume \"{}\" to mount into container \"{}\"",
                vm.name, container.name
            )));
        };
        let mut source = volume.host_path.clone();
        let sub_path = vm.sub_path.clone().unwrap_or_default();
        if !sub_path.is_empty() {
            if sub_path.starts_with('/') || sub_path.split('/').any(|part| part == "..") {
                return Err(Error::Config(format!("invalid subPath \"{sub_path}\"")));
            }
            source = format!("{}/{}", source.trim_end_matches('/'), sub_path);
        }
        mounts.push(Mount {
            source,
            target: vm.mount_path.clone(),
            read_only: volume.read_only || vm.read_only.unwrap_or(false),
        });
    }
    if let Some(source) = ctx.resolv_conf
        && !mounts.iter().any(|m| m.target == RESOLV_CONF_PATH)
    {
        mounts.push(Mount {
            source: source.to_string(),
            target: RESOLV_CONF_PATH.to_string(),
            // Writable like the rest of the container's filesystem, as containerd mounts it.
            read_only: container
                .security_context
                .as_ref()
                .and_then(|s| s.read_only_root_filesystem)
                .unwrap_or(false),
        });
    }
    let network = if pod::host_network(pod) {
        NetworkMode::Host
    } else {
        NetworkMode::Container {
            id: ctx.sandbox_id.to_string(),
        }
    };
    let mut spec = ContainerSpec {
        name: ident.docker_name(),
        image: container.image.clone().unwrap_or_default(),
        labels: ident.to_labels(),
        entrypoint: container
            .command
            .as_ref()
            .map(|c| c.iter().map(|a| expand(a, &lookup)).collect()),
        cmd: container
            .args
            .as_ref()
            .map(|c| c.iter().map(|a| expand(a, &lookup)).collect()),
        working_dir: container.working_dir.clone().filter(|w| !w.is_empty()),
        env: env_vars,
        network: Some(network),
        mounts,
        resources: resources(container),
        tty: container.tty.unwrap_or(false),
        stdin: container.stdin.unwrap_or(false),
        stdin_once: container.stdin_once.unwrap_or(false),
        ..Default::default()
    };
    security(pod, container, &mut spec);
    Ok(spec)
}

/// The text of the pod's resolv.conf from its `dnsPolicy` and `dnsConfig`, the cluster DNS and
/// the node's resolv.conf (see [`skiff_core::resolv_conf`]).
pub fn resolv_conf(pod: &Pod, cluster: &ClusterFacts, node: &HostResolvConf) -> String {
    let spec = pod.spec.clone().unwrap_or_default();
    resolv_conf::pod_resolv_conf(
        &spec,
        pod::namespace(pod),
        &ClusterDns {
            nameservers: cluster.dns_servers.clone(),
            domain: cluster.domain.clone(),
        },
        node,
    )
}

/// The sandbox container: holds the network namespace, the hostname and the host aliases. Its
/// own resolv.conf is Docker's and unused: the containers that join it get the pod's.
pub fn sandbox_spec(
    pod: &Pod,
    attempt: u32,
    network: &str,
    image: &str,
    node: &NodeFacts,
    grace: i64,
) -> ContainerSpec {
    let ident = identity(
        pod,
        &node.node_name,
        labels::SANDBOX_CONTAINER_NAME,
        Kind::Sandbox,
        attempt,
        None,
        grace,
    );
    let spec = pod.spec.clone().unwrap_or_default();
    let host_network = pod::host_network(pod);
    let hostname: String = spec
        .hostname
        .clone()
        .unwrap_or_else(|| pod::name(pod).to_string())
        .chars()
        .take(63)
        .collect();
    let mut extra_hosts = Vec::new();
    for alias in spec.host_aliases.iter().flatten() {
        for host in alias.hostnames.iter().flatten() {
            extra_hosts.push(format!("{host}:{}", alias.ip));
        }
    }
    ContainerSpec {
        name: ident.docker_name(),
        image: image.to_string(),
        labels: ident.to_labels(),
        network: Some(if host_network {
            NetworkMode::Host
        } else {
            NetworkMode::Bridge {
                network: network.to_string(),
            }
        }),
        hostname: (!host_network).then_some(hostname),
        extra_hosts,
        resources: Resources {
            cpu_shares: Some(2),
            ..Default::default()
        },
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;
