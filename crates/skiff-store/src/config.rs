//! The store's configuration: plain fields with defaults, validated all at once.
//!
//! Only the `skiff` binary reads flags and files; it builds this struct. Timeouts default to
//! values tuned for ordinary SSDs (fsync well under 5 ms): heartbeat 50 ms, election 300–600
//! ms, which keeps the election timeout ≥ 10× the fsync latency (DESIGN.md §10).

use std::path::PathBuf;
use std::time::Duration;

/// Sizes the store refuses to exceed; checked before proposing.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_key_bytes: usize,
    pub max_value_bytes: usize,
    pub max_txn_ops: usize,
    pub max_request_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_key_bytes: 4096,
            max_value_bytes: 1536 * 1024,
            max_txn_ops: 256,
            max_request_bytes: 3 << 20,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    /// Holds the database, snapshots, certificates and the member's identity (mode 0700).
    pub data_dir: PathBuf,
    /// The member's name (unique in the cluster); read from the data dir after the first start.
    pub name: String,
    /// The peer address other members and clients use to reach this member (host:port).
    pub advertise_addr: String,
    pub heartbeat_interval: Duration,
    pub election_timeout_min: Duration,
    pub election_timeout_max: Duration,
    /// Build a snapshot after this many log entries since the last one.
    pub snapshot_after_logs: u64,
    /// Log entries kept behind a snapshot (lets slightly lagging followers catch up from the log).
    pub logs_kept_after_snapshot: u64,
    /// Timeout for one snapshot chunk sent to a follower.
    pub snapshot_chunk_timeout: Duration,
    pub snapshot_chunk_bytes: u64,
    /// Keep at least this much history (for watches and reads at past revisions).
    pub history_window: Duration,
    /// How often the leader considers compacting history.
    pub compaction_interval: Duration,
    /// Queued revisions per watcher before it is cancelled as too slow.
    pub watch_queue: usize,
    /// How long a write or linearizable read may wait for a leader and a commit.
    pub request_timeout: Duration,
    pub limits: Limits,
    /// UNSAFE, for fault-injection negative controls only: serve linearizable reads from the
    /// local replica without a read-index round (stale reads become possible).
    pub unsafe_local_reads: bool,
    /// UNSAFE, for fault-injection negative controls only: never fsync (acknowledged writes
    /// can be lost when the machine, not just the process, dies).
    pub unsafe_no_fsync: bool,
    /// UNSAFE, for fault-injection negative controls only: a transaction the leader has not
    /// seen committed within 20 ms is acknowledged anyway, as if it had succeeded.
    pub unsafe_ack_before_commit: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("skiff-data"),
            name: String::new(),
            advertise_addr: "127.0.0.1:2380".into(),
            heartbeat_interval: Duration::from_millis(50),
            election_timeout_min: Duration::from_millis(200),
            election_timeout_max: Duration::from_millis(400),
            snapshot_after_logs: 20_000,
            logs_kept_after_snapshot: 2_000,
            snapshot_chunk_timeout: Duration::from_secs(10),
            snapshot_chunk_bytes: 1 << 20,
            history_window: Duration::from_secs(300),
            compaction_interval: Duration::from_secs(30),
            watch_queue: 4096,
            request_timeout: Duration::from_secs(10),
            limits: Limits::default(),
            unsafe_local_reads: false,
            unsafe_no_fsync: false,
            unsafe_ack_before_commit: false,
        }
    }
}

impl Config {
    /// Every problem with the configuration, or Ok.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if self.heartbeat_interval.is_zero() {
            problems.push("the heartbeat interval must be positive".to_string());
        }
        if self.election_timeout_min <= self.heartbeat_interval * 2 {
            problems.push(format!(
                "the minimum election timeout ({:?}) must exceed twice the heartbeat interval ({:?})",
                self.election_timeout_min, self.heartbeat_interval
            ));
        }
        if self.election_timeout_max <= self.election_timeout_min {
            problems.push(format!(
                "the maximum election timeout ({:?}) must exceed the minimum ({:?})",
                self.election_timeout_max, self.election_timeout_min
            ));
        }
        if self.advertise_addr.parse::<std::net::SocketAddr>().is_err()
            && !self.advertise_addr.contains(':')
        {
            problems.push(format!(
                "the advertise address {:?} is not host:port",
                self.advertise_addr
            ));
        }
        if self.snapshot_after_logs == 0 {
            problems.push("snapshot_after_logs must be positive".into());
        }
        if self.watch_queue < 16 {
            problems.push("the watch queue must hold at least 16 revisions".into());
        }
        if self.snapshot_chunk_bytes < 1024 {
            problems.push("snapshot chunks must be at least 1 KiB".into());
        }
        if self.request_timeout < self.election_timeout_max {
            problems
                .push("the request timeout must be at least the maximum election timeout".into());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    pub(crate) fn raft_config(&self, cluster_name: &str) -> openraft::Config {
        openraft::Config {
            cluster_name: cluster_name.to_string(),
            heartbeat_interval: self.heartbeat_interval.as_millis() as u64,
            election_timeout_min: self.election_timeout_min.as_millis() as u64,
            election_timeout_max: self.election_timeout_max.as_millis() as u64,
            install_snapshot_timeout: self.snapshot_chunk_timeout.as_millis() as u64,
            snapshot_max_chunk_size: self.snapshot_chunk_bytes,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_after_logs),
            max_in_snapshot_log_to_keep: self.logs_kept_after_snapshot,
            // openraft 0.9 gives every AppendEntries one heartbeat interval to complete; a
            // lagging follower sent 256 entries at once could not take them in time on a loaded
            // machine and never caught up (replication retried the same payload forever).
            max_payload_entries: 32,
            replication_lag_threshold: 1000,
            ..openraft::Config::default()
        }
    }
}
