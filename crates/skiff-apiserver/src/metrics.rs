//! The API server's Prometheus metrics (Kubernetes names: `apiserver_request_total`,
//! `apiserver_request_duration_seconds`, in-flight requests, open watches), rendered together
//! with every other metric of the process's registry at `/metrics`.

use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

use crate::request_info::RequestInfo;

#[derive(Clone)]
pub struct ApiMetrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    pub inflight: IntGauge,
    pub watches: IntGauge,
}

impl ApiMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let requests = IntCounterVec::new(
            Opts::new(
                "apiserver_request_total",
                "Requests by verb, group, resource, subresource and HTTP code",
            ),
            &["verb", "group", "resource", "subresource", "code"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "apiserver_request_duration_seconds",
                "Request latency by verb and resource (watches excluded)",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0,
                30.0, 60.0,
            ]),
            &["verb", "group", "resource", "subresource"],
        )?;
        let inflight = IntGauge::new(
            "apiserver_current_inflight_requests",
            "Requests being served",
        )?;
        let watches = IntGauge::new("apiserver_longrunning_requests", "Open watches")?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(inflight.clone()))?;
        registry.register(Box::new(watches.clone()))?;
        Ok(ApiMetrics {
            registry: registry.clone(),
            requests,
            duration,
            inflight,
            watches,
        })
    }

    pub fn observe(&self, info: &RequestInfo, code: http::StatusCode, elapsed: Duration) {
        let verb = info.verb.to_ascii_uppercase();
        let resource = if info.is_resource_request {
            info.resource.as_str()
        } else {
            ""
        };
        let labels = [
            verb.as_str(),
            info.group.as_str(),
            resource,
            info.subresource.as_str(),
        ];
        self.requests
            .with_label_values(&[labels[0], labels[1], labels[2], labels[3], code.as_str()])
            .inc();
        if info.verb != "watch" {
            self.duration
                .with_label_values(&labels)
                .observe(elapsed.as_secs_f64());
        }
    }

    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}
