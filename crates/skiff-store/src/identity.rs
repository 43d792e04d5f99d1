//! A member's data directory: who it is (cluster, id, name) and its certificates.
//!
//! Layout: `member.json`, `token` (the join token, 0600), `tls/` (CA, member and admin
//! certificates and keys; keys 0600), `db/` (RocksDB), `snapshots/`. The directory is 0700.
//! Files are written to a temporary name, synced and renamed, so a crash never leaves half a file.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::tls::{Ca, Issued};
use crate::types::MemberId;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid member identity: {detail}")]
    Corrupt { path: PathBuf, detail: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Who this member is. Written once when the member is created.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub cluster_id: String,
    pub member_id: MemberId,
    pub name: String,
}

/// Paths inside a data directory.
#[derive(Clone, Debug)]
pub struct DataDir {
    pub root: PathBuf,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DataDir { root: root.into() }
    }
    pub fn db(&self) -> PathBuf {
        self.root.join("db")
    }
    pub fn snapshots(&self) -> PathBuf {
        self.root.join("snapshots")
    }
    pub fn tls(&self) -> PathBuf {
        self.root.join("tls")
    }
    pub fn member_file(&self) -> PathBuf {
        self.root.join("member.json")
    }
    /// Present while the member must still initialize a one-member Raft group on its next
    /// start (after a restore or `force-new-cluster`).
    pub fn initialize_marker(&self) -> PathBuf {
        self.root.join("initialize")
    }
    pub fn token_file(&self) -> PathBuf {
        self.root.join("token")
    }
    /// Files shared by every member (carried to joining members, never interpreted here).
    pub fn cluster_files(&self) -> PathBuf {
        self.root.join("cluster-files")
    }

    /// Writes the shared cluster files (mode 0600).
    pub fn save_cluster_files(
        &self,
        files: &std::collections::BTreeMap<String, Vec<u8>>,
    ) -> Result<()> {
        let dir = self.cluster_files();
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(io(&dir))?;
        for (name, contents) in files {
            if name.contains('/') || name.starts_with('.') || name.is_empty() {
                continue;
            }
            write_file(&dir.join(name), contents, 0o600)?;
        }
        Ok(())
    }

    /// Reads the shared cluster files.
    pub fn load_cluster_files(&self) -> Result<std::collections::BTreeMap<String, Vec<u8>>> {
        let dir = self.cluster_files();
        let mut out = std::collections::BTreeMap::new();
        let Ok(entries) = fs::read_dir(&dir) else {
            return Ok(out);
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_file()
                && path.extension().is_none_or(|e| e != "tmp~")
                && let Some(name) = path.file_name().and_then(|n| n.to_str())
            {
                out.insert(name.to_string(), fs::read(&path).map_err(io(&path))?);
            }
        }
        Ok(out)
    }

    /// Whether a member was created here.
    pub fn is_initialized(&self) -> bool {
        self.member_file().exists()
    }

    /// Whether the directory is absent or holds nothing.
    pub fn is_empty(&self) -> bool {
        match fs::read_dir(&self.root) {
            Ok(mut entries) => entries.next().is_none(),
            Err(_) => true,
        }
    }

    /// Creates the directory tree with owner-only permissions.
    pub fn create(&self) -> Result<()> {
        for dir in [self.root.clone(), self.tls(), self.snapshots()] {
            fs::create_dir_all(&dir).map_err(io(&dir))?;
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(io(&dir))?;
        }
        Ok(())
    }

    pub fn load_identity(&self) -> Result<Identity> {
        let path = self.member_file();
        let bytes = fs::read(&path).map_err(io(&path))?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
            path,
            detail: e.to_string(),
        })
    }

    pub fn save_identity(&self, identity: &Identity) -> Result<()> {
        let json = serde_json::to_vec_pretty(identity).map_err(|e| Error::Corrupt {
            path: self.member_file(),
            detail: e.to_string(),
        })?;
        write_file(&self.member_file(), &json, 0o600)
    }

    pub fn save_tls(&self, ca: &Ca, member: &Issued, admin: &Issued) -> Result<()> {
        let tls = self.tls();
        write_file(&tls.join("ca.crt"), ca.cert_pem.as_bytes(), 0o644)?;
        write_file(&tls.join("ca.key"), ca.key_pem.as_bytes(), 0o600)?;
        // The member presents its chain (leaf + CA) so joiners can learn the CA from it.
        let chain = format!("{}{}", member.cert_pem, ca.cert_pem);
        write_file(&tls.join("member.crt"), chain.as_bytes(), 0o644)?;
        write_file(&tls.join("member.key"), member.key_pem.as_bytes(), 0o600)?;
        write_file(&tls.join("admin.crt"), admin.cert_pem.as_bytes(), 0o644)?;
        write_file(&tls.join("admin.key"), admin.key_pem.as_bytes(), 0o600)
    }

    fn read(&self, name: &str) -> Result<String> {
        let path = self.tls().join(name);
        fs::read_to_string(&path).map_err(io(&path))
    }

    pub fn load_ca(&self) -> Result<Ca> {
        Ok(Ca {
            cert_pem: self.read("ca.crt")?,
            key_pem: self.read("ca.key")?,
        })
    }

    pub fn load_member_cert(&self) -> Result<Issued> {
        Ok(Issued {
            cert_pem: self.read("member.crt")?,
            key_pem: self.read("member.key")?,
        })
    }

    pub fn load_admin_cert(&self) -> Result<Issued> {
        Ok(Issued {
            cert_pem: self.read("admin.crt")?,
            key_pem: self.read("admin.key")?,
        })
    }

    pub fn save_token(&self, token: &str) -> Result<()> {
        write_file(&self.token_file(), format!("{token}\n").as_bytes(), 0o600)
    }

    pub fn load_token(&self) -> Result<String> {
        let path = self.token_file();
        Ok(fs::read_to_string(&path)
            .map_err(io(&path))?
            .trim()
            .to_string())
    }
}

/// Writes a file atomically (temporary name, fsync, rename, fsync of the directory).
pub fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let tmp = path.with_extension("tmp~");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(contents).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode)).map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
    }
    Ok(())
}
