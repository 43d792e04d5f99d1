//! The Raft log and vote in RocksDB, implementing openraft's `RaftLogStorage`.
//!
//! Appends are group-committed: `append` writes the entries to RocksDB (readable at once, in
//! the WAL file but not yet synced) and hands the flush callback to a syncer thread, which
//! syncs the WAL once for every callback queued so far and only then reports them durable.
//! Many appends share one fsync, yet openraft is never told an entry is durable before it is.
//! Votes and truncations are synced writes before returning.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, mpsc};
use std::thread;

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{Entry, LogId, OptionalSend, RaftLogId, StorageError, StorageIOError, Vote};
use rocksdb::{Direction, IteratorMode, WriteBatch};

use crate::db::{self, CF_LOG, CF_RAFT, Db, raft_key, u64_key};
use crate::metrics::StoreMetrics;
use crate::raft_types::TypeConfig;
use crate::types::MemberId;

type StorageResult<T> = Result<T, StorageError<MemberId>>;

fn read_err(e: impl std::error::Error + 'static) -> StorageError<MemberId> {
    StorageIOError::read_logs(&e).into()
}

fn write_err(e: impl std::error::Error + 'static) -> StorageError<MemberId> {
    StorageIOError::write_logs(&e).into()
}

/// The log store; cheap to clone (clones share the database and the syncer).
#[derive(Clone)]
pub struct LogStore {
    db: Db,
    syncer: Arc<Syncer>,
}

/// The syncer thread and its queue. When the last `LogStore` clone goes, the queue closes and
/// the drop waits for the thread, so the thread's database handle is closed before the store
/// is gone: a process exiting right after (a test) never tears RocksDB down under a live
/// handle ("pthread lock: Invalid argument", SIGABRT).
struct Syncer {
    tx: Option<mpsc::Sender<LogFlushed<TypeConfig>>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl LogStore {
    pub fn new(db: Db, metrics: StoreMetrics) -> Self {
        let (tx, rx) = mpsc::channel::<LogFlushed<TypeConfig>>();
        let sync_db = db.clone();
        // The thread ends when every LogStore clone (every sender) is dropped.
        let spawned = thread::Builder::new()
            .name("skiff-wal-sync".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut batch = vec![first];
                    while let Ok(more) = rx.try_recv() {
                        batch.push(more);
                    }
                    let started = std::time::Instant::now();
                    let result = sync_db.sync_wal();
                    metrics.observe_fsync(started.elapsed());
                    for callback in batch {
                        let r = match &result {
                            Ok(()) => Ok(()),
                            Err(e) => Err(std::io::Error::other(e.to_string())),
                        };
                        callback.log_io_completed(r);
                    }
                }
            });
        let syncer = match spawned {
            Ok(thread) => Syncer {
                tx: Some(tx),
                thread: Some(thread),
            },
            Err(e) => {
                tracing::error!("cannot start the WAL sync thread: {e}");
                Syncer {
                    tx: None,
                    thread: None,
                }
            }
        };
        LogStore {
            db,
            syncer: Arc::new(syncer),
        }
    }

    fn last_entry(&self) -> StorageResult<Option<Entry<TypeConfig>>> {
        let cf = self.db.cf(CF_LOG).map_err(read_err)?;
        let mut iter = self.db.raw().iterator_cf(cf, IteratorMode::End);
        match iter.next() {
            Some(Ok((_, v))) => Ok(Some(db::decode(CF_LOG, &v).map_err(read_err)?)),
            Some(Err(e)) => Err(read_err(e)),
            None => Ok(None),
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> StorageResult<Vec<Entry<TypeConfig>>> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let cf = self.db.cf(CF_LOG).map_err(read_err)?;
        let iter = self
            .db
            .raw()
            .iterator_cf(cf, IteratorMode::From(&u64_key(start), Direction::Forward));
        let mut entries = Vec::new();
        for item in iter {
            let (k, v) = item.map_err(read_err)?;
            let mut index = [0u8; 8];
            if k.len() != 8 {
                continue;
            }
            index.copy_from_slice(&k);
            if !range.contains(&u64::from_be_bytes(index)) {
                break;
            }
            entries.push(db::decode(CF_LOG, &v).map_err(read_err)?);
        }
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> StorageResult<LogState<TypeConfig>> {
        let purged: Option<LogId<MemberId>> =
            self.db.get(CF_RAFT, raft_key::PURGED).map_err(read_err)?;
        let last = self.last_entry()?.map(|e| *e.get_log_id()).or(purged);
        Ok(LogState {
            last_purged_log_id: purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<MemberId>) -> StorageResult<()> {
        let mut batch = WriteBatch::default();
        let cf = self
            .db
            .cf(CF_RAFT)
            .map_err(|e| StorageIOError::write_vote(&e))?;
        batch.put_cf(
            cf,
            raft_key::VOTE,
            db::encode(vote).map_err(|e| StorageIOError::write_vote(&e))?,
        );
        self.db
            .write_synced(batch)
            .map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> StorageResult<Option<Vote<MemberId>>> {
        self.db
            .get(CF_RAFT, raft_key::VOTE)
            .map_err(|e| StorageIOError::read_vote(&e).into())
    }

    async fn save_committed(&mut self, committed: Option<LogId<MemberId>>) -> StorageResult<()> {
        let mut batch = WriteBatch::default();
        let cf = self.db.cf(CF_RAFT).map_err(write_err)?;
        batch.put_cf(
            cf,
            raft_key::COMMITTED,
            db::encode(&committed).map_err(write_err)?,
        );
        // Not synced: the state machine is durable on apply, so this is only a hint.
        self.db.write_unsynced(batch).map_err(write_err)
    }

    async fn read_committed(&mut self) -> StorageResult<Option<LogId<MemberId>>> {
        Ok(self
            .db
            .get::<Option<LogId<MemberId>>>(CF_RAFT, raft_key::COMMITTED)
            .map_err(read_err)?
            .flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StorageResult<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let cf = self.db.cf(CF_LOG).map_err(write_err)?;
        let mut batch = WriteBatch::default();
        for entry in entries {
            batch.put_cf(
                cf,
                u64_key(entry.get_log_id().index),
                db::encode(&entry).map_err(write_err)?,
            );
        }
        self.db.write_unsynced(batch).map_err(write_err)?;
        let unsent = match &self.syncer.tx {
            Some(tx) => tx.send(callback).err().map(|mpsc::SendError(c)| c),
            None => Some(callback),
        };
        if let Some(callback) = unsent {
            // The syncer is gone (it never started): sync here instead.
            let r = self
                .db
                .sync_wal()
                .map_err(|e| std::io::Error::other(e.to_string()));
            callback.log_io_completed(r);
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<MemberId>) -> StorageResult<()> {
        let cf = self.db.cf(CF_LOG).map_err(write_err)?;
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(cf, u64_key(log_id.index), u64_key(u64::MAX));
        batch.delete_cf(cf, u64_key(u64::MAX));
        self.db.write_synced(batch).map_err(write_err)
    }

    async fn purge(&mut self, log_id: LogId<MemberId>) -> StorageResult<()> {
        let mut batch = WriteBatch::default();
        let raft = self.db.cf(CF_RAFT).map_err(write_err)?;
        batch.put_cf(
            raft,
            raft_key::PURGED,
            db::encode(&log_id).map_err(write_err)?,
        );
        let cf = self.db.cf(CF_LOG).map_err(write_err)?;
        batch.delete_range_cf(cf, u64_key(0), u64_key(log_id.index.saturating_add(1)));
        // Not synced: if the purge is lost in a crash, the entries and the old purge mark come
        // back together, which is consistent.
        self.db.write_unsynced(batch).map_err(write_err)
    }
}
