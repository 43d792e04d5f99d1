//! Latency samples and the table the benches print.

use std::time::Duration;

/// Latencies of one phase.
#[derive(Default, Clone)]
pub struct Samples {
    pub latencies: Vec<Duration>,
    pub errors: u64,
    pub elapsed: Duration,
}

impl Samples {
    pub fn merge(&mut self, other: Samples) {
        self.latencies.extend(other.latencies);
        self.errors += other.errors;
    }

    pub fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted[idx.min(sorted.len() - 1)]
    }

    pub fn max(&self) -> Duration {
        self.latencies.iter().max().copied().unwrap_or_default()
    }

    pub fn throughput(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.latencies.len() as f64 / secs
        } else {
            0.0
        }
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub fn header() {
    println!(
        "{:<10} {:<22} {:>8} {:>7} {:>10} {:>9} {:>9} {:>9} {:>7}",
        "SYSTEM", "PHASE", "OPS", "SECS", "OPS/S", "P50_MS", "P99_MS", "MAX_MS", "ERRORS"
    );
}

pub fn row(system: &str, phase: &str, s: &Samples) {
    println!(
        "{:<10} {:<22} {:>8} {:>7.2} {:>10.0} {:>9.2} {:>9.2} {:>9.2} {:>7}",
        system,
        phase,
        s.latencies.len(),
        s.elapsed.as_secs_f64(),
        s.throughput(),
        ms(s.percentile(0.50)),
        ms(s.percentile(0.99)),
        ms(s.max()),
        s.errors
    );
}
