//! The Node object and its heartbeat: registration with capacity, allocatable, addresses, node
//! info and conditions (built purely by [`node_status`]), status refreshes, and the
//! `coordination.k8s.io` Lease in `kube-node-lease` renewed every 10 s.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus,
    NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};

pub const LEASE_NAMESPACE: &str = "kube-node-lease";
pub const LEASE_DURATION_SECONDS: i32 = 40;
pub const LEASE_RENEW: Duration = Duration::from_secs(10);
/// How soon a failed renewal is tried again.
pub const LEASE_RETRY: Duration = Duration::from_secs(2);
pub const KUBELET_VERSION: &str = "v1.33.0-skiff";

/// What the node measures about itself.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Facts {
    pub name: String,
    pub internal_ip: String,
    pub hostname: String,
    pub cpu_millis: i64,
    pub memory_bytes: i64,
    pub max_pods: u32,
    pub node_api_port: i32,
    pub runtime_version: String,
    pub kernel_version: String,
    pub os_image: String,
    pub machine_id: String,
    pub boot_id: String,
    pub memory_available_bytes: i64,
    pub disk_available_fraction: f64,
    pub pod_cidr: String,
}

fn condition(
    kind: &str,
    ok: bool,
    reason_ok: &str,
    reason_bad: &str,
    message: &str,
    now: Timestamp,
) -> NodeCondition {
    // Ready is "True" when fine; the pressure conditions are "False" when fine.
    let healthy_status = if kind == "Ready" { "True" } else { "False" };
    let bad_status = if kind == "Ready" { "False" } else { "True" };
    NodeCondition {
        type_: kind.to_string(),
        status: if ok { healthy_status } else { bad_status }.to_string(),
        reason: Some(if ok { reason_ok } else { reason_bad }.to_string()),
        message: Some(message.to_string()),
        last_heartbeat_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// The Node's status from its facts. `previous` keeps the conditions' transition times.
pub fn node_status(facts: &Facts, previous: Option<&NodeStatus>, now: Timestamp) -> NodeStatus {
    let memory_ok = facts.memory_available_bytes > 100 * 1024 * 1024;
    let disk_ok = facts.disk_available_fraction > 0.10;
    let mut conditions = vec![
        condition(
            "MemoryPressure",
            memory_ok,
            "KubeletHasSufficientMemory",
            "KubeletHasInsufficientMemory",
            "kubelet has sufficient memory available",
            now,
        ),
        condition(
            "DiskPressure",
            disk_ok,
            "KubeletHasNoDiskPressure",
            "KubeletHasDiskPressure",
            "kubelet has no disk pressure",
            now,
        ),
        condition(
            "PIDPressure",
            true,
            "KubeletHasSufficientPID",
            "KubeletHasInsufficientPID",
            "kubelet has sufficient PID available",
            now,
        ),
        condition(
            "Ready",
            true,
            "KubeletReady",
            "KubeletNotReady",
            "kubelet is posting ready status",
            now,
        ),
    ];
    for c in &mut conditions {
        let old = previous
            .and_then(|s| s.conditions.as_ref())
            .and_then(|list| list.iter().find(|o| o.type_ == c.type_));
        if let Some(old) = old
            && old.status == c.status
        {
            c.last_transition_time = old.last_transition_time.clone();
        }
    }
    let resources = |cpu: i64, memory: i64| {
        BTreeMap::from([
            ("cpu".to_string(), Quantity(format!("{cpu}m"))),
            (
                "memory".to_string(),
                Quantity(format!("{}Ki", memory / 1024)),
            ),
            ("pods".to_string(), Quantity(facts.max_pods.to_string())),
            ("ephemeral-storage".to_string(), Quantity("0".to_string())),
        ])
    };
    NodeStatus {
        capacity: Some(resources(facts.cpu_millis, facts.memory_bytes)),
        // Reserve a little memory for the system, as kubelets do by default (eviction threshold).
        allocatable: Some(resources(
            facts.cpu_millis,
            (facts.memory_bytes - 100 * 1024 * 1024).max(0),
        )),
        conditions: Some(conditions),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: facts.internal_ip.clone(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: facts.hostname.clone(),
            },
        ]),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint {
                port: facts.node_api_port,
            }),
        }),
        node_info: Some(NodeSystemInfo {
            architecture: std::env::consts::ARCH
                .replace("x86_64", "amd64")
                .replace("aarch64", "arm64"),
            boot_id: facts.boot_id.clone(),
            container_runtime_version: facts.runtime_version.clone(),
            kernel_version: facts.kernel_version.clone(),
            kube_proxy_version: KUBELET_VERSION.into(),
            kubelet_version: KUBELET_VERSION.into(),
            machine_id: facts.machine_id.clone(),
            operating_system: "linux".into(),
            os_image: facts.os_image.clone(),
            system_uuid: facts.machine_id.clone(),
            swap: None,
        }),
        ..Default::default()
    }
}

/// Reads the facts a node reports about its machine.
pub fn measure(mut facts: Facts, data_dir: &std::path::Path) -> Facts {
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    facts.cpu_millis = std::thread::available_parallelism()
        .map(|n| n.get() as i64 * 1000)
        .unwrap_or(1000);
    let meminfo = read("/proc/meminfo");
    let field = |name: &str| {
        meminfo
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<i64>().ok())
            .map(|kib| kib * 1024)
            .unwrap_or(0)
    };
    facts.memory_bytes = field("MemTotal:");
    facts.memory_available_bytes = field("MemAvailable:");
    facts.kernel_version = read("/proc/sys/kernel/osrelease");
    facts.boot_id = read("/proc/sys/kernel/random/boot_id");
    facts.machine_id = read("/etc/machine-id");
    facts.hostname = read("/proc/sys/kernel/hostname");
    facts.os_image = read("/etc/os-release")
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".into());
    facts.disk_available_fraction = nix::sys::statvfs::statvfs(data_dir)
        .map(|s| s.blocks_available() as f64 / (s.blocks().max(1) as f64))
        .unwrap_or(1.0);
    facts
}

/// Creates the Node if it does not exist; returns its spec (for the pod CIDR).
pub async fn register(api: &Api<Node>, facts: &Facts) -> kube::Result<Node> {
    if let Some(existing) = api.get_opt(&facts.name).await? {
        return Ok(existing);
    }
    let node = Node {
        metadata: ObjectMeta {
            name: Some(facts.name.clone()),
            labels: Some(BTreeMap::from([
                ("kubernetes.io/hostname".to_string(), facts.name.clone()),
                ("kubernetes.io/os".to_string(), "linux".to_string()),
                (
                    "kubernetes.io/arch".to_string(),
                    std::env::consts::ARCH
                        .replace("x86_64", "amd64")
                        .replace("aarch64", "arm64"),
                ),
            ])),
            ..Default::default()
        },
        spec: Some(NodeSpec::default()),
        status: Some(node_status(facts, None, Timestamp::now())),
    };
    match api.create(&PostParams::default(), &node).await {
        Ok(created) => Ok(created),
        Err(kube::Error::Api(status)) if status.code == 409 => api.get(&facts.name).await,
        Err(e) => Err(e),
    }
}

/// Writes the Node's status (merge patch on the status subresource).
pub async fn update_status(
    api: &Api<Node>,
    facts: &Facts,
    previous: Option<&NodeStatus>,
) -> kube::Result<Node> {
    let status = node_status(facts, previous, Timestamp::now());
    let patch = serde_json::json!({ "status": status });
    api.patch_status(&facts.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
}

/// Creates or renews the node's Lease.
pub async fn renew_lease(api: &Api<Lease>, node: &Node) -> kube::Result<()> {
    let name = node.metadata.name.clone().unwrap_or_default();
    let now = MicroTime(Timestamp::now());
    match api.get_opt(&name).await? {
        Some(mut lease) => {
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            spec.holder_identity = Some(name.clone());
            spec.lease_duration_seconds = Some(LEASE_DURATION_SECONDS);
            spec.renew_time = Some(now);
            api.replace(&name, &PostParams::default(), &lease).await?;
        }
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(LEASE_NAMESPACE.into()),
                    owner_references: node.metadata.uid.clone().map(|uid| {
                        vec![OwnerReference {
                            api_version: "v1".into(),
                            kind: "Node".into(),
                            name: name.clone(),
                            uid,
                            ..Default::default()
                        }]
                    }),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(name.clone()),
                    lease_duration_seconds: Some(LEASE_DURATION_SECONDS),
                    renew_time: Some(now),
                    ..Default::default()
                }),
            };
            api.create(&PostParams::default(), &lease).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
