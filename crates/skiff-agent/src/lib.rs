//! skiff-agent: the node agent ("kubelet"). It runs the pods bound to its node as Docker
//! containers and serves the node API (logs, exec, attach, port-forward, stats) to the API
//! server.
//!
//! Shape: pure decisions with thin async shells. [`plan::plan_pod`] decides the runtime actions
//! for a pod, [`status::compute`] its status, [`container_config`] and [`volumes`] the container
//! and volume settings, [`probe`] the probe verdicts — all without I/O and unit-tested. The
//! [`worker`] runs one pod through them against a [`runtime::ContainerRuntime`] (Docker via
//! bollard); the [`shell`] connects workers to the Kubernetes API (kube-rs); [`node_api`] serves
//! the streaming endpoints.
//!
//! **Architecture invariant:** everything the agent knows about a container across its own
//! restarts is in the container's Docker labels ([`labels`]); it never keeps a state file of
//! containers, so a restarted agent re-adopts what runs and never duplicates it.

pub mod backoff;
pub mod config;
pub mod container_config;
pub mod downward;
pub mod images;
pub mod labels;
pub mod metrics;
pub mod node_api;
pub mod plan;
pub mod pod;
pub mod pod_network;
pub mod pods;
pub mod probe;
pub mod runtime;
pub mod shell;
pub mod status;
pub mod volumes;
pub mod worker;

pub use config::Config;
pub use shell::run;
