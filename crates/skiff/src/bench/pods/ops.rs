//! What a round cost the agent: its Docker operations and pod worker passes by type (from the
//! difference of two scrapes of its `kubelet_docker_operations_total` and
//! `..._duration_seconds_sum` series, and of `kubelet_pod_worker_duration_seconds_count` and
//! `_sum`, reported as `worker <type>`) and the CPU time of a process (from `/proc/<pid>/stat`).
//!
//! Parsing is pure; [`scrape`] and [`cpu_seconds`] are the thin I/O around it.

use std::collections::BTreeMap;

/// Per operation type: how many calls and their summed duration in seconds.
pub type Operations = BTreeMap<String, (f64, f64)>;

/// The Docker operation counters of one scrape of the agent's Prometheus text.
pub fn parse(text: &str) -> Operations {
    let mut ops = Operations::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let series = [
            ("kubelet_docker_operations_total{", "", 0),
            ("kubelet_docker_operations_duration_seconds_sum{", "", 1),
            ("kubelet_pod_worker_duration_seconds_count{", "worker ", 0),
            ("kubelet_pod_worker_duration_seconds_sum{", "worker ", 1),
        ];
        let Some((series, prefix, which)) = series.iter().find_map(|(name, prefix, which)| {
            line.strip_prefix(name).map(|rest| (rest, *prefix, *which))
        }) else {
            continue;
        };
        let Some((labels, value)) = series.split_once('}') else {
            continue;
        };
        let Some(operation) = labels
            .split(',')
            .find_map(|l| l.strip_prefix("operation_type=\""))
            .and_then(|v| v.strip_suffix('"'))
        else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        let entry = ops
            .entry(format!("{prefix}{operation}"))
            .or_insert((0.0, 0.0));
        if which == 0 {
            entry.0 += value;
        } else {
            entry.1 += value;
        }
    }
    ops
}

/// `after - before` per operation type, leaving out types with no new calls.
pub fn difference(before: &Operations, after: &Operations) -> Operations {
    after
        .iter()
        .filter_map(|(op, (count, seconds))| {
            let (count0, seconds0) = before.get(op).copied().unwrap_or((0.0, 0.0));
            (count - count0 > 0.0).then(|| (op.clone(), (count - count0, seconds - seconds0)))
        })
        .collect()
}

/// User plus system CPU seconds of a process from its `/proc/<pid>/stat` line (fields 14 and
/// 15, counted after the command name, which may hold spaces), at `ticks` per second.
pub fn parse_cpu_seconds(stat: &str, ticks: f64) -> Option<f64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // After the name: state is field 3, utime 14 and stime 15 (1-based over the whole line).
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks)
}

/// A process's CPU seconds so far (Linux counts in 100 ticks per second on every platform it
/// exports to user space through `/proc`).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu_seconds(&stat, 100.0)
}

/// The agent's metrics text at `addr`, or empty when it cannot be had.
pub async fn scrape(addr: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fetch = async {
        let mut conn = tokio::net::TcpStream::connect(addr).await?;
        conn.write_all(
            format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
        let mut body = Vec::new();
        conn.read_to_end(&mut body).await?;
        std::io::Result::Ok(String::from_utf8_lossy(&body).into_owned())
    };
    fetch.await.unwrap_or_default()
}

#[cfg(test)]
mod tests;
