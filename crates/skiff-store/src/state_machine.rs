//! The state machine shell: openraft's `RaftStateMachine` over RocksDB and the pure `Applier`.
//!
//! `apply` runs the applier over the live database for the whole batch of entries, writes the
//! changes together with the applied log id and membership in one synced batch, and only then
//! answers openraft and hands the events to watchers. Snapshots are files in `snapshots/`.
//! Invariants: the applied state is durable before openraft learns of it (DESIGN.md §2.1);
//! the in-memory `SmState` always equals what the database holds.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder, StorageIOError};
use rocksdb::WriteBatch;
use tokio::io::AsyncWriteExt;

use crate::apply::{Applier, Counters, LeaseRecord};
use crate::db::{self, CF_LEASE, CF_SM, Db, View, sm_key};
use crate::lease::LeaseClock;
use crate::metrics::StoreMetrics;
use crate::raft_types::{
    Entry, LogId, SnapshotFile, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};
use crate::snapshot;
use crate::types::{Event, Member, MemberId, Response};
use crate::watch::Hub;

/// The state machine's position, mirrored in memory.
#[derive(Clone, Debug, Default)]
pub struct SmState {
    pub applied: Option<LogId>,
    pub membership: StoredMembership,
    pub counters: Counters,
}

/// State shared between the state machine and the rest of the member.
pub struct Shared {
    pub state: RwLock<SmState>,
    pub hub: Hub,
    pub leases: Mutex<LeaseClock>,
    pub metrics: StoreMetrics,
    pub cluster_id: String,
}

impl Shared {
    pub fn state(&self) -> SmState {
        match self.state.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set_state(&self, new: SmState) {
        let mut guard = match self.state.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        *guard = new;
    }

    pub fn with_leases<T>(&self, f: impl FnOnce(&mut LeaseClock) -> T) -> T {
        let mut guard = match self.leases.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }
}

fn sm_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_state_machine(&e).into()
}

fn snap_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_snapshot(None, &e).into()
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Message(String);

/// Loads the state machine's position and leases from the database.
pub fn load(
    db: &Db,
    metrics: StoreMetrics,
    cluster_id: &str,
    watch_queue: usize,
) -> Result<Arc<Shared>, db::Error> {
    let view = View::live(db);
    let state = SmState {
        applied: view
            .get_decoded::<Option<LogId>>(CF_SM, sm_key::APPLIED)?
            .flatten(),
        membership: view
            .get_decoded(CF_SM, sm_key::MEMBERSHIP)?
            .unwrap_or_default(),
        counters: view.counters()?,
    };
    let mut leases = LeaseClock::default();
    leases.reload(read_leases(db)?, Instant::now());
    Ok(Arc::new(Shared {
        hub: Hub::new(state.counters.revision, watch_queue),
        state: RwLock::new(state),
        leases: Mutex::new(leases),
        metrics,
        cluster_id: cluster_id.to_string(),
    }))
}

fn read_leases(db: &Db) -> Result<Vec<(i64, i64)>, db::Error> {
    let mut out = Vec::new();
    View::live(db).for_each(CF_LEASE, &[], |k, v| {
        let mut id = [0u8; 8];
        if k.len() == 8 {
            id.copy_from_slice(k);
            let record: LeaseRecord = db::decode(CF_LEASE, v)?;
            out.push((u64::from_be_bytes(id) as i64, record.ttl_secs));
        }
        Ok(true)
    })?;
    Ok(out)
}

pub struct StateMachine {
    db: Db,
    dir: PathBuf,
    shared: Arc<Shared>,
    current: Arc<Mutex<Option<(PathBuf, SnapshotMeta)>>>,
}

impl StateMachine {
    pub fn new(db: Db, snapshot_dir: &Path, shared: Arc<Shared>) -> Result<Self, snapshot::Error> {
        std::fs::create_dir_all(snapshot_dir).map_err(|source| snapshot::Error::Io {
            path: snapshot_dir.to_path_buf(),
            source,
        })?;
        let current = latest_snapshot(snapshot_dir);
        Ok(StateMachine {
            db,
            dir: snapshot_dir.to_path_buf(),
            shared,
            current: Arc::new(Mutex::new(current)),
        })
    }

    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }
}

fn meta_of(header: &snapshot::Header) -> SnapshotMeta {
    SnapshotMeta {
        last_log_id: header.last_applied,
        last_membership: header.membership.clone(),
        snapshot_id: header.snapshot_id.clone(),
    }
}

/// The newest complete snapshot in the directory, removing leftovers of interrupted work.
fn latest_snapshot(dir: &Path) -> Option<(PathBuf, SnapshotMeta)> {
    let mut best: Option<(PathBuf, SnapshotMeta)> = None;
    let entries = std::fs::read_dir(dir).ok()?;
    for entry in entries.flatten() {
        let path = entry.path();
        match path.extension().and_then(|e| e.to_str()) {
            Some("snap") => {
                if let Ok(header) = snapshot::read_header(&path) {
                    let meta = meta_of(&header);
                    if best
                        .as_ref()
                        .is_none_or(|(_, b)| b.last_log_id < meta.last_log_id)
                    {
                        best = Some((path, meta));
                    }
                }
            }
            Some("tmp") | Some("part") | Some("backup") => {
                let _ = std::fs::remove_file(&path);
            }
            _ => {}
        }
    }
    best
}

/// Removes every snapshot file but `keep`. Files being streamed stay readable (open handles).
fn remove_others(dir: &Path, keep: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path != keep && path.extension().is_some_and(|e| e == "snap") {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}

fn snapshot_path(dir: &Path, last: Option<&LogId>) -> (PathBuf, String) {
    let (term, index) = last.map_or((0, 0), |l| (l.leader_id.term, l.index));
    let id = format!("{term}-{index}-{:08x}", rand::random::<u32>());
    (dir.join(format!("snap-{index:020}-{id}.snap")), id)
}

pub(crate) struct Applied {
    responses: Vec<Response>,
    batches: Vec<(u64, Vec<Event>)>,
    pub(crate) state: SmState,
    granted: Vec<(i64, i64)>,
    revoked: Vec<i64>,
}

pub(crate) fn apply_blocking(
    db: &Db,
    before: SmState,
    entries: Vec<Entry>,
    metrics: &StoreMetrics,
) -> Result<Applied, StorageError> {
    let view = View::live(db);
    let mut applier = Applier::new(&view, before.counters);
    let mut applied = before.applied;
    let mut membership = before.membership.clone();
    let mut responses = Vec::with_capacity(entries.len());
    for entry in &entries {
        applied = Some(entry.log_id);
        match &entry.payload {
            EntryPayload::Blank => responses.push(Response::internal(applier.counters.revision)),
            EntryPayload::Normal(request) => {
                let members: std::collections::BTreeMap<MemberId, Member> = membership
                    .membership()
                    .nodes()
                    .map(|(id, m)| (*id, m.clone()))
                    .collect();
                responses.push(
                    applier
                        .apply(entry.log_id.leader_id.term, request, &members)
                        .map_err(sm_err)?,
                );
            }
            EntryPayload::Membership(m) => {
                membership = StoredMembership::new(Some(entry.log_id), m.clone());
                applier.note_members(m.nodes().map(|(id, _)| *id));
                responses.push(Response::internal(applier.counters.revision));
            }
        }
    }
    let counters = applier.counters;
    let changes = applier.changes;
    let mut batch = WriteBatch::default();
    let compact = Some((before.counters.compact_revision, counters.compact_revision));
    db::write_changes(db, &mut batch, &changes, &counters, compact).map_err(sm_err)?;
    let sm = db.cf(CF_SM).map_err(sm_err)?;
    batch.put_cf(sm, sm_key::APPLIED, db::encode(&applied).map_err(sm_err)?);
    if membership != before.membership {
        batch.put_cf(
            sm,
            sm_key::MEMBERSHIP,
            db::encode(&membership).map_err(sm_err)?,
        );
    }
    let started = Instant::now();
    db.write_synced(batch).map_err(sm_err)?;
    metrics
        .apply_commit
        .observe(started.elapsed().as_secs_f64());
    let mut batches: Vec<(u64, Vec<Event>)> = Vec::new();
    for (rev, _, event) in changes.events {
        match batches.last_mut() {
            Some((r, events)) if *r == rev => events.push(event),
            _ => batches.push((rev, vec![event])),
        }
    }
    Ok(Applied {
        responses,
        batches,
        state: SmState {
            applied,
            membership,
            counters,
        },
        granted: changes.granted,
        revoked: changes.revoked,
    })
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let s = self.shared.state();
        Ok((s.applied, s.membership))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let db = self.db.clone();
        let before = self.shared.state();
        let metrics = self.shared.metrics.clone();
        let applied =
            tokio::task::spawn_blocking(move || apply_blocking(&db, before, entries, &metrics))
                .await
                .map_err(|e| sm_err(Message(format!("apply task failed: {e}"))))??;
        let revision = applied.state.counters.revision;
        let m = &self.shared.metrics;
        m.revision.set(revision as i64);
        m.compact_revision
            .set(applied.state.counters.compact_revision as i64);
        if let Some(l) = &applied.state.applied {
            m.apply_index.set(l.index as i64);
        }
        self.shared.set_state(applied.state);
        if !applied.granted.is_empty() || !applied.revoked.is_empty() {
            let now = Instant::now();
            self.shared.with_leases(|clock| {
                for (id, ttl) in &applied.granted {
                    clock.granted(*id, *ttl, now);
                }
                for id in &applied.revoked {
                    clock.revoked(*id);
                }
                m.leases.set(clock.len() as i64);
            });
        }
        self.shared.hub.publish(applied.batches, revision);
        Ok(applied.responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            db: self.db.clone(),
            dir: self.dir.clone(),
            shared: self.shared.clone(),
            current: self.current.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<SnapshotFile>, StorageError> {
        let path = self
            .dir
            .join(format!("recv-{:016x}.part", rand::random::<u64>()));
        let file = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .map_err(|e| StorageIOError::write_snapshot(None, &e))?;
        Ok(Box::new(SnapshotFile { file, path }))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        mut received: Box<SnapshotFile>,
    ) -> Result<(), StorageError> {
        let started = Instant::now();
        let (target, _) = snapshot_path(&self.dir, meta.last_log_id.as_ref());
        received.file.flush().await.map_err(snap_err)?;
        let ours = received.path.parent() == Some(self.dir.as_path())
            && received.path.extension().is_some_and(|e| e == "part");
        if ours {
            received.file.sync_all().await.map_err(snap_err)?;
            tokio::fs::rename(&received.path, &target)
                .await
                .map_err(snap_err)?;
        } else {
            use tokio::io::AsyncSeekExt;
            received
                .file
                .seek(std::io::SeekFrom::Start(0))
                .await
                .map_err(snap_err)?;
            let mut out = tokio::fs::File::create(&target).await.map_err(snap_err)?;
            tokio::io::copy(&mut received.file, &mut out)
                .await
                .map_err(snap_err)?;
            out.sync_all().await.map_err(snap_err)?;
        }
        let db = self.db.clone();
        let path = target.clone();
        let header = tokio::task::spawn_blocking(move || snapshot::install(&db, &path))
            .await
            .map_err(|e| snap_err(Message(format!("install task failed: {e}"))))?
            .map_err(snap_err)?;
        if header.last_applied != meta.last_log_id {
            return Err(snap_err(Message(format!(
                "snapshot file holds log id {:?} but its metadata says {:?}",
                header.last_applied, meta.last_log_id
            ))));
        }
        let state = SmState {
            applied: header.last_applied,
            membership: header.membership.clone(),
            counters: header.counters,
        };
        let revision = state.counters.revision;
        self.shared.set_state(state);
        let leases = read_leases(&self.db).map_err(snap_err)?;
        self.shared
            .with_leases(|clock| clock.reload(leases, Instant::now()));
        self.shared.hub.reset(
            revision,
            "the member installed a snapshot; watch again from the last revision received",
        );
        remove_others(&self.dir, &target);
        if let Ok(mut current) = self.current.lock() {
            *current = Some((target, meta.clone()));
        }
        self.shared
            .metrics
            .snapshot_install
            .observe(started.elapsed().as_secs_f64());
        self.shared.metrics.revision.set(revision as i64);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let current = self.current.lock().ok().and_then(|c| c.clone());
        let Some((path, meta)) = current else {
            return Ok(None);
        };
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| StorageIOError::read_snapshot(None, &e))?;
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(SnapshotFile { file, path }),
        }))
    }
}

/// Builds snapshots from a consistent view while apply continues.
pub struct SnapshotBuilder {
    db: Db,
    dir: PathBuf,
    shared: Arc<Shared>,
    current: Arc<Mutex<Option<(PathBuf, SnapshotMeta)>>>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let started = Instant::now();
        let db = self.db.clone();
        let dir = self.dir.clone();
        let cluster_id = self.shared.cluster_id.clone();
        let (path, header) = tokio::task::spawn_blocking(move || {
            let mut chosen = PathBuf::new();
            let header = snapshot::build(
                &db,
                &dir.join("building.snap"),
                &cluster_id,
                |last| {
                    let (path, id) = snapshot_path(&dir, last);
                    chosen = path;
                    id
                },
                |_| {},
            )?;
            std::fs::rename(dir.join("building.snap"), &chosen).map_err(|source| {
                snapshot::Error::Io {
                    path: chosen.clone(),
                    source,
                }
            })?;
            Ok::<_, snapshot::Error>((chosen, header))
        })
        .await
        .map_err(|e| snap_err(Message(format!("snapshot task failed: {e}"))))?
        .map_err(snap_err)?;
        let meta = meta_of(&header);
        remove_others(&self.dir, &path);
        if let Ok(mut current) = self.current.lock() {
            *current = Some((path.clone(), meta.clone()));
        }
        self.shared
            .metrics
            .snapshot_build
            .observe(started.elapsed().as_secs_f64());
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| StorageIOError::read_snapshot(None, &e))?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(SnapshotFile { file, path }),
        })
    }
}
