//! Backups and disaster recovery: checking, listing and pruning backup files, restoring one
//! into a new cluster, and turning a lone survivor into a one-member cluster.
//!
//! A backup is a snapshot file (`snapshot.rs`: magic, format version, a header with the Skiff
//! release, cluster id, revision counters and membership, the records, a CRC-32 trailer).
//! Invariants: nothing is restored from a file whose checksum, format version or Skiff release
//! was not checked first; a restored cluster has a new cluster id and CA, its revision is
//! bumped far past the backup's and all older history is compacted (every watcher gets
//! "compacted"/410 and relists); member ids are never reused (a restored or forced member takes
//! an id above every id the backup or the log ever allocated).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rocksdb::WriteBatch;

use crate::apply::Counters;
use crate::db::{self, CF_KV, CF_LEASE, CF_LEASE_KEYS, CF_LOG, CF_RAFT, CF_SM, Db, View, sm_key};
use crate::identity::{DataDir, Identity};
use crate::raft_types::{Entry, LogId, StoredMembership};
use crate::snapshot::{self, Header, SKIFF_VERSION};
use crate::state_machine::{SmState, apply_blocking};
use crate::tls::{Ca, JoinToken};

/// How far a restore moves the revision ahead of the backup's.
pub const DEFAULT_REVISION_BUMP: u64 = 1_000_000_000;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Snapshot(#[from] snapshot::Error),
    #[error(
        "{path} was written by Skiff {found}; this is Skiff {SKIFF_VERSION}: restore it with Skiff {found}"
    )]
    OtherRelease { path: PathBuf, found: String },
    #[error("{0}")]
    DataDir(String),
    #[error(transparent)]
    Identity(#[from] crate::identity::Error),
    #[error(transparent)]
    Tls(#[from] crate::tls::Error),
    #[error(transparent)]
    Db(#[from] db::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Checks a backup end to end (magic, format version, Skiff release, every record, checksum);
/// returns its header and number of records.
pub fn check(path: &Path) -> Result<(Header, u64)> {
    let header = snapshot::read_header(path)?;
    check_release(path, &header)?;
    Ok(snapshot::verify(path)?)
}

/// Refuses a file written by another Skiff release.
pub fn check_release(path: &Path, header: &Header) -> Result<()> {
    if header.skiff_version != SKIFF_VERSION {
        return Err(Error::OtherRelease {
            path: path.to_path_buf(),
            found: header.skiff_version.clone(),
        });
    }
    Ok(())
}

/// The counters of a restored cluster: the revision far ahead, everything before it compacted,
/// member ids continuing above every id the backup allocated (and above `member_id`).
pub fn restored_counters(backup: Counters, bump: u64, member_id: u64) -> Counters {
    let revision = backup.revision.saturating_add(bump.max(1));
    Counters {
        revision,
        compact_revision: revision,
        member_seq: backup.member_seq.max(member_id),
    }
}

/// The member id a restored cluster's first member takes: above every id ever allocated.
pub fn first_member_id(backup: &Counters, membership: &StoredMembership) -> u64 {
    let highest_listed = membership
        .membership()
        .nodes()
        .map(|(id, _)| *id)
        .max()
        .unwrap_or(0);
    backup.member_seq.max(highest_listed) + 1
}

/// What a restore made.
#[derive(Debug, Clone)]
pub struct Restored {
    pub identity: Identity,
    /// The new cluster's member join token.
    pub token: String,
    pub header: Header,
    /// The revision the new cluster starts at (everything before it is compacted).
    pub revision: u64,
    /// Keys restored.
    pub keys: u64,
}

/// What to restore and where.
pub struct RestoreOptions<'a> {
    pub backup: &'a Path,
    pub data_dir: &'a Path,
    /// The new cluster's first member.
    pub name: &'a str,
    /// The shared cluster files of the new cluster (the binary insists on the encryption key).
    pub cluster_files: BTreeMap<String, Vec<u8>>,
    pub revision_bump: u64,
}

/// Creates a new cluster's first member in an empty data directory from a backup. The member
/// initializes its one-member Raft group on its first start (`skiff server --data-dir`);
/// others join it with the new token. `progress` is called with the number of records loaded.
pub fn restore(opts: RestoreOptions<'_>, mut progress: impl FnMut(u64)) -> Result<Restored> {
    crate::cluster::validate_member_name(opts.name).map_err(|e| Error::DataDir(e.to_string()))?;
    let (header, _) = check(opts.backup)?;
    let dir = DataDir::new(opts.data_dir);
    if !dir.is_empty() {
        return Err(Error::DataDir(format!(
            "{} is not empty; restore into a new, empty directory (a restore creates a new cluster)",
            dir.root.display()
        )));
    }
    dir.create()?;
    let member_id = first_member_id(&header.counters, &header.membership);
    let counters = restored_counters(header.counters, opts.revision_bump, member_id);
    let db = Db::open(&dir.db())?;
    let mut batch = WriteBatch::default();
    let mut keys = 0u64;
    let mut records = 0u64;
    snapshot::read_records(opts.backup, |cf, k, v| {
        records += 1;
        if records.is_multiple_of(10_000) {
            progress(records);
        }
        // History stays behind: everything before the new revision is compacted.
        if !matches!(cf, CF_KV | CF_LEASE | CF_LEASE_KEYS) {
            return Ok(());
        }
        if cf == CF_KV {
            keys += 1;
        }
        batch.put_cf(db.cf(cf)?, k, v);
        if batch.size_in_bytes() > 16 << 20 {
            db.write_unsynced(std::mem::take(&mut batch))?;
        }
        Ok(())
    })?;
    progress(records);
    batch.put_cf(db.cf(CF_SM)?, sm_key::COUNTERS, db::encode(&counters)?);
    db.write_synced(batch)?;
    drop(db);
    dir.save_cluster_files(&opts.cluster_files)?;
    let ca = Ca::generate("skiff-cluster-ca")?;
    let identity = Identity {
        cluster_id: hex::encode(rand::random::<[u8; 8]>()),
        member_id,
        name: opts.name.to_string(),
    };
    let token = JoinToken::generate(&ca)?.to_string();
    dir.save_token(&token)?;
    crate::identity::write_file(&dir.initialize_marker(), b"restored\n", 0o600)?;
    crate::node::save_member(&dir, &ca, &identity).map_err(|e| Error::DataDir(e.to_string()))?;
    Ok(Restored {
        identity,
        token,
        header,
        revision: counters.revision,
        keys,
    })
}

/// What `force_new_cluster` did.
#[derive(Debug, Clone)]
pub struct Forced {
    pub identity: Identity,
    /// Members dropped from the configuration (id, name).
    pub dropped: Vec<(u64, String)>,
    /// Log entries applied that the member had not applied yet.
    pub applied_entries: u64,
    pub revision: u64,
}

/// Turns a stopped member into the only member of its cluster, keeping its data: applies every
/// entry left in its log (as etcd's `--force-new-cluster` commits its whole log), then clears
/// the log, the vote and the membership, so its next start initializes a one-member Raft group.
/// Cluster id, CA and join token stay; new members get ids above every id ever allocated.
pub fn force_new_cluster(data_dir: &Path) -> Result<Forced> {
    let dir = DataDir::new(data_dir);
    if !dir.is_initialized() {
        return Err(Error::DataDir(format!(
            "{} holds no member; pass the data directory of the surviving member",
            dir.root.display()
        )));
    }
    let identity = dir.load_identity()?;
    let db = Db::open(&dir.db()).map_err(|e| {
        Error::DataDir(format!(
            "cannot open the database in {} ({e}); stop the member first",
            dir.root.display()
        ))
    })?;
    let view = View::live(&db);
    let before = SmState {
        applied: view
            .get_decoded::<Option<LogId>>(CF_SM, sm_key::APPLIED)?
            .flatten(),
        membership: view
            .get_decoded(CF_SM, sm_key::MEMBERSHIP)?
            .unwrap_or_default(),
        counters: view.counters()?,
    };
    let first = before.applied.map_or(0, |l| l.index + 1);
    let mut pending: Vec<Entry> = Vec::new();
    let mut last_membership = before.membership.clone();
    view.for_each(CF_LOG, &db::u64_key(first), |_, v| {
        let entry: Entry = db::decode(CF_LOG, v)?;
        if let openraft::EntryPayload::Membership(m) = &entry.payload {
            last_membership = StoredMembership::new(Some(entry.log_id), m.clone());
        }
        pending.push(entry);
        Ok(true)
    })?;
    let applied_entries = pending.len() as u64;
    let mut counters = before.counters;
    if !pending.is_empty() {
        let metrics = crate::metrics::StoreMetrics::private();
        let applied = apply_blocking(&db, before, pending, &metrics)
            .map_err(|e| Error::DataDir(format!("applying the remaining log failed: {e}")))?;
        counters = applied.state.counters;
    }
    let dropped: Vec<(u64, String)> = last_membership
        .membership()
        .nodes()
        .filter(|(id, _)| **id != identity.member_id)
        .map(|(id, m)| (*id, m.name.clone()))
        .collect();
    counters.member_seq = counters
        .member_seq
        .max(dropped.iter().map(|(id, _)| *id).max().unwrap_or(0))
        .max(identity.member_id);
    let mut batch = WriteBatch::default();
    for cf in [CF_LOG, CF_RAFT] {
        let handle = db.cf(cf)?;
        View::live(&db).for_each(cf, &[], |k, _| {
            batch.delete_cf(handle, k);
            Ok(true)
        })?;
    }
    let sm = db.cf(CF_SM)?;
    batch.delete_cf(sm, sm_key::APPLIED);
    batch.delete_cf(sm, sm_key::MEMBERSHIP);
    batch.put_cf(sm, sm_key::COUNTERS, db::encode(&counters)?);
    db.write_synced(batch)?;
    // Snapshots describe the old log; the next start must not offer them.
    if let Ok(entries) = std::fs::read_dir(dir.snapshots()) {
        for entry in entries.flatten() {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(io(&path))?;
        }
    }
    crate::identity::write_file(&dir.initialize_marker(), b"force-new-cluster\n", 0o600)?;
    Ok(Forced {
        identity,
        dropped,
        applied_entries,
        revision: counters.revision,
    })
}

/// A file in a backup directory.
#[derive(Debug)]
pub struct Listed {
    pub path: PathBuf,
    pub size: u64,
    /// The header, or why the file is not a usable backup.
    pub header: Result<Header, String>,
}

/// Every regular file in `dir` with what its header says, newest first (unreadable last).
pub fn list_dir(dir: &Path) -> Result<Vec<Listed>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))?.flatten() {
        let path = entry.path();
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() || path.extension().is_some_and(|e| e == "part" || e == "tmp") {
            continue;
        }
        let header = snapshot::read_header(&path)
            .map_err(|e| e.to_string())
            .and_then(|h| {
                check_release(&path, &h)
                    .map(|_| h)
                    .map_err(|e| e.to_string())
            });
        out.push(Listed {
            path,
            size: meta.len(),
            header,
        });
    }
    out.sort_by_key(|l| match &l.header {
        Ok(h) => (0, std::cmp::Reverse(h.created_unix_ms)),
        Err(_) => (1, std::cmp::Reverse(0)),
    });
    Ok(out)
}

/// Which backups to delete to keep the `keep` newest: pure, over (path, created) pairs.
pub fn prune_plan(backups: &[(PathBuf, u64)], keep: usize) -> Vec<PathBuf> {
    let mut sorted: Vec<&(PathBuf, u64)> = backups.iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| b.0.cmp(&a.0)));
    sorted
        .into_iter()
        .skip(keep)
        .map(|(p, _)| p.clone())
        .collect()
}

/// Deletes all but the `keep` newest valid backups in `dir`; returns what was deleted.
/// Files that are not backups of this release, or are corrupt, are left alone.
pub fn prune_dir(dir: &Path, keep: usize) -> Result<Vec<PathBuf>> {
    let valid: Vec<(PathBuf, u64)> = list_dir(dir)?
        .into_iter()
        .filter_map(|l| l.header.ok().map(|h| (l.path, h.created_unix_ms)))
        // Only whole, checksummed backups count: a corrupt one is left for a human.
        .filter(|(path, _)| check(path).is_ok())
        .collect();
    let doomed = prune_plan(&valid, keep);
    for path in &doomed {
        std::fs::remove_file(path).map_err(io(path))?;
    }
    Ok(doomed)
}

#[cfg(test)]
mod tests;
