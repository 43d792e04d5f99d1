//! Prometheus metrics of the ingress: requests by Ingress, Service and status code, and a latency
//! histogram by Ingress and Service.

use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("registering metrics: {0}")]
    Register(#[from] prometheus::Error),
}

#[derive(Clone, Debug)]
pub struct Metrics {
    requests: IntCounterVec,
    duration: HistogramVec,
}

impl Metrics {
    pub fn new(registry: &Registry) -> Result<Metrics, Error> {
        let requests = IntCounterVec::new(
            Opts::new(
                "skiff_ingress_requests_total",
                "Requests served by the ingress.",
            ),
            &["ingress", "service", "code"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "skiff_ingress_request_duration_seconds",
                "Time from request to response headers through the ingress.",
            )
            .buckets(prometheus::exponential_buckets(0.0005, 2.0, 16)?),
            &["ingress", "service"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        Ok(Metrics { requests, duration })
    }

    pub fn observe(&self, ingress: &str, service: &str, code: u16, elapsed: Duration) {
        self.requests
            .with_label_values(&[ingress, service, &code.to_string()])
            .inc();
        self.duration
            .with_label_values(&[ingress, service])
            .observe(elapsed.as_secs_f64());
    }
}
