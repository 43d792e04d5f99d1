//! Latency samples and the table the benches print.

use std::time::Duration;

/// A field of `/proc/<pid>/status` in KiB (`VmRSS:`, `RssAnon:`, `RssFile:`).
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A process's resident memory, e.g. `74.4 MiB (anonymous 11.0 MiB)`: the file-backed rest is
/// mostly the executable's own pages, which a debug build (about 190 MiB with its symbols)
/// makes large.
pub fn rss_text(pid: u32) -> String {
    match (
        proc_status_kib(pid, "VmRSS:"),
        proc_status_kib(pid, "RssAnon:"),
    ) {
        (Some(rss), Some(anon)) => format!(
            "{:.1} MiB (anonymous {:.1} MiB)",
            rss as f64 / 1024.0,
            anon as f64 / 1024.0
        ),
        (Some(rss), None) => format!("{:.1} MiB", rss as f64 / 1024.0),
        _ => "unknown".into(),
    }
}

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
