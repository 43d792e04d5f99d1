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

/// The cumulative buckets `(le, count)` of a Prometheus histogram in `text` (the exposition
/// format), summed over every series of `name` whose labels contain each of `labels`.
pub fn histogram_buckets(text: &str, name: &str, labels: &[&str]) -> Vec<(f64, f64)> {
    let prefix = format!("{name}_bucket{{");
    let mut out: Vec<(f64, f64)> = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(&prefix) else {
            continue;
        };
        let Some((series, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        if !labels.iter().all(|l| series.contains(l)) {
            continue;
        }
        let Some(le) = series
            .split(',')
            .find_map(|kv| kv.trim().strip_prefix("le=\""))
            .and_then(|v| v.strip_suffix('"'))
        else {
            continue;
        };
        let le = if le == "+Inf" {
            f64::INFINITY
        } else {
            match le.parse() {
                Ok(v) => v,
                Err(_) => continue,
            }
        };
        let Ok(count) = value.trim().parse::<f64>() else {
            continue;
        };
        match out.iter_mut().find(|(l, _)| *l == le) {
            Some((_, c)) => *c += count,
            None => out.push((le, count)),
        }
    }
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

/// From cumulative buckets: (observations, observations above the largest bound <= `secs`).
pub fn count_above(buckets: &[(f64, f64)], secs: f64) -> (f64, f64) {
    let total = buckets.last().map(|b| b.1).unwrap_or(0.0);
    let below = buckets
        .iter()
        .rev()
        .find(|(le, _)| *le <= secs)
        .map(|b| b.1)
        .unwrap_or(0.0);
    (total, total - below)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_sum_matching_series_and_count_the_tail() {
        let text = "\
# TYPE h histogram
h_bucket{verb=\"create\",resource=\"configmaps\",le=\"0.025\"} 90
h_bucket{verb=\"create\",resource=\"configmaps\",le=\"0.05\"} 98
h_bucket{verb=\"create\",resource=\"configmaps\",le=\"+Inf\"} 100
h_bucket{verb=\"get\",resource=\"configmaps\",le=\"0.025\"} 5
h_bucket{verb=\"get\",resource=\"configmaps\",le=\"+Inf\"} 7
h_bucket{verb=\"create\",resource=\"pods\",le=\"0.025\"} 1
h_bucket{verb=\"create\",resource=\"pods\",le=\"+Inf\"} 1
h_sum{verb=\"create\"} 3.5
";
        let b = histogram_buckets(text, "h", &["verb=\"create\""]);
        assert_eq!(b, vec![(0.025, 91.0), (0.05, 98.0), (f64::INFINITY, 101.0)]);
        assert_eq!(count_above(&b, 0.025), (101.0, 10.0));
        assert_eq!(count_above(&b, 0.05), (101.0, 3.0));
        assert_eq!(count_above(&b, 0.01), (101.0, 101.0));
        assert!(histogram_buckets("garbage {\nh_bucket{le=\"x\"} y", "h", &[]).is_empty());
    }
}
