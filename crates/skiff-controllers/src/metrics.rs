//! Controller-manager metrics (prometheus crate): reconciles and errors per controller, pass
//! durations, wake-ups pending per controller (the "queue depth" of a level-triggered loop), and
//! leadership (is this member active, its term, changes), and the Nodes by readiness as the
//! leader's node lifecycle controller sees them (zeroed when this member stops leading, so only
//! the leader reports nodes).
//!
//! Invariants: metrics are registered once per process (the supervisor keeps one `Metrics`
//! across terms); registering twice in one registry is reported, never a panic.

use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

/// Every controller-manager metric.
#[derive(Clone)]
pub struct Metrics {
    pub reconciles: IntCounterVec,
    pub durations: HistogramVec,
    pub queue_depth: IntGaugeVec,
    pub leader: IntGauge,
    pub term: IntGauge,
    pub leader_changes: IntCounter,
    pub start_latency: Histogram,
    pub nodes: IntGaugeVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// Create and register the metrics.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let metrics = Self {
            reconciles: IntCounterVec::new(
                Opts::new(
                    "skiff_controller_reconcile_total",
                    "Controller passes by controller and result (success, error).",
                ),
                &["controller", "result"],
            )?,
            durations: HistogramVec::new(
                HistogramOpts::new(
                    "skiff_controller_reconcile_duration_seconds",
                    "Duration of a controller pass.",
                )
                .buckets(prometheus::exponential_buckets(0.001, 2.0, 16)?),
                &["controller"],
            )?,
            queue_depth: IntGaugeVec::new(
                Opts::new("workqueue_depth", "Wake-ups waiting for a controller pass."),
                &["name"],
            )?,
            leader: IntGauge::new(
                "skiff_controller_manager_leader",
                "1 while this member runs the scheduler and controllers.",
            )?,
            term: IntGauge::new(
                "skiff_controller_manager_term",
                "The Raft term the control loops act in (0 when not leading).",
            )?,
            leader_changes: IntCounter::new(
                "skiff_controller_manager_leader_changes_total",
                "Times this member started or stopped its control loops.",
            )?,
            start_latency: Histogram::with_opts(
                HistogramOpts::new(
                    "skiff_controller_manager_start_seconds",
                    "From winning leadership to caches synced and loops started.",
                )
                .buckets(prometheus::exponential_buckets(0.01, 2.0, 12)?),
            )?,
            nodes: IntGaugeVec::new(
                Opts::new(
                    "skiff_nodes",
                    "Nodes by their Ready condition (true, false, unknown), on the leading member.",
                ),
                &["ready"],
            )?,
        };
        registry.register(Box::new(metrics.nodes.clone()))?;
        registry.register(Box::new(metrics.reconciles.clone()))?;
        registry.register(Box::new(metrics.durations.clone()))?;
        registry.register(Box::new(metrics.queue_depth.clone()))?;
        registry.register(Box::new(metrics.leader.clone()))?;
        registry.register(Box::new(metrics.term.clone()))?;
        registry.register(Box::new(metrics.leader_changes.clone()))?;
        registry.register(Box::new(metrics.start_latency.clone()))?;
        Ok(metrics)
    }

    /// Publish the Nodes' readiness (see [`node_readiness`]).
    pub fn set_nodes<'a>(&self, nodes: impl IntoIterator<Item = &'a Node>) {
        let counts = node_readiness(nodes);
        for (label, count) in [
            ("true", counts.ready),
            ("false", counts.not_ready),
            ("unknown", counts.unknown),
        ] {
            self.nodes
                .with_label_values(&[label])
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
    }

    /// Forget the Nodes (this member stopped leading; the new leader reports them).
    pub fn clear_nodes(&self) {
        for label in ["true", "false", "unknown"] {
            self.nodes.with_label_values(&[label]).set(0);
        }
    }

    /// Record one pass.
    pub fn observe_reconcile(&self, controller: &str, took: Duration, ok: bool) {
        self.reconciles
            .with_label_values(&[controller, if ok { "success" } else { "error" }])
            .inc();
        self.durations
            .with_label_values(&[controller])
            .observe(took.as_secs_f64());
    }
}

/// Nodes counted by the status of their `Ready` condition.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Readiness {
    pub ready: usize,
    pub not_ready: usize,
    /// `Unknown`, or no `Ready` condition at all (a Node that never reported).
    pub unknown: usize,
}

/// Count Nodes by their `Ready` condition. Pure.
pub fn node_readiness<'a>(nodes: impl IntoIterator<Item = &'a Node>) -> Readiness {
    let mut counts = Readiness::default();
    for node in nodes {
        let ready = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status.as_str());
        match ready {
            Some("True") => counts.ready += 1,
            Some("False") => counts.not_ready += 1,
            _ => counts.unknown += 1,
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(ready: Option<&str>) -> Node {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n"},
            "status": {"conditions": ready.map(|r| vec![
                serde_json::json!({"type": "MemoryPressure", "status": "False"}),
                serde_json::json!({"type": "Ready", "status": r}),
            ]).unwrap_or_default()}
        }))
        .expect("a valid Node")
    }

    #[test]
    fn nodes_are_counted_by_their_ready_condition() {
        let nodes = [
            node(Some("True")),
            node(Some("True")),
            node(Some("False")),
            node(Some("Unknown")),
            node(None),
        ];
        assert_eq!(
            node_readiness(&nodes),
            Readiness {
                ready: 2,
                not_ready: 1,
                unknown: 2
            }
        );
        assert_eq!(node_readiness(&[]), Readiness::default());
    }

    #[test]
    fn gauges_follow_the_nodes_and_clear_on_losing_leadership() -> Result<(), prometheus::Error> {
        let metrics = Metrics::new(&Registry::new())?;
        metrics.set_nodes(&[node(Some("True")), node(Some("False"))]);
        assert_eq!(metrics.nodes.with_label_values(&["true"]).get(), 1);
        assert_eq!(metrics.nodes.with_label_values(&["false"]).get(), 1);
        assert_eq!(metrics.nodes.with_label_values(&["unknown"]).get(), 0);
        metrics.clear_nodes();
        assert_eq!(metrics.nodes.with_label_values(&["true"]).get(), 0);
        assert_eq!(metrics.nodes.with_label_values(&["false"]).get(), 0);
        Ok(())
    }
}
