//! Scheduler metrics with kube-scheduler's names: `scheduler_schedule_attempts_total{result,
//! profile}`, `scheduler_e2e_scheduling_duration_seconds{result, profile}`,
//! `scheduler_pending_pods{queue}`, `scheduler_preemption_attempts_total`.
//!
//! Invariants: registered once per process; registering twice is an error, never a panic.

use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
};

/// The scheduler's metrics.
#[derive(Clone)]
pub struct Metrics {
    pub attempts: IntCounterVec,
    pub e2e_duration: HistogramVec,
    pub pending: IntGaugeVec,
    pub preemption_attempts: IntCounter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("scheduler::Metrics")
    }
}

impl Metrics {
    /// Create and register the metrics.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let metrics = Self::unregistered()?;
        registry.register(Box::new(metrics.attempts.clone()))?;
        registry.register(Box::new(metrics.e2e_duration.clone()))?;
        registry.register(Box::new(metrics.pending.clone()))?;
        registry.register(Box::new(metrics.preemption_attempts.clone()))?;
        Ok(metrics)
    }

    /// The metrics, registered nowhere (benchmarks, tests).
    pub fn unregistered() -> Result<Self, prometheus::Error> {
        Ok(Self {
            attempts: IntCounterVec::new(
                Opts::new(
                    "scheduler_schedule_attempts_total",
                    "Number of attempts to schedule pods, by the result.",
                ),
                &["result", "profile"],
            )?,
            e2e_duration: HistogramVec::new(
                HistogramOpts::new(
                    "scheduler_e2e_scheduling_duration_seconds",
                    "E2e scheduling latency in seconds (scheduling algorithm + binding).",
                )
                .buckets(prometheus::exponential_buckets(0.001, 2.0, 15)?),
                &["result", "profile"],
            )?,
            pending: IntGaugeVec::new(
                Opts::new(
                    "scheduler_pending_pods",
                    "Number of pending pods, by the queue type.",
                ),
                &["queue"],
            )?,
            preemption_attempts: IntCounter::new(
                "scheduler_preemption_attempts_total",
                "Total preemption attempts in the cluster till now.",
            )?,
        })
    }

    /// Record an attempt.
    pub fn attempt(&self, result: &str, seconds: f64) {
        self.attempts
            .with_label_values(&[result, "default-scheduler"])
            .inc();
        self.e2e_duration
            .with_label_values(&[result, "default-scheduler"])
            .observe(seconds);
    }
}
