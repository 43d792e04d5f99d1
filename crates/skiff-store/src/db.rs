//! The one RocksDB database of a member: column families, key encodings, reads and batches.
//!
//! Column families: `log` (Raft entries by index), `raft` (vote, committed, purged),
//! `kv` (current keys), `history` (events by revision), `lease`, `lease_keys`, `sm` (applied log
//! id, membership, counters). The log and the state machine share one write-ahead log, so a
//! synced write makes everything written before it durable too.
//! Invariant: every write that openraft is told is durable went through a synced write or
//! `flush_wal(true)` first (DESIGN.md §2.1).

use std::path::Path;
use std::sync::Arc;

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DB, DBCompressionType,
    DBRecoveryMode, Options, ReadOptions, WriteBatch, WriteOptions,
};

use crate::apply::{Changes, Counters, KvRecord, LeaseRecord, ReadView};
use crate::types::{Event, LeaseId, RangeEnd};

#[cfg(test)]
mod tests;

pub const CF_LOG: &str = "log";
pub const CF_RAFT: &str = "raft";
pub const CF_KV: &str = "kv";
pub const CF_HISTORY: &str = "history";
pub const CF_LEASE: &str = "lease";
pub const CF_LEASE_KEYS: &str = "lease_keys";
pub const CF_SM: &str = "sm";
const ALL_CFS: [&str; 7] = [
    CF_LOG,
    CF_RAFT,
    CF_KV,
    CF_HISTORY,
    CF_LEASE,
    CF_LEASE_KEYS,
    CF_SM,
];

/// Keys in the `sm` column family.
pub mod sm_key {
    pub const APPLIED: &[u8] = b"applied";
    pub const MEMBERSHIP: &[u8] = b"membership";
    pub const COUNTERS: &[u8] = b"counters";
}

/// Keys in the `raft` column family.
pub mod raft_key {
    pub const VOTE: &[u8] = b"vote";
    pub const COMMITTED: &[u8] = b"committed";
    pub const PURGED: &[u8] = b"purged";
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("column family {0} is missing")]
    MissingCf(&'static str),
    #[error("corrupt record in {cf}: {source}")]
    Decode {
        cf: &'static str,
        source: postcard::Error,
    },
    #[error("encoding a record failed: {0}")]
    Encode(postcard::Error),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error(
        "the database in {dir} is corrupt ({reason}). This member's log cannot be trusted and it \
         will not start: remove it from the cluster (`skiff cluster remove NAME` against another \
         member), move its data directory aside and join it again with an empty one"
    )]
    Corrupt { dir: String, reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A shared handle on the member's database.
#[derive(Clone)]
pub struct Db {
    inner: Arc<DB>,
    /// False only under the unsafe `--unsafe-no-fsync` negative control.
    fsync: bool,
}

impl Db {
    /// Opens (or creates) the database under `dir`, with modest memory settings: a member's
    /// idle footprint must stay small.
    pub fn open(dir: &Path) -> Result<Db> {
        let cache = Cache::new_lru_cache(16 << 20);
        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.set_max_background_jobs(2);
        db_opts.set_keep_log_file_num(3);
        db_opts.set_max_open_files(512);
        db_opts.set_db_write_buffer_size(48 << 20);
        db_opts.set_max_total_wal_size(128 << 20);
        // Every write is fsynced before it is acknowledged, so the only damage a crash can leave
        // is an incomplete last record (a torn write), which was never acknowledged: tolerate
        // that. Anything else (a checksum mismatch anywhere) is refused rather than replayed up
        // to the damage, which RocksDB's default (point-in-time recovery) would do silently,
        // forgetting acknowledged log entries and votes.
        db_opts.set_wal_recovery_mode(DBRecoveryMode::TolerateCorruptedTailRecords);
        let cfs = ALL_CFS.iter().map(|name| {
            let mut o = Options::default();
            let mut table = BlockBasedOptions::default();
            table.set_block_cache(&cache);
            table.set_bloom_filter(10.0, false);
            o.set_block_based_table_factory(&table);
            o.set_write_buffer_size(8 << 20);
            o.set_max_write_buffer_number(3);
            if matches!(*name, CF_KV | CF_HISTORY | CF_LOG) {
                o.set_compression_type(DBCompressionType::Lz4);
            } else {
                o.set_compression_type(DBCompressionType::None);
            }
            ColumnFamilyDescriptor::new(*name, o)
        });
        let db = DB::open_cf_descriptors(&db_opts, dir, cfs).map_err(|e| {
            if e.kind() == rocksdb::ErrorKind::Corruption {
                Error::Corrupt {
                    dir: dir.display().to_string(),
                    reason: e.into_string(),
                }
            } else {
                Error::Rocks(e)
            }
        })?;
        Ok(Db {
            inner: Arc::new(db),
            fsync: true,
        })
    }

    /// Turns fsync off (the unsafe negative control of the fault-injection suite).
    pub fn without_fsync(mut self) -> Db {
        tracing::warn!(
            "UNSAFE: fsync is disabled; acknowledged writes can be lost on a machine crash"
        );
        self.fsync = false;
        self
    }

    pub fn raw(&self) -> &DB {
        &self.inner
    }

    pub fn cf(&self, name: &'static str) -> Result<&ColumnFamily> {
        self.inner.cf_handle(name).ok_or(Error::MissingCf(name))
    }

    pub fn get<T: serde::de::DeserializeOwned>(
        &self,
        cf: &'static str,
        key: &[u8],
    ) -> Result<Option<T>> {
        match self.inner.get_pinned_cf(self.cf(cf)?, key)? {
            Some(bytes) => Ok(Some(decode(cf, &bytes)?)),
            None => Ok(None),
        }
    }

    /// A synced write: on disk before it returns.
    pub fn write_synced(&self, batch: WriteBatch) -> Result<()> {
        let mut opts = WriteOptions::default();
        opts.set_sync(self.fsync);
        self.inner.write_opt(batch, &opts)?;
        Ok(())
    }

    /// A write that reaches the WAL file but is not yet synced (see `flush_wal`).
    pub fn write_unsynced(&self, batch: WriteBatch) -> Result<()> {
        let mut opts = WriteOptions::default();
        opts.set_sync(false);
        self.inner.write_opt(batch, &opts)?;
        Ok(())
    }

    /// Makes every write made before this call durable.
    pub fn sync_wal(&self) -> Result<()> {
        self.inner.flush_wal(self.fsync)?;
        Ok(())
    }

    pub fn counters(&self) -> Result<Counters> {
        Ok(self.get(CF_SM, sm_key::COUNTERS)?.unwrap_or_default())
    }

    /// Total size of the live SST files and memtables, for metrics.
    pub fn approximate_size(&self) -> u64 {
        let sst = self
            .inner
            .property_int_value("rocksdb.total-sst-files-size")
            .ok()
            .flatten()
            .unwrap_or(0);
        let mem = self
            .inner
            .property_int_value("rocksdb.cur-size-all-mem-tables")
            .ok()
            .flatten()
            .unwrap_or(0);
        sst + mem
    }
}

pub fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>> {
    postcard::to_stdvec(value).map_err(Error::Encode)
}

pub fn decode<T: serde::de::DeserializeOwned>(cf: &'static str, bytes: &[u8]) -> Result<T> {
    postcard::from_bytes(bytes).map_err(|source| Error::Decode { cf, source })
}

pub fn u64_key(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

/// History key: revision then sequence within the revision, both big-endian (ordered).
pub fn history_key(revision: u64, seq: u32) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..8].copy_from_slice(&revision.to_be_bytes());
    k[8..].copy_from_slice(&seq.to_be_bytes());
    k
}

pub fn history_revision(key: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    if key.len() >= 8 {
        b.copy_from_slice(&key[..8]);
    }
    u64::from_be_bytes(b)
}

pub fn lease_key(id: LeaseId) -> [u8; 8] {
    (id as u64).to_be_bytes()
}

pub fn lease_keys_key(id: LeaseId, key: &[u8]) -> Vec<u8> {
    let mut k = lease_key(id).to_vec();
    k.extend_from_slice(key);
    k
}

/// Reads the current state through a consistent RocksDB snapshot or the live DB.
pub struct View<'a> {
    db: &'a Db,
    snapshot: Option<rocksdb::Snapshot<'a>>,
}

impl<'a> View<'a> {
    /// A view of the live database (used by apply, the only writer of the state machine).
    pub fn live(db: &'a Db) -> Self {
        View { db, snapshot: None }
    }

    /// A point-in-time view that later writes do not change.
    pub fn snapshot(db: &'a Db) -> Self {
        View {
            db,
            snapshot: Some(db.raw().snapshot()),
        }
    }

    fn read_opts(&self) -> ReadOptions {
        let mut o = ReadOptions::default();
        if let Some(s) = &self.snapshot {
            o.set_snapshot(s);
        }
        o
    }

    pub fn get_raw(&self, cf: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self
            .db
            .raw()
            .get_cf_opt(self.db.cf(cf)?, key, &self.read_opts())?)
    }

    pub fn get_decoded<T: serde::de::DeserializeOwned>(
        &self,
        cf: &'static str,
        key: &[u8],
    ) -> Result<Option<T>> {
        match self.get_raw(cf, key)? {
            Some(b) => Ok(Some(decode(cf, &b)?)),
            None => Ok(None),
        }
    }

    pub fn counters(&self) -> Result<Counters> {
        Ok(self
            .get_decoded(CF_SM, sm_key::COUNTERS)?
            .unwrap_or_default())
    }

    /// Visits keys of a column family from `start` in order until `visit` returns false. Keys
    /// and values are borrowed from the iterator (no copy per record).
    pub fn for_each(
        &self,
        cf: &'static str,
        start: &[u8],
        mut visit: impl FnMut(&[u8], &[u8]) -> Result<bool>,
    ) -> Result<()> {
        let mut iter = self
            .db
            .raw()
            .raw_iterator_cf_opt(self.db.cf(cf)?, self.read_opts());
        iter.seek(start);
        while let (Some(k), Some(v)) = (iter.key(), iter.value()) {
            if !visit(k, v)? {
                return Ok(());
            }
            iter.next();
        }
        iter.status()?;
        Ok(())
    }

    /// History events from `from_revision` (inclusive) up to `to_revision` (inclusive).
    pub fn history(
        &self,
        from_revision: u64,
        to_revision: u64,
        mut visit: impl FnMut(u64, Event) -> Result<bool>,
    ) -> Result<()> {
        self.for_each(CF_HISTORY, &history_key(from_revision, 0), |k, v| {
            let rev = history_revision(k);
            if rev > to_revision {
                return Ok(false);
            }
            visit(rev, decode(CF_HISTORY, v)?)
        })
    }

    /// Like [`View::history`], but only the events whose key `keep` accepts: the others are
    /// skipped after decoding nothing but their key (a watch on a few keys replays a long
    /// history without decoding every value in it).
    pub fn history_in_range(
        &self,
        from_revision: u64,
        to_revision: u64,
        keep: impl Fn(&[u8]) -> bool,
        mut visit: impl FnMut(u64, Event) -> Result<bool>,
    ) -> Result<()> {
        self.for_each(CF_HISTORY, &history_key(from_revision, 0), |k, v| {
            let rev = history_revision(k);
            if rev > to_revision {
                return Ok(false);
            }
            if !keep(event_key(v)?) {
                return Ok(true);
            }
            visit(rev, decode(CF_HISTORY, v)?)
        })
    }
}

/// The first fields of an encoded [`Event`]: postcard writes a struct's fields in order and
/// nested structs inline, so an event's record starts with its kind and then `kv.key`.
#[derive(serde::Deserialize)]
struct EventHead<'a> {
    _kind: crate::types::EventKind,
    #[serde(borrow)]
    key: &'a [u8],
}

/// The key of an encoded [`Event`], borrowed from the record.
pub fn event_key(record: &[u8]) -> Result<&[u8]> {
    postcard::take_from_bytes::<EventHead<'_>>(record)
        .map(|(head, _)| head.key)
        .map_err(|source| Error::Decode {
            cf: CF_HISTORY,
            source,
        })
}

impl ReadView for View<'_> {
    type Error = Error;

    fn get(&self, key: &[u8]) -> Result<Option<KvRecord>> {
        self.get_decoded(CF_KV, key)
    }

    fn scan(&self, start: &[u8], end: &RangeEnd) -> Result<Vec<(Vec<u8>, KvRecord)>> {
        let mut out = Vec::new();
        self.for_each(CF_KV, start, |k, v| {
            if !end.contains(start, k) {
                return Ok(false);
            }
            out.push((k.to_vec(), decode(CF_KV, v)?));
            Ok(true)
        })?;
        Ok(out)
    }

    fn lease(&self, id: LeaseId) -> Result<Option<LeaseRecord>> {
        self.get_decoded(CF_LEASE, &lease_key(id))
    }

    fn lease_keys(&self, id: LeaseId) -> Result<Vec<Vec<u8>>> {
        let prefix = lease_key(id);
        let mut out = Vec::new();
        self.for_each(CF_LEASE_KEYS, &prefix, |k, _| {
            if !k.starts_with(&prefix) {
                return Ok(false);
            }
            out.push(k[8..].to_vec());
            Ok(true)
        })?;
        Ok(out)
    }
}

/// Adds an applier's changes (and the counters) to a write batch.
pub fn write_changes(
    db: &Db,
    batch: &mut WriteBatch,
    changes: &Changes,
    counters: &Counters,
    compact_before: Option<(u64, u64)>,
) -> Result<()> {
    let kv = db.cf(CF_KV)?;
    for (key, state) in &changes.kv {
        match state {
            Some(record) => batch.put_cf(kv, key, encode(record)?),
            None => batch.delete_cf(kv, key),
        }
    }
    let history = db.cf(CF_HISTORY)?;
    for (rev, seq, event) in &changes.events {
        batch.put_cf(history, history_key(*rev, *seq), encode(event)?);
    }
    let lease = db.cf(CF_LEASE)?;
    for (id, state) in &changes.leases {
        match state {
            Some(record) => batch.put_cf(lease, lease_key(*id), encode(record)?),
            None => batch.delete_cf(lease, lease_key(*id)),
        }
    }
    let lease_keys = db.cf(CF_LEASE_KEYS)?;
    for ((id, key), attached) in &changes.lease_keys {
        if *attached {
            batch.put_cf(lease_keys, lease_keys_key(*id, key), []);
        } else {
            batch.delete_cf(lease_keys, lease_keys_key(*id, key));
        }
    }
    if let Some((old, new)) = compact_before
        && new > old
    {
        batch.delete_range_cf(history, history_key(0, 0), history_key(new, 0));
    }
    batch.put_cf(db.cf(CF_SM)?, sm_key::COUNTERS, encode(counters)?);
    Ok(())
}
