//! Controller-manager metrics (prometheus crate): reconciles and errors per controller, pass
//! durations, wake-ups pending per controller (the "queue depth" of a level-triggered loop), and
//! leadership (is this member active, its term, changes).
//!
//! Invariants: metrics are registered once per process (the supervisor keeps one `Metrics`
//! across terms); registering twice in one registry is reported, never a panic.

use std::time::Duration;

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
        };
        registry.register(Box::new(metrics.reconciles.clone()))?;
        registry.register(Box::new(metrics.durations.clone()))?;
        registry.register(Box::new(metrics.queue_depth.clone()))?;
        registry.register(Box::new(metrics.leader.clone()))?;
        registry.register(Box::new(metrics.term.clone()))?;
        registry.register(Box::new(metrics.leader_changes.clone()))?;
        registry.register(Box::new(metrics.start_latency.clone()))?;
        Ok(metrics)
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
