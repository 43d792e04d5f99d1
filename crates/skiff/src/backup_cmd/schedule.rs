//! Scheduled backups on every member: at each activation of a cron schedule (UTC), write a
//! backup of this member's replica into the backup directory, then keep only the newest few.
//!
//! The decisions (when next, what name, what to delete) are pure; `run` is the thin loop.
//! Every member backs itself up, so losing any of them loses no backups.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use skiff_controllers::cronjob::cron::Schedule;
use skiff_store::Store;

/// The default: every 12 hours, on the hour.
pub const DEFAULT_SCHEDULE: &str = "0 */12 * * *";

#[derive(Clone, Debug)]
pub struct Config {
    pub schedule: Schedule,
    pub dir: PathBuf,
    pub keep: usize,
}

/// Parses `--backup-schedule`; `off` (or empty) turns scheduled backups off.
pub fn parse(text: &str) -> anyhow::Result<Option<Schedule>> {
    let t = text.trim();
    if t.is_empty() || t.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    Ok(Some(Schedule::parse(t).map_err(|e| {
        anyhow::anyhow!("--backup-schedule: {e} (five cron fields in UTC, an @macro, or off)")
    })?))
}

/// A backup's file name: sortable by time, says which cluster and member wrote it.
pub fn file_name(cluster_id: &str, member: &str, at: Timestamp) -> String {
    format!(
        "skiff-{cluster_id}-{member}-{}.backup",
        at.strftime("%Y%m%dT%H%M%SZ")
    )
}

/// How long to wait from `now` until the next activation (None: never again).
pub fn wait_until_next(schedule: &Schedule, now: Timestamp) -> Option<Duration> {
    let next = schedule.next(now)?;
    let ms = next
        .as_millisecond()
        .saturating_sub(now.as_millisecond())
        .max(0);
    Some(Duration::from_millis(ms as u64))
}

struct Metrics {
    last_success: prometheus::IntGauge,
    failures: prometheus::IntCounter,
    duration: prometheus::Histogram,
}

impl Metrics {
    fn register(registry: &prometheus::Registry) -> anyhow::Result<Metrics> {
        let m = Metrics {
            last_success: prometheus::IntGauge::new(
                "skiff_backup_last_success_timestamp_seconds",
                "Unix time of this member's last successful scheduled backup",
            )?,
            failures: prometheus::IntCounter::new(
                "skiff_backup_failures_total",
                "Scheduled backups of this member that failed",
            )?,
            duration: prometheus::Histogram::with_opts(
                prometheus::HistogramOpts::new(
                    "skiff_backup_duration_seconds",
                    "Time to write a scheduled backup",
                )
                .buckets(vec![0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0]),
            )?,
        };
        registry.register(Box::new(m.last_success.clone()))?;
        registry.register(Box::new(m.failures.clone()))?;
        registry.register(Box::new(m.duration.clone()))?;
        Ok(m)
    }
}

/// Takes one scheduled backup now and prunes; returns the file written.
pub async fn backup_once(store: &Store, config: &Config) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(&config.dir)?;
    let path = config.dir.join(file_name(
        store.cluster_id(),
        store.name(),
        Timestamp::now(),
    ));
    store.backup_to(&path, |_| {}).await?;
    let dir = config.dir.clone();
    let keep = config.keep.max(1);
    tokio::task::spawn_blocking(move || skiff_store::backup::prune_dir(&dir, keep)).await??;
    Ok(path)
}

/// Runs scheduled backups until `shutdown` turns true.
pub async fn run(
    store: Store,
    config: Config,
    registry: &prometheus::Registry,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let metrics = Metrics::register(registry)?;
    tokio::spawn(async move {
        loop {
            let Some(wait) = wait_until_next(&config.schedule, Timestamp::now()) else {
                return;
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
            let started = std::time::Instant::now();
            match backup_once(&store, &config).await {
                Ok(path) => {
                    metrics.duration.observe(started.elapsed().as_secs_f64());
                    metrics.last_success.set(Timestamp::now().as_second());
                    tracing::info!(file = %path.display(), "scheduled backup written");
                }
                Err(e) => {
                    metrics.failures.inc();
                    tracing::warn!(
                        "scheduled backup into {} failed: {e:#}",
                        config.dir.display()
                    );
                }
            }
        }
    });
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn default_schedule_runs_every_twelve_hours() {
        let s = parse(DEFAULT_SCHEDULE).unwrap().unwrap();
        let now: Timestamp = "2026-11-28T10:20:00Z".parse().unwrap();
        assert_eq!(
            wait_until_next(&s, now),
            Some(Duration::from_secs(100 * 60))
        );
        let noon: Timestamp = "2026-11-28T12:00:00Z".parse().unwrap();
        assert_eq!(
            wait_until_next(&s, noon),
            Some(Duration::from_secs(12 * 3600))
        );
    }

    #[test]
    fn off_and_errors() {
        assert!(parse("off").unwrap().is_none());
        assert!(parse("").unwrap().is_none());
        let e = parse("every day").unwrap_err().to_string();
        assert!(e.contains("--backup-schedule"), "{e}");
        assert!(parse("@every 30s").unwrap().is_some());
    }

    #[test]
    fn file_names_sort_by_time() {
        let a = file_name("c1", "m1", "2026-01-02T03:04:05Z".parse().unwrap());
        let b = file_name("c1", "m1", "2026-01-02T13:04:05Z".parse().unwrap());
        assert_eq!(a, "skiff-c1-m1-20260102T030405Z.backup");
        assert!(a < b);
    }
}
