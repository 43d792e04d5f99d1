//! The agent's Prometheus metrics, named as the kubelet names them where one exists.
//!
//! One [`Metrics`] per agent, registered in its own [`prometheus::Registry`] (several agents in
//! one process, as in tests, never collide) or in one the caller gives (`skiff up` shares the
//! control plane's), and served on the node API's `/metrics` and the binary's plain-HTTP metrics
//! listener.

use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("registering metrics: {0}")]
    Register(#[from] prometheus::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub running_pods: IntGauge,
    pub running_containers: IntGaugeVec,
    pub pod_start_duration: HistogramVec,
    pub pod_worker_duration: HistogramVec,
    pub runtime_operations: IntCounterVec,
    pub runtime_operations_errors: IntCounterVec,
    pub runtime_operations_duration: HistogramVec,
    pub probe_total: IntCounterVec,
    pub restarts_total: IntCounterVec,
    pub node_status_updates: IntCounterVec,
    /// 1 for the API server the agent's requests go to, 0 for the others it was given.
    pub api_server_current: IntGaugeVec,
    /// How often the agent moved to another API server.
    pub api_server_switches: IntCounter,
}

impl Metrics {
    /// The metrics in a registry of their own.
    pub fn new() -> Result<Metrics> {
        Self::register(&Registry::new())
    }

    /// The metrics registered in `registry` (which `render` then renders whole); an error if it
    /// already holds an agent's metrics.
    pub fn register(registry: &Registry) -> Result<Metrics> {
        let registry = registry.clone();
        let running_pods = IntGauge::new(
            "kubelet_running_pods",
            "Number of pods that have a running pod sandbox",
        )?;
        let running_containers = IntGaugeVec::new(
            Opts::new(
                "kubelet_running_containers",
                "Number of containers currently running",
            ),
            &["container_state"],
        )?;
        let pod_start_duration = HistogramVec::new(
            HistogramOpts::new(
                "kubelet_pod_start_duration_seconds",
                "Duration in seconds from the agent seeing a pod for the first time to the pod starting to run",
            )
            .buckets(vec![0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 20.0, 30.0, 45.0, 60.0, 120.0]),
            &[],
        )?;
        let pod_worker_duration = HistogramVec::new(
            HistogramOpts::new(
                "kubelet_pod_worker_duration_seconds",
                "Duration in seconds to sync a single pod, by operation type",
            )
            .buckets(prometheus::exponential_buckets(0.005, 2.0, 14)?),
            &["operation_type"],
        )?;
        let runtime_operations = IntCounterVec::new(
            Opts::new(
                "kubelet_docker_operations_total",
                "Cumulative number of Docker operations by operation type",
            ),
            &["operation_type"],
        )?;
        let runtime_operations_errors = IntCounterVec::new(
            Opts::new(
                "kubelet_docker_operations_errors_total",
                "Cumulative number of Docker operation errors by operation type",
            ),
            &["operation_type"],
        )?;
        let runtime_operations_duration = HistogramVec::new(
            HistogramOpts::new(
                "kubelet_docker_operations_duration_seconds",
                "Latency in seconds of Docker operations, by operation type",
            )
            .buckets(prometheus::exponential_buckets(0.001, 2.5, 12)?),
            &["operation_type"],
        )?;
        let probe_total = IntCounterVec::new(
            Opts::new(
                "prober_probe_total",
                "Cumulative number of liveness, readiness or startup probes for a container, by result",
            ),
            &["probe_type", "result", "container", "pod", "namespace"],
        )?;
        let restarts_total = IntCounterVec::new(
            Opts::new(
                "kubelet_container_restarts_total",
                "Cumulative number of container restarts, by reason",
            ),
            &["reason"],
        )?;
        let node_status_updates = IntCounterVec::new(
            Opts::new(
                "kubelet_node_status_updates_total",
                "Node status and lease writes, by kind and result",
            ),
            &["kind", "result"],
        )?;
        let api_server_current = IntGaugeVec::new(
            Opts::new(
                "skiff_agent_api_server_current",
                "1 for the API server the agent's requests go to, 0 for the other ones it was given",
            ),
            &["server"],
        )?;
        let api_server_switches = IntCounter::new(
            "skiff_agent_api_server_switches_total",
            "Times the agent moved to another API server after a failure, timeout or 503/504",
        )?;
        registry.register(Box::new(running_pods.clone()))?;
        registry.register(Box::new(running_containers.clone()))?;
        registry.register(Box::new(pod_start_duration.clone()))?;
        registry.register(Box::new(pod_worker_duration.clone()))?;
        registry.register(Box::new(runtime_operations.clone()))?;
        registry.register(Box::new(runtime_operations_errors.clone()))?;
        registry.register(Box::new(runtime_operations_duration.clone()))?;
        registry.register(Box::new(probe_total.clone()))?;
        registry.register(Box::new(restarts_total.clone()))?;
        registry.register(Box::new(node_status_updates.clone()))?;
        registry.register(Box::new(api_server_current.clone()))?;
        registry.register(Box::new(api_server_switches.clone()))?;
        Ok(Metrics {
            registry,
            running_pods,
            running_containers,
            pod_start_duration,
            pod_worker_duration,
            runtime_operations,
            runtime_operations_errors,
            runtime_operations_duration,
            probe_total,
            restarts_total,
            node_status_updates,
            api_server_current,
            api_server_switches,
        })
    }

    pub fn observe_runtime_operation(&self, operation: &str, took: Duration, failed: bool) {
        self.runtime_operations
            .with_label_values(&[operation])
            .inc();
        if failed {
            self.runtime_operations_errors
                .with_label_values(&[operation])
                .inc();
        }
        self.runtime_operations_duration
            .with_label_values(&[operation])
            .observe(took.as_secs_f64());
    }

    /// The text exposition format.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let families = self.registry.gather();
        // Encoding into a Vec cannot fail for well-formed families.
        let _ = TextEncoder::new().encode(&families, &mut out);
        out
    }
}
