//! The proxy's sync loop: coalesces changes and applies the rule set at most once per
//! `min_interval`, retrying failures with back-off.
//!
//! [`Pacer`] is the pure decision (when to apply next), driven by explicit instants so it is
//! tested without a clock. [`run`] is the shell: it reads the newest [`Snapshot`] from a watch
//! channel, builds the rules ([`crate::rules::build_rules`]) and hands them to [`Nft`]. It
//! publishes the generation of every snapshot whose rules are in effect, which the benchmark
//! uses to time an EndpointSlice change to rules in effect.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::model::NodeInfo;
use crate::nft::Nft;
use crate::rules::{self, build_rules};

/// When to sync next: pure.
#[derive(Clone, Debug)]
pub struct Pacer {
    min_interval: Duration,
    max_backoff: Duration,
    last_attempt: Option<Instant>,
    dirty: bool,
    failures: u32,
}

impl Pacer {
    pub fn new(min_interval: Duration, max_backoff: Duration) -> Pacer {
        Pacer {
            min_interval,
            max_backoff,
            last_attempt: None,
            dirty: false,
            failures: 0,
        }
    }

    /// Something changed: a sync is due.
    pub fn changed(&mut self) {
        self.dirty = true;
    }

    /// The instant of the next sync, or `None` when nothing is due. Never earlier than
    /// `min_interval` (or the back-off after failures) after the previous attempt.
    pub fn next_sync(&self, now: Instant) -> Option<Instant> {
        if !self.dirty {
            return None;
        }
        let Some(last) = self.last_attempt else {
            return Some(now);
        };
        let wait = if self.failures == 0 {
            self.min_interval
        } else {
            let factor = 1u32 << self.failures.min(16);
            self.min_interval
                .saturating_mul(factor)
                .min(self.max_backoff)
        };
        Some((last + wait).max(now))
    }

    /// A sync started at `at` (it covers every change seen so far).
    pub fn started(&mut self, at: Instant) {
        self.dirty = false;
        self.last_attempt = Some(at);
    }

    /// The sync finished; a failed one is due again after back-off.
    pub fn finished(&mut self, ok: bool) {
        if ok {
            self.failures = 0;
        } else {
            self.failures = self.failures.saturating_add(1);
            self.dirty = true;
        }
    }
}

/// Everything the rules are built from, with a generation that grows on every change.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub generation: u64,
    pub services: Vec<Arc<Service>>,
    pub slices: Vec<Arc<EndpointSlice>>,
}

/// Settings of the sync loop.
#[derive(Clone, Debug)]
pub struct LoopConfig {
    pub node: NodeInfo,
    pub rules: rules::Config,
    pub min_interval: Duration,
    pub max_backoff: Duration,
}

/// Applies the rules of the newest snapshot until `shutdown` resolves. `applied` receives the
/// generation of each snapshot whose rules are in effect.
pub async fn run(
    config: LoopConfig,
    mut nft: Nft,
    mut snapshots: watch::Receiver<Arc<Snapshot>>,
    applied: watch::Sender<u64>,
    metrics: Option<Metrics>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut pacer = Pacer::new(config.min_interval, config.max_backoff);
    pacer.changed();
    tokio::pin!(shutdown);
    let mut inputs_open = true;
    loop {
        let next = pacer.next_sync(Instant::now());
        let sleep = async {
            match next {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut shutdown => return,
            changed = snapshots.changed(), if inputs_open => {
                if changed.is_err() {
                    inputs_open = false;
                }
                pacer.changed();
            }
            _ = sleep => {
                let started = Instant::now();
                pacer.started(started);
                let snapshot = snapshots.borrow_and_update().clone();
                let desired = build_rules(&snapshot.services, &snapshot.slices, &config.node, &config.rules);
                let chains = desired.chains.len();
                let result = nft.sync(desired).await;
                let elapsed = started.elapsed();
                if let Some(m) = &metrics {
                    m.observe_sync(elapsed, result.is_ok(), chains);
                }
                match result {
                    Ok(()) => {
                        pacer.finished(true);
                        tracing::debug!(generation = snapshot.generation, ?elapsed, "rules in effect");
                        applied.send_replace(snapshot.generation);
                    }
                    Err(e) => {
                        pacer.finished(false);
                        tracing::warn!(error = %e, "applying the service rules failed; retrying with a full sync");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
