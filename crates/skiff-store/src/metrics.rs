//! Prometheus metrics of the store, in etcd's spirit (`skiff_store_*`).
//!
//! The caller passes the registry to register into (the binary serves `/metrics`); a store
//! opened without one registers into a private registry, so tests never collide.

use std::time::Duration;

use prometheus::{Histogram, HistogramOpts, IntCounter, IntGauge, Opts, Registry};

/// Every store metric; cheap to clone.
#[derive(Clone)]
pub struct StoreMetrics {
    pub is_leader: IntGauge,
    pub has_leader: IntGauge,
    pub leader_changes: IntCounter,
    pub term: IntGauge,
    pub commit_index: IntGauge,
    pub apply_index: IntGauge,
    pub revision: IntGauge,
    pub compact_revision: IntGauge,
    pub proposals_committed: IntCounter,
    pub proposals_failed: IntCounter,
    pub proposals_forwarded: IntCounter,
    pub wal_fsync: Histogram,
    pub apply_commit: Histogram,
    pub proposal_batch: Histogram,
    pub snapshot_build: Histogram,
    pub snapshot_install: Histogram,
    pub compaction: Histogram,
    pub db_size: IntGauge,
    pub watchers: IntGauge,
    pub leases: IntGauge,
    pub members: IntGauge,
    pub voters: IntGauge,
}

fn gauge(r: &Registry, name: &str, help: &str) -> prometheus::Result<IntGauge> {
    let g = IntGauge::with_opts(Opts::new(name, help))?;
    r.register(Box::new(g.clone()))?;
    Ok(g)
}

fn counter(r: &Registry, name: &str, help: &str) -> prometheus::Result<IntCounter> {
    let c = IntCounter::with_opts(Opts::new(name, help))?;
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

fn histogram(
    r: &Registry,
    name: &str,
    help: &str,
    buckets: Vec<f64>,
) -> prometheus::Result<Histogram> {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))?;
    r.register(Box::new(h.clone()))?;
    Ok(h)
}

/// Disk latency buckets: 50µs to ~3.3s.
fn disk_buckets() -> Vec<f64> {
    prometheus::exponential_buckets(0.00005, 2.0, 17).unwrap_or_default()
}

impl StoreMetrics {
    pub fn register(r: &Registry) -> prometheus::Result<Self> {
        Ok(StoreMetrics {
            is_leader: gauge(
                r,
                "skiff_store_is_leader",
                "1 if this member is the Raft leader",
            )?,
            has_leader: gauge(
                r,
                "skiff_store_has_leader",
                "1 if this member knows a leader",
            )?,
            leader_changes: counter(
                r,
                "skiff_store_leader_changes_seen_total",
                "Leader changes seen by this member",
            )?,
            term: gauge(r, "skiff_store_term", "Current Raft term")?,
            commit_index: gauge(
                r,
                "skiff_store_commit_index",
                "Last committed log index known here",
            )?,
            apply_index: gauge(r, "skiff_store_apply_index", "Last applied log index")?,
            revision: gauge(r, "skiff_store_revision", "Current store revision")?,
            compact_revision: gauge(
                r,
                "skiff_store_compact_revision",
                "History before this revision is compacted",
            )?,
            proposals_committed: counter(
                r,
                "skiff_store_proposals_committed_total",
                "Writes proposed here and committed",
            )?,
            proposals_failed: counter(
                r,
                "skiff_store_proposals_failed_total",
                "Writes proposed here that failed",
            )?,
            proposals_forwarded: counter(
                r,
                "skiff_store_proposals_forwarded_total",
                "Writes forwarded to the leader",
            )?,
            wal_fsync: histogram(
                r,
                "skiff_store_wal_fsync_duration_seconds",
                "WAL sync latency (one per group commit)",
                disk_buckets(),
            )?,
            apply_commit: histogram(
                r,
                "skiff_store_apply_commit_duration_seconds",
                "Synced write of one apply batch",
                disk_buckets(),
            )?,
            proposal_batch: histogram(
                r,
                "skiff_store_proposal_batch_requests",
                "Writes proposed together in one log entry by the leader (group commit)",
                vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0],
            )?,
            snapshot_build: histogram(
                r,
                "skiff_store_snapshot_build_duration_seconds",
                "Time to build a snapshot",
                disk_buckets(),
            )?,
            snapshot_install: histogram(
                r,
                "skiff_store_snapshot_install_duration_seconds",
                "Time to install a snapshot",
                disk_buckets(),
            )?,
            compaction: histogram(
                r,
                "skiff_store_compaction_duration_seconds",
                "History compaction on the leader, from proposal to applied (synced)",
                disk_buckets(),
            )?,
            db_size: gauge(
                r,
                "skiff_store_db_total_size_in_bytes",
                "Approximate size of the database",
            )?,
            watchers: gauge(r, "skiff_store_watchers", "Open watches")?,
            leases: gauge(r, "skiff_store_leases", "Live leases")?,
            members: gauge(
                r,
                "skiff_store_members",
                "Members in the configuration (voters and learners)",
            )?,
            voters: gauge(
                r,
                "skiff_store_voters",
                "Voting members in the configuration",
            )?,
        })
    }

    /// Metrics registered nowhere visible (tests, tools).
    pub fn private() -> Self {
        match Self::register(&Registry::new()) {
            Ok(m) => m,
            // Registering into a fresh registry only fails on a name clash, which is a bug here.
            Err(e) => panic!("store metrics definitions clash: {e}"),
        }
    }

    pub fn observe_fsync(&self, d: Duration) {
        self.wal_fsync.observe(d.as_secs_f64());
    }
}
