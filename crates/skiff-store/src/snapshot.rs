//! Snapshot files: the state machine at one applied log id, in one checksummed file.
//!
//! Layout: `SKIFFSNP`, format version (u32 BE), header length (u32 BE) and a postcard
//! [`Header`], then records `tag u8 | key len u32 | key | value len u32 | value`, an end tag,
//! and a CRC-32 of everything before it. The same file is a backup (DESIGN.md §2.11).
//! Invariants: a file is built from one consistent RocksDB view while apply continues; a file
//! is only ever installed after its checksum and version were verified; installation replaces
//! the whole state machine in one atomic, synced write batch.

use std::fs;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use rocksdb::WriteBatch;
use serde::{Deserialize, Serialize};

use crate::apply::Counters;
use crate::db::{self, CF_HISTORY, CF_KV, CF_LEASE, CF_LEASE_KEYS, CF_SM, Db, View, sm_key};
use crate::raft_types::{LogId, StoredMembership};

const MAGIC: &[u8; 8] = b"SKIFFSNP";
/// Bumped whenever the layout or a record's encoding changes.
pub const FORMAT_VERSION: u32 = 2;
/// The Skiff release that writes files (every crate shares the workspace version).
pub const SKIFF_VERSION: &str = env!("CARGO_PKG_VERSION");
const TAG_END: u8 = 0xff;
const DATA_CFS: [(u8, &str); 4] = [
    (1, CF_KV),
    (2, CF_HISTORY),
    (3, CF_LEASE),
    (4, CF_LEASE_KEYS),
];

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("snapshot I/O on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path} is not a Skiff snapshot or backup (bad magic)")]
    NotASnapshot { path: PathBuf },
    #[error(
        "{path} has format version {found}; this Skiff reads version {FORMAT_VERSION}: use the Skiff release that wrote it"
    )]
    Version { path: PathBuf, found: u32 },
    #[error("{path} is corrupt: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error(transparent)]
    Db(#[from] db::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a snapshot describes, readable without loading the data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub snapshot_id: String,
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
    pub counters: Counters,
    /// Milliseconds since the Unix epoch when it was built (informational).
    pub created_unix_ms: u64,
    /// The cluster it was taken from (informational; restore makes a new one).
    pub cluster_id: String,
    /// The Skiff release that wrote the file (a backup is restored only by the same release).
    pub skiff_version: String,
}

/// Writes records while computing the checksum.
struct CrcWriter<W: Write> {
    inner: W,
    crc: crc32fast::Hasher,
    bytes: u64,
}

impl<W: Write> Write for CrcWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn io_err(path: &Path) -> impl Fn(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Builds a snapshot of the database's current state into `path` (written to a temporary
/// name, synced, then renamed). `progress` is called with the number of records written.
pub fn build(
    db: &Db,
    path: &Path,
    cluster_id: &str,
    snapshot_id: impl FnOnce(Option<&LogId>) -> String,
    mut progress: impl FnMut(u64),
) -> Result<Header> {
    let view = View::snapshot(db);
    let last_applied: Option<LogId> = view.get_decoded(CF_SM, sm_key::APPLIED)?.flatten();
    let membership: StoredMembership = view
        .get_decoded(CF_SM, sm_key::MEMBERSHIP)?
        .unwrap_or_default();
    let counters = view.counters()?;
    let header = Header {
        snapshot_id: snapshot_id(last_applied.as_ref()),
        last_applied,
        membership,
        counters,
        created_unix_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
        cluster_id: cluster_id.to_string(),
        skiff_version: SKIFF_VERSION.to_string(),
    };
    let tmp = path.with_extension("tmp");
    let file = fs::File::create(&tmp).map_err(io_err(&tmp))?;
    let mut w = CrcWriter {
        inner: BufWriter::with_capacity(1 << 20, file),
        crc: crc32fast::Hasher::new(),
        bytes: 0,
    };
    let header_bytes = db::encode(&header)?;
    let mut records = 0u64;
    (|| -> Result<()> {
        let e = io_err(&tmp);
        w.write_all(MAGIC).map_err(&e)?;
        w.write_all(&FORMAT_VERSION.to_be_bytes()).map_err(&e)?;
        w.write_all(&(header_bytes.len() as u32).to_be_bytes())
            .map_err(&e)?;
        w.write_all(&header_bytes).map_err(&e)?;
        for (tag, cf) in DATA_CFS {
            view.for_each(cf, &[], |k, v| {
                let r = (|| -> io::Result<()> {
                    w.write_all(&[tag])?;
                    w.write_all(&(k.len() as u32).to_be_bytes())?;
                    w.write_all(k)?;
                    w.write_all(&(v.len() as u32).to_be_bytes())?;
                    w.write_all(v)
                })();
                r.map_err(db::Error::Io)?;
                records += 1;
                if records.is_multiple_of(10_000) {
                    progress(records);
                }
                Ok(true)
            })?;
        }
        w.write_all(&[TAG_END]).map_err(&e)?;
        let crc = w.crc.clone().finalize();
        w.inner.write_all(&crc.to_be_bytes()).map_err(&e)?;
        w.inner.flush().map_err(&e)?;
        w.inner.get_ref().sync_all().map_err(&e)?;
        Ok(())
    })()?;
    progress(records);
    fs::rename(&tmp, path).map_err(io_err(path))?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(dir))?;
    }
    Ok(header)
}

/// Reads and checks the magic, version and header of a snapshot file.
pub fn read_header(path: &Path) -> Result<Header> {
    let mut r = BufReader::new(fs::File::open(path).map_err(io_err(path))?);
    read_prelude(path, &mut r, &mut crc32fast::Hasher::new())
}

fn read_exact_crc(
    r: &mut impl Read,
    crc: &mut crc32fast::Hasher,
    buf: &mut [u8],
) -> io::Result<()> {
    r.read_exact(buf)?;
    crc.update(buf);
    Ok(())
}

fn corrupt(path: &Path, detail: impl Into<String>) -> Error {
    Error::Corrupt {
        path: path.to_path_buf(),
        detail: detail.into(),
    }
}

fn read_prelude(path: &Path, r: &mut impl Read, crc: &mut crc32fast::Hasher) -> Result<Header> {
    let mut magic = [0u8; 8];
    if read_exact_crc(r, crc, &mut magic).is_err() || &magic != MAGIC {
        return Err(Error::NotASnapshot {
            path: path.to_path_buf(),
        });
    }
    let mut n = [0u8; 4];
    read_exact_crc(r, crc, &mut n).map_err(|_| corrupt(path, "truncated version"))?;
    let version = u32::from_be_bytes(n);
    if version != FORMAT_VERSION {
        return Err(Error::Version {
            path: path.to_path_buf(),
            found: version,
        });
    }
    read_exact_crc(r, crc, &mut n).map_err(|_| corrupt(path, "truncated header length"))?;
    let len = u32::from_be_bytes(n) as usize;
    if len > 64 << 20 {
        return Err(corrupt(path, format!("header length {len} is implausible")));
    }
    let mut header = vec![0u8; len];
    read_exact_crc(r, crc, &mut header).map_err(|_| corrupt(path, "truncated header"))?;
    postcard::from_bytes(&header).map_err(|e| corrupt(path, format!("bad header: {e}")))
}

/// Reads every record, calling `record(tag_cf, key, value)`, and verifies the checksum at the
/// end. Callers that must not act on unverified data run this twice (verify, then load).
pub fn read_records(
    path: &Path,
    mut record: impl FnMut(&'static str, Vec<u8>, Vec<u8>) -> Result<()>,
) -> Result<Header> {
    let mut r = BufReader::with_capacity(1 << 20, fs::File::open(path).map_err(io_err(path))?);
    let mut crc = crc32fast::Hasher::new();
    let header = read_prelude(path, &mut r, &mut crc)?;
    loop {
        let mut tag = [0u8; 1];
        read_exact_crc(&mut r, &mut crc, &mut tag)
            .map_err(|_| corrupt(path, "truncated: no end marker"))?;
        if tag[0] == TAG_END {
            break;
        }
        let cf = DATA_CFS
            .iter()
            .find(|(t, _)| *t == tag[0])
            .map(|(_, cf)| *cf)
            .ok_or_else(|| corrupt(path, format!("unknown record tag {}", tag[0])))?;
        let read_blob =
            |r: &mut BufReader<fs::File>, crc: &mut crc32fast::Hasher| -> Result<Vec<u8>> {
                let mut n = [0u8; 4];
                read_exact_crc(r, crc, &mut n).map_err(|_| corrupt(path, "truncated record"))?;
                let len = u32::from_be_bytes(n) as usize;
                if len > 256 << 20 {
                    return Err(corrupt(path, format!("record length {len} is implausible")));
                }
                let mut b = vec![0u8; len];
                read_exact_crc(r, crc, &mut b).map_err(|_| corrupt(path, "truncated record"))?;
                Ok(b)
            };
        let key = read_blob(&mut r, &mut crc)?;
        let value = read_blob(&mut r, &mut crc)?;
        record(cf, key, value)?;
    }
    let mut stored = [0u8; 4];
    r.read_exact(&mut stored)
        .map_err(|_| corrupt(path, "truncated checksum"))?;
    if u32::from_be_bytes(stored) != crc.finalize() {
        return Err(corrupt(path, "checksum mismatch"));
    }
    let mut rest = [0u8; 1];
    if r.read(&mut rest).map_err(io_err(path))? != 0 {
        return Err(corrupt(path, "trailing bytes after the checksum"));
    }
    Ok(header)
}

/// Verifies a snapshot file end to end without loading it.
pub fn verify(path: &Path) -> Result<(Header, u64)> {
    let mut n = 0u64;
    let header = read_records(path, |_, _, _| {
        n += 1;
        Ok(())
    })?;
    Ok((header, n))
}

/// Replaces the state machine in `db` with the verified contents of `path`, atomically.
pub fn install(db: &Db, path: &Path) -> Result<Header> {
    verify(path)?;
    let mut batch = WriteBatch::default();
    let view = View::live(db);
    for (_, cf) in DATA_CFS {
        let handle = db.cf(cf)?;
        view.for_each(cf, &[], |k, _| {
            batch.delete_cf(handle, k);
            Ok(true)
        })?;
    }
    let header = read_records(path, |cf, k, v| {
        batch.put_cf(db.cf(cf)?, k, v);
        Ok(())
    })?;
    let sm = db.cf(CF_SM)?;
    batch.put_cf(sm, sm_key::APPLIED, db::encode(&header.last_applied)?);
    batch.put_cf(sm, sm_key::MEMBERSHIP, db::encode(&header.membership)?);
    batch.put_cf(sm, sm_key::COUNTERS, db::encode(&header.counters)?);
    db.write_synced(batch)?;
    Ok(header)
}
