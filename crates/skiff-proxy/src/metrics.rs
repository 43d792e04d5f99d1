//! Prometheus metrics of the proxy, named after kube-proxy's where one exists
//! (`kubeproxy_sync_proxy_rules_duration_seconds`) plus the cluster DNS server's.

use std::time::Duration;

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("registering metrics: {0}")]
    Register(#[from] prometheus::Error),
}

/// Cheap to clone; every clone updates the same series.
#[derive(Clone, Debug)]
pub struct Metrics {
    sync_duration: Histogram,
    sync_failures: IntCounter,
    chains: IntGauge,
    dns_queries: IntCounterVec,
}

impl Metrics {
    pub fn new(registry: &Registry) -> Result<Metrics, Error> {
        let sync_duration = Histogram::with_opts(
            HistogramOpts::new(
                "kubeproxy_sync_proxy_rules_duration_seconds",
                "Time to build and apply the service rules.",
            )
            .buckets(prometheus::exponential_buckets(0.001, 2.0, 14)?),
        )?;
        let sync_failures = IntCounter::new(
            "skiff_proxy_sync_failures_total",
            "Rule syncs that failed (the next one is a full sync).",
        )?;
        let chains = IntGauge::new(
            "skiff_proxy_nftables_chains",
            "Chains in table ip skiff after the last successful sync.",
        )?;
        let dns_queries = IntCounterVec::new(
            Opts::new(
                "skiff_dns_queries_total",
                "DNS queries answered, by outcome.",
            ),
            &["outcome"],
        )?;
        registry.register(Box::new(sync_duration.clone()))?;
        registry.register(Box::new(sync_failures.clone()))?;
        registry.register(Box::new(chains.clone()))?;
        registry.register(Box::new(dns_queries.clone()))?;
        Ok(Metrics {
            sync_duration,
            sync_failures,
            chains,
            dns_queries,
        })
    }

    /// A sync took `elapsed`; `chains` is the size of the rule set it applied.
    pub fn observe_sync(&self, elapsed: Duration, ok: bool, chains: usize) {
        self.sync_duration.observe(elapsed.as_secs_f64());
        if ok {
            self.chains.set(i64::try_from(chains).unwrap_or(i64::MAX));
        } else {
            self.sync_failures.inc();
        }
    }

    /// Outcome: `cluster`, `nxdomain`, `forwarded`, `cached`, `servfail`, `refused`.
    pub fn dns_query(&self, outcome: &str) {
        self.dns_queries.with_label_values(&[outcome]).inc();
    }
}

/// Serves `/metrics` (Prometheus text) and `/healthz`, `/livez`, `/readyz` on an already-bound
/// listener until `shutdown`. A deliberately small HTTP/1.0 responder: one request per
/// connection, which is all a Prometheus scrape needs.
pub async fn serve(
    listener: tokio::net::TcpListener,
    registry: Registry,
    shutdown: impl std::future::Future<Output = ()>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tokio::pin!(shutdown);
    loop {
        let (mut stream, _) = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(_) => continue,
            },
        };
        let registry = registry.clone();
        tokio::spawn(async move {
            let mut buffer = vec![0u8; 4096];
            let mut filled = 0;
            // Read the request head (bounded, with a deadline).
            let read = tokio::time::timeout(Duration::from_secs(5), async {
                while filled < buffer.len() {
                    let n = stream.read(&mut buffer[filled..]).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    filled += n;
                    if buffer[..filled].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            })
            .await;
            if read.is_err() {
                return;
            }
            let head = String::from_utf8_lossy(&buffer[..filled]);
            let path = head.split_whitespace().nth(1).unwrap_or("/");
            let (status, content_type, body) = match path.split('?').next().unwrap_or("") {
                "/metrics" => {
                    let mut text = String::new();
                    let encoder = prometheus::TextEncoder::new();
                    match encoder.encode_utf8(&registry.gather(), &mut text) {
                        Ok(()) => ("200 OK", "text/plain; version=0.0.4", text),
                        Err(e) => ("500 Internal Server Error", "text/plain", e.to_string()),
                    }
                }
                "/healthz" | "/livez" | "/readyz" => ("200 OK", "text/plain", "ok".to_string()),
                _ => ("404 Not Found", "text/plain", "not found".to_string()),
            };
            let response = format!(
                "HTTP/1.0 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}
